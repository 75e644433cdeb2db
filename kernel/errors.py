"""Domain errors. The API maps each to one HTTP status in one place (kernel/api/errors.py)."""

from __future__ import annotations

from typing import Any


class NiagaError(Exception):
    """Base of every error the kernel raises on purpose."""

    status = 400
    title = "Bad request"
    code = "bad_request"

    def __init__(self, detail: str, *, errors: list[dict[str, str]] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra


class ValidationError(NiagaError):
    status, title, code = 422, "Invalid input", "invalid"

    @classmethod
    def field(cls, field: str, message: str) -> ValidationError:
        return cls(f"{field}: {message}", errors=[{"field": field, "message": message}])


class NotFound(NiagaError):
    status, title, code = 404, "Not found", "not_found"


class Conflict(NiagaError):
    """A state conflict: wrong status, stale version, duplicate."""

    status, title, code = 409, "Conflict", "conflict"


class VersionConflict(Conflict):
    code = "version_conflict"


class InProgress(Conflict):
    """The same request is being handled right now (a concurrent retry): try again shortly."""

    title, code = "Request in progress", "in_progress"


class Busy(Conflict):
    """Contention the store could not get past after its retries (a DynamoDB transaction
    conflict): nothing was written, and the same request may be sent again shortly.
    ``retry_after`` (seconds) becomes the Retry-After header."""

    title, code = "Busy, retry", "busy"

    def __init__(self, detail: str, *, retry_after: int = 1, **extra: Any):
        super().__init__(detail, retry_after=retry_after, **extra)


class OutOfStock(Conflict):
    title, code = "Out of stock", "out_of_stock"


class PaymentDeclined(NiagaError):
    status, title, code = 402, "Payment declined", "payment_declined"


class GatewayError(NiagaError):
    """A plugin's upstream (payment gateway, tax service, carrier) failed."""

    status, title, code = 502, "Upstream error", "gateway_error"


class Unauthorized(NiagaError):
    status, title, code = 401, "Unauthorized", "unauthorized"


class Forbidden(NiagaError):
    status, title, code = 403, "Forbidden", "forbidden"


class IdempotencyMismatch(NiagaError):
    status, title, code = 422, "Idempotency key reused", "idempotency_mismatch"


class ReplayedFailure(NiagaError):
    """The stored answer of an earlier attempt with the same Idempotency-Key."""

    def __init__(self, status: int, problem: dict[str, Any]):
        super().__init__(problem.get("detail", ""), errors=problem.get("errors") or [],
                         **problem.get("extra", {}))
        self.status = status
        self.title = problem.get("title", "Replayed")
        self.code = problem.get("code", "replayed")


class ConfigError(NiagaError):
    """A markets file or plugin configuration that cannot be loaded."""

    status, title, code = 500, "Configuration error", "config_error"

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class InvariantError(AssertionError):
    """Money that does not add up. Always a bug; never shown to a customer as their fault."""
