"""What the HTTPS payment plugins (``stripe``, ``midtrans``) share.

- :class:`HttpGateway`: one lazily built ``httpx.Client`` per plugin instance.
  Tests swap the network for an ``httpx.MockTransport`` by setting the
  ``transport`` attribute (on the class or the instance) before the first call;
  everything else—URLs, headers, auth, timeouts—is the production path.
- :func:`redact`: scrubs a secret out of any text that may end up in an error.
- :func:`header`: case-insensitive header lookup (the ASGI server lower-cases names).
- :func:`ignored`: the answer to a verified webhook that changes no order.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from typing import TYPE_CHECKING, Any

from kernel import GatewayError
from kernel.payments import WebhookEvent

if TYPE_CHECKING:  # httpx is imported at the first call: it costs a cold start ~0.1 s
    import httpx

log = logging.getLogger("niaga.plugins.payments")


def header(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def redact(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def derived_key(prefix: str, key: str, limit: int, allowed: str = r"[A-Za-z0-9_-]+") -> str:
    """``key`` itself when a gateway accepts it as is (length, characters), else a stable
    digest of it: the same kernel key always gives the same gateway key."""
    if len(key) <= limit and re.fullmatch(allowed, key):
        return key
    return prefix + hashlib.sha256(key.encode("utf-8")).hexdigest()[: limit - len(prefix)]


def ignored(event_id: str, detail: dict[str, Any]) -> WebhookEvent:
    """A verified, well-formed notification that is no state change for an order: the
    kernel answers 2xx so the gateway stops retrying, and changes nothing."""
    return WebhookEvent(id=event_id, kind="ignored", detail=detail)


class HttpGateway:
    """Lazily built, thread-safe ``httpx.Client`` plus uniform network-error handling."""

    name: str
    #: Tests set an ``httpx.MockTransport`` here; None means the real network.
    transport: httpx.BaseTransport | None = None
    timeout_seconds: float = 10.0

    def _new_client(self) -> httpx.Client:  # pragma: no cover - each plugin builds its own
        raise NotImplementedError

    def _client(self) -> httpx.Client:
        client = self.__dict__.get("_http_client")
        if client is not None:
            return client
        lock = self.__dict__.setdefault("_http_lock", threading.Lock())
        with lock:
            client = self.__dict__.get("_http_client")
            if client is None:
                client = self._new_client()
                self.__dict__["_http_client"] = client
        return client

    def _secrets(self) -> tuple[str | None, ...]:
        return ()

    def _send(self, method: str, path: str, action: str, **kwargs: Any) -> httpx.Response:
        """One HTTPS call; timeouts and network failures become GatewayErrors naming us."""
        import httpx

        try:
            response = self._client().request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise GatewayError(
                f"{self.name}: {action} timed out after {self.timeout_seconds:g}s; "
                "retry with the same Idempotency-Key", gateway=self.name) from exc
        except httpx.HTTPError as exc:
            why = redact(str(exc), *self._secrets()) or type(exc).__name__
            raise GatewayError(f"{self.name}: {action} failed: network error ({why})",
                               gateway=self.name) from exc
        log.info("%s %s %s -> HTTP %s", self.name, method, path, response.status_code)
        return response
