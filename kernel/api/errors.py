"""One mapping from errors to RFC 9457 problem+json responses.

Domain errors carry their status; Litestar's own (validation, 404, 405, body
too large) are reshaped so every 4xx names the field where there is one.
Anything else is a 500 whose detail reveals nothing and whose trace is logged.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from kernel.errors import NiagaError
from kernel.money import MoneyError
from kernel.payments import WebhookRejected

log = logging.getLogger("niaga.api")
PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, *, code: str | None = None,
            errors: list[dict[str, str]] | None = None, **extra: Any) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"type": f"https://niaga.dev/problems/{code or status}",
                            "title": title, "status": status, "detail": detail}
    if code:
        body["code"] = code
    if errors:
        body["errors"] = errors
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if extra.get("retry_after") is not None:  # rate limit, busy store: when to retry (s)
        headers = {"Retry-After": str(extra["retry_after"])}
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def _niaga(_: Request, exc: NiagaError) -> Response:
    return problem(exc.status, exc.title, exc.detail, code=exc.code, errors=exc.errors,
                   **exc.extra)


# msgspec names a missing or unknown field only in its message; Litestar's key is the parent
_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]+)`")
_MISSING_PARAM = re.compile(r"^Missing required \w+ parameter '([^']+)'")


def _validation(_: Request, exc: ValidationException) -> Response:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            field = str(item.get("key") or item.get("source") or "body")
            message = str(item.get("message", "invalid"))
            if named := _NAMED_FIELD.match(message):
                field = (named.group(1) if field in ("data", "body")
                         else f"{field}.{named.group(1)}")
            errors.append({"field": field, "message": message})
    if not errors:
        missing = _MISSING_PARAM.match(str(exc.detail))
        errors.append({"field": missing.group(1) if missing else "body",
                       "message": str(exc.detail)})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(400, "Invalid request", detail, code="invalid_request", errors=errors)


def _http(_: Request, exc: HTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return problem(exc.status_code, detail, detail)


def _money(_: Request, exc: MoneyError) -> Response:
    return problem(422, "Invalid amount", str(exc), code="invalid",
                   errors=[{"field": "amount", "message": str(exc)}])


def _webhook(_: Request, exc: WebhookRejected) -> Response:
    return problem(400, "Webhook rejected", str(exc), code="webhook_rejected",
                   errors=[{"field": "signature", "message": str(exc)}])


def _unexpected(request: Request, exc: Exception) -> Response:
    from kernel.store.transient import RETRY_AFTER_S, is_transient

    if is_transient(exc):  # e.g. SQLite locked by another process: retryable, not a bug
        log.warning("store busy on %s %s: %s", request.method, request.url.path, exc)
        return problem(503, "Busy, retry", "the store is busy; nothing was changed, retry "
                       "shortly", code="busy", retry_after=RETRY_AFTER_S)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "Internal error", "an unexpected error occurred; it has been logged",
                   code="internal")


exception_handlers: dict[Any, Any] = {
    NiagaError: _niaga,
    ValidationException: _validation,
    HTTPException: _http,
    MoneyError: _money,
    WebhookRejected: _webhook,
    Exception: _unexpected,
}
