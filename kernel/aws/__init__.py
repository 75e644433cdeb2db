"""Lambda entry points of the serverless shape: ``api`` (the HTTP API through Mangum),
``worker`` (the table's stream: outbox → EventBridge and notify hooks, TTL releases) and
``sweeper`` (scheduled expiry). Configuration and the shared kernel live in ``config``.

Nothing in ``kernel`` imports this package; ``worker`` and ``sweeper`` never import Litestar.
"""
