"""Admin route for exchanges (returns stay on the admin controller); shared body helpers."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, post
from litestar.params import Parameter

from kernel.api.auth import admin_guard
from kernel.api.schemas import ExchangeCreate, ExchangeRead, ReturnLineCreate, order_read
from kernel.runtime import Niaga

IdempotencyKey = Annotated[str | None, Parameter(header="Idempotency-Key", required=False)]


def lines_in(lines: list[ReturnLineCreate]) -> list[dict[str, Any]]:
    """Return lines as the services take them; keys a body left out stay out, so an old body
    (``{line_id, quantity}``) hashes as it always did for Idempotency-Key replays."""
    out = []
    for x in lines:
        line: dict[str, Any] = {"line_id": x.line_id, "quantity": x.quantity}
        if x.restock is not None:
            line["restock"] = x.restock
        if x.location_id is not None:
            line["location_id"] = x.location_id
        out.append(line)
    return out


class ExchangeController(Controller):
    path = "/admin/orders"
    tags = ["admin"]
    guards = [admin_guard]
    security = [{"bearer": []}]

    @post("/{order_id:str}/exchanges", status_code=201)
    async def exchange(self, niaga: Niaga, order_id: str, data: ExchangeCreate,
                       idempotency_key: IdempotencyKey = None) -> Response[ExchangeRead]:
        """Return units of an order and place a new order for the replacement items (201; a
        replay with the same Idempotency-Key and body answers 200 with the same result)."""
        from kernel.api.admin import _key
        from kernel.services import exchanges
        from kernel.services.checkout import request_hash

        key = _key(idempotency_key)
        lines = lines_in(data.lines)
        items = [{"sku": x.sku, "quantity": x.quantity} for x in data.items]
        body = {"lines": lines, "restock": data.restock, "items": items,
                "payment": data.payment, "delivery_option_id": data.delivery_option_id}
        result, created = await exchanges.exchange(
            niaga, order_id, lines, data.restock, items, dict(data.payment),
            data.delivery_option_id, key, request_hash(body))
        return Response(ExchangeRead(original=order_read(result.original),
                                     order=order_read(result.order)),
                        status_code=201 if created else 200)
