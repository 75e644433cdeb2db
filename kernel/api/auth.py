"""Bearer tokens: the admin token (hashed, compared in constant time) and customer tokens."""

from __future__ import annotations

import hashlib
import hmac

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from kernel.errors import Unauthorized
from kernel.runtime import Niaga
from kernel.services.customers import customer_for_token
from kernel.store.base import Customer


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def admin_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    token = bearer(connection.headers.get("authorization"))
    expected: bytes = connection.app.state.admin_token_digest
    # compare digests: constant time, and the same length whatever was sent
    if token is None or not hmac.compare_digest(digest(token), expected):
        raise Unauthorized("admin routes need 'Authorization: Bearer <admin token>'")


async def provide_customer(request: Request, niaga: Niaga) -> Customer:
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized("this route needs 'Authorization: Bearer <customer token>'")
    return await customer_for_token(niaga, token)


async def provide_optional_customer(request: Request, niaga: Niaga) -> Customer | None:
    if request.headers.get("authorization") is None:
        return None
    return await provide_customer(request, niaga)
