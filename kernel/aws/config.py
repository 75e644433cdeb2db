"""Configuration of the Lambda functions, read from the environment, and the kernel they share.

=============================  ==========================================================
``NIAGA_TABLE``                the single DynamoDB table (required)
``NIAGA_IDEMPOTENCY_TABLE``    Powertools' idempotency table (the API function)
``NIAGA_EVENT_BUS``            the EventBridge bus the worker publishes to (default: default)
``NIAGA_MARKETS_PARAM``        an SSM parameter holding the markets TOML file; without it
                               the demo markets shipped with the kernel
``NIAGA_ADMIN_TOKEN``          the admin bearer token, or ``NIAGA_ADMIN_TOKEN_PARAM``: an SSM
                               SecureString parameter holding it
``NIAGA_DYNAMODB_ENDPOINT``    optional endpoint override (``moto_server``, DynamoDB Local)
=============================  ==========================================================

Everything here is built lazily, once per container (a warm Lambda reuses it); the
markets parameter is cached by Powertools Parameters for ``PARAM_MAX_AGE`` seconds.
"""

from __future__ import annotations

import asyncio
import os
import tomllib
from dataclasses import dataclass
from typing import Any

from kernel.errors import ConfigError
from kernel.markets import Market, demo_markets_path, load_markets, parse_markets
from kernel.runtime import Niaga
from kernel.store.dynamodb import DynamoStore

PARAM_MAX_AGE = 300  # seconds an SSM parameter is cached in a warm container


@dataclass(frozen=True)
class Settings:
    table: str
    idempotency_table: str | None
    event_bus: str
    markets_param: str | None
    admin_token: str | None
    admin_token_param: str | None
    dynamodb_endpoint: str | None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        table = env.get("NIAGA_TABLE", "").strip()
        if not table:
            raise ConfigError(["NIAGA_TABLE: the DynamoDB table name is required"])
        return cls(
            table=table,
            idempotency_table=env.get("NIAGA_IDEMPOTENCY_TABLE") or None,
            event_bus=env.get("NIAGA_EVENT_BUS") or "default",
            markets_param=env.get("NIAGA_MARKETS_PARAM") or None,
            admin_token=env.get("NIAGA_ADMIN_TOKEN") or None,
            admin_token_param=env.get("NIAGA_ADMIN_TOKEN_PARAM") or None,
            dynamodb_endpoint=env.get("NIAGA_DYNAMODB_ENDPOINT") or None,
        )


def load_markets_param(name: str) -> dict[str, Market]:
    """The markets file held in an SSM parameter (Powertools Parameters, cached)."""
    from aws_lambda_powertools.utilities import parameters

    text = parameters.get_parameter(name, max_age=PARAM_MAX_AGE)
    try:
        data = tomllib.loads(str(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"ssm:{name}: not valid TOML: {exc}"]) from exc
    return parse_markets(data)


def admin_token(settings: Settings) -> str:
    if settings.admin_token:
        return settings.admin_token
    if settings.admin_token_param:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_parameter(settings.admin_token_param, decrypt=True,
                                            max_age=PARAM_MAX_AGE))
    raise ConfigError(["NIAGA_ADMIN_TOKEN or NIAGA_ADMIN_TOKEN_PARAM is required"])


def build_niaga(settings: Settings | None = None, **store_kwargs: Any) -> Niaga:
    """A kernel on the table: DynamoStore + markets. The outbox is relayed by the stream
    worker, so the in-process dispatcher is switched off."""
    settings = settings or Settings.from_env()
    markets = (load_markets_param(settings.markets_param) if settings.markets_param
               else load_markets(demo_markets_path()))
    store = DynamoStore(settings.table, endpoint_url=settings.dynamodb_endpoint, **store_kwargs)
    niaga = Niaga(store, markets)
    niaga.dispatcher.in_process = False
    return niaga


_shared: Niaga | None = None
_loop: asyncio.AbstractEventLoop | None = None


def run(coro: Any) -> Any:
    """Run a coroutine on the container's own event loop (made once, reused by every
    invocation; never made the thread's current loop, so Mangum's is left alone)."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


def shared_niaga() -> Niaga:
    """The container's kernel, built at first use."""
    global _shared
    if _shared is None:
        _shared = build_niaga()
    return _shared


def reset() -> None:
    """Forget the container's kernel and cached parameters (tests; a config change)."""
    global _shared
    _shared = None
    try:
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
    except ImportError:  # pragma: no cover
        pass
