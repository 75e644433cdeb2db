"""Declare every operation's problem+json answers in the OpenAPI document, in one place.

Litestar documents only a handler's success status and a 400 in its own (non-RFC 9457)
shape. The error mapping (kernel/api/errors.py) answers far more, so clients and the
schemathesis run in CI would see undocumented statuses. Rather than copy ``responses=`` onto
every route, :func:`document_problems` derives each operation's statuses from what the
handler is (guarded, takes a body, changes state, replays by Idempotency-Key) and sets them
before the document is built (Litestar builds it lazily, on the first request for it).
"""

from __future__ import annotations

from litestar import Litestar, Response
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.routes import HTTPRoute
from msgspec import Struct

from kernel.api.auth import admin_guard, provide_customer, provide_optional_customer
from kernel.api.errors import PROBLEM


class FieldProblem(Struct):
    field: str  # the body path ("payment.method", "lines[0].quantity"), query or header name
    message: str


class Problem(Struct):
    """RFC 9457 problem details. Some problems add members (``available``, ``merged_into``)."""

    type: str
    title: str
    status: int
    detail: str
    code: str | None = None
    errors: list[FieldProblem] | None = None


_WHY = {
    400: "The body, a query or a header does not fit its schema (errors name the field)",
    401: "A missing or unknown bearer token",
    402: "The payment was declined (an Idempotency-Key replays a stored decline)",
    403: "The token's customer may not touch this resource",
    404: "Not found",
    409: "A state conflict: wrong status, stale version, out of stock, request in progress",
    413: "The request body is larger than the limit (256 KiB)",
    422: "The input fits the schema but the rules refuse it (errors name the field)",
    429: "Too many requests; retry after the time in Retry-After",
    500: "An unexpected error; the detail reveals nothing and the trace is logged",
    502: "A plugin's upstream (payment gateway, tax service, carrier) failed",
}
# read-only routes that still ask plugins (pricing, tax, carriers, fx, exports)
_PLUGIN_READS = ("/carts", "/products", "/orders", "/me", "/admin/customers")


def _statuses(handler: HTTPRouteHandler, path: str) -> set[int]:
    methods = set(handler.http_methods)
    params = handler.parsed_fn_signature.parameters
    deps = {p.dependency for p in handler.resolve_dependencies().values()}
    customer = bool(deps & {provide_customer, provide_optional_customer})
    # ownership_layers: the app, the controller, the handler itself
    admin = any(g is admin_guard for layer in handler.ownership_layers
                for g in layer.guards or [])
    statuses = {400, 422, 500}
    if "{" in path or path.startswith("/me"):
        statuses.add(404)
    if admin or customer:
        statuses.add(401)
    if customer:
        statuses.add(403)
    if "data" in params or path.startswith("/webhooks"):
        statuses.add(413)
    if methods - {"GET", "HEAD"}:
        statuses |= {409, 502}
    elif path.startswith(_PLUGIN_READS):
        statuses.add(502)
    if "idempotency_key" in params:
        statuses.add(402)
        if path.startswith("/carts"):
            statuses.add(429)  # checkout is rate-limited per cart (kernel/api/ratelimit.py)
    return statuses


def document_problems(app: Litestar) -> None:
    """Add the problem responses (and customer routes' bearer security) to every operation."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.include_in_schema:
                continue
            declared = dict(handler.responses or {})
            returns = handler.parsed_fn_signature.return_type
            picks = returns.is_subclass_of(Response) and returns.inner_types
            if handler.status_code == 201 and picks:
                # a handler that picks its status: 200 for a replay or an existing resource
                declared.setdefault(200, ResponseSpec(
                    data_container=returns.inner_types[0].annotation,
                    description="A replay of the first answer, or the resource that exists"))
            for status in sorted(_statuses(handler, route.path)):
                declared.setdefault(status, ResponseSpec(
                    data_container=Problem, description=_WHY[status], media_type=PROBLEM,
                    generate_examples=False))
            handler.responses = declared
            if 401 in declared and not handler.resolve_security():
                handler.security = [{"bearer": []}]
                handler._resolved_security = [{"bearer": []}]


def openapi_document() -> dict:
    """The OpenAPI document ``niaga serve`` answers at ``/schema/openapi.json``, built offline.

    The routes and their schemas do not depend on the markets, the installed plugins or the
    store, so the app is built around no markets, no plugins and a store that is never
    opened (``niaga openapi``; docs/openapi.json is its output).
    """
    from kernel.api.app import create_app
    from kernel.plugins import Registry
    from kernel.runtime import Niaga

    class _NoStore:
        name = "none"  # building the app reads nothing from the store

    niaga = Niaga(_NoStore(), {}, registry=Registry(discover=False))  # type: ignore[arg-type]
    app = create_app(niaga, admin_token="unused", manage_lifecycle=False)
    return app.openapi_schema.to_schema()
