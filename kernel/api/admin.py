"""Admin routes: catalog, customers, inventory, order operations, plugins (reports: reports.py).

Every route here sits behind :func:`kernel.api.auth.admin_guard`.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import Parameter

from kernel.api.auth import admin_guard
from kernel.api.schemas import (
    AdminProductRead,
    CancelCreate,
    CaptureCreate,
    CustomerCreate,
    CustomerTokenRead,
    FulfillmentCreate,
    FxRatesUpdate,
    MarkPaid,
    OrderRead,
    PluginRead,
    ProductUpdate,
    ReleaseCreate,
    ReturnCreate,
    StockAdjust,
    StockRead,
    StockUpdate,
    money,
    order_read,
)
from kernel.catalog import Product
from kernel.errors import ValidationError
from kernel.inventory import StockLevel, is_low
from kernel.runtime import Niaga
from kernel.services import catalog, customers, orders, payments
from kernel.services.checkout import request_hash

IdempotencyKey = Annotated[str | None, Parameter(header="Idempotency-Key", required=False)]
SkuPath = Annotated[str, Parameter(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


def _key(value: str | None) -> str:
    if not value or len(value) > 200:
        raise ValidationError.field("Idempotency-Key", "a key of 1 to 200 characters is required")
    return value


def stock_read(level: StockLevel) -> StockRead:
    return StockRead(sku=level.sku, location_id=level.location_id, on_hand=level.on_hand,
                     reserved=level.reserved, available=level.available,
                     low_threshold=level.low_threshold, low=is_low(level))


def admin_product_read(p: Product) -> AdminProductRead:
    return AdminProductRead(sku=p.sku, names=dict(p.names),
                            prices={m: money(v) for m, v in p.prices.items()},
                            tax_class=p.tax_class, weight_grams=p.weight_grams,
                            attributes=dict(p.attributes))


class AdminController(Controller):
    path = "/admin"
    tags = ["admin"]
    guards = [admin_guard]
    security = [{"bearer": []}]

    @put("/products/{sku:str}")
    async def put_product(self, niaga: Niaga, sku: SkuPath,
                          data: ProductUpdate) -> AdminProductRead:
        for code in data.prices:
            niaga.market(code, field=f"prices.{code}")
        product = Product(sku=sku, names=dict(data.names),
                          prices={m: v.to_money(f"prices.{m}") for m, v in data.prices.items()},
                          tax_class=data.tax_class, weight_grams=data.weight_grams,
                          attributes=dict(data.attributes), descriptions=dict(data.descriptions))
        return admin_product_read(await catalog.put_product(niaga, product))

    @delete("/products/{sku:str}", status_code=204)
    async def delete_product(self, niaga: Niaga, sku: str) -> None:
        await catalog.delete_product(niaga, sku)

    @post("/customers", status_code=201)
    async def create_customer(self, niaga: Niaga, data: CustomerCreate) -> CustomerTokenRead:
        customer, token = await customers.create_customer(niaga, data.email, data.name)
        return CustomerTokenRead(id=customer.id, token=token)

    @get("/customers/{customer_id:str}/export")
    async def export_customer(self, niaga: Niaga, customer_id: str) -> dict[str, Any]:
        return await customers.export(niaga, customer_id)

    @delete("/customers/{customer_id:str}", status_code=204)
    async def erase_customer(self, niaga: Niaga, customer_id: str) -> None:
        await customers.erase(niaga, customer_id)

    @put("/inventory/{sku:str}/{location_id:str}")
    async def set_stock(self, niaga: Niaga, sku: str, location_id: str,
                        data: StockUpdate) -> StockRead:
        return stock_read(await catalog.set_stock(niaga, sku, location_id, data.on_hand,
                                                  data.low_threshold))

    @post("/inventory/{sku:str}/{location_id:str}/adjust", status_code=200)
    async def adjust_stock(self, niaga: Niaga, sku: str, location_id: str,
                           data: StockAdjust) -> StockRead:
        return stock_read(await catalog.adjust(niaga, sku, location_id, data.delta, data.reason))

    @post("/orders/{order_id:str}/mark-paid", status_code=200)
    async def mark_paid(self, niaga: Niaga, order_id: str,
                        data: MarkPaid | None = None) -> OrderRead:
        reference = data.reference if data else None
        return order_read(await orders.mark_paid(niaga, order_id, reference))

    @post("/orders/{order_id:str}/release", status_code=200)
    async def release(self, niaga: Niaga, order_id: str,
                      data: ReleaseCreate | None = None) -> OrderRead:
        return order_read(await orders.release_hold(niaga, order_id,
                                                    data.note if data else None))

    @post("/orders/{order_id:str}/capture", status_code=200)
    async def capture(self, niaga: Niaga, order_id: str, data: CaptureCreate | None = None,
                      idempotency_key: IdempotencyKey = None) -> OrderRead:
        key = _key(idempotency_key)
        amount = data.amount.to_money("amount") if data and data.amount else None
        body = {"amount": [amount.amount, amount.currency] if amount else None}
        return order_read(await orders.capture(niaga, order_id, amount, key, request_hash(body)))

    @post("/orders/{order_id:str}/fulfillments", status_code=200)
    async def fulfil(self, niaga: Niaga, order_id: str,
                     data: FulfillmentCreate | None = None) -> OrderRead:
        data = data or FulfillmentCreate()
        lines = ([{"line_id": x.line_id, "quantity": x.quantity} for x in data.lines]
                 if data.lines is not None else None)
        return order_read(await orders.fulfil(niaga, order_id, lines, data.location_id,
                                              data.tracking_number))

    @post("/orders/{order_id:str}/cancel", status_code=200)
    async def cancel(self, niaga: Niaga, order_id: str,
                     data: CancelCreate | None = None) -> OrderRead:
        return order_read(await orders.cancel(niaga, order_id, data.reason if data else None))

    @post("/orders/{order_id:str}/returns", status_code=200)
    async def returns(self, niaga: Niaga, order_id: str, data: ReturnCreate,
                      idempotency_key: IdempotencyKey = None) -> OrderRead:
        from kernel.api.returns import lines_in

        key = _key(idempotency_key)
        lines = lines_in(data.lines)
        body = {"lines": lines, "restock": data.restock}
        return order_read(await orders.return_lines(niaga, order_id, lines, data.restock, key,
                                                    request_hash(body)))

    @get("/fx/rates")
    async def fx_rates(self, niaga: Niaga) -> dict[str, dict[str, str]]:
        return await niaga.store.fx_rates()

    @put("/fx/rates")
    async def put_fx_rates(self, niaga: Niaga, data: FxRatesUpdate) -> dict[str, dict[str, str]]:
        await catalog.set_fx_rates(niaga, data.base, dict(data.rates))
        return await niaga.store.fx_rates()

    @get("/plugins")
    async def plugins(self, niaga: Niaga) -> list[PluginRead]:
        enabled: dict[str, list[str]] = {}
        for code, mp in niaga.plugins.items():
            for name in mp.names:
                enabled.setdefault(name, []).append(code)
        return [PluginRead(name=i.name, version=i.version, family=i.family, hooks=i.hooks,
                           markets=enabled.get(i.name, []))
                for i in sorted(niaga.registry.plugins.values(), key=lambda i: i.name)]


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]

    @post("/{plugin:str}", status_code=200)
    async def receive(self, niaga: Niaga, plugin: str,
                      request: Request) -> Response[dict[str, Any]]:
        from kernel.errors import NotFound
        from kernel.payments import WebhookRejected

        body = await request.body()
        headers = dict(request.headers)

        if not any(plugin in mp.names for mp in niaga.plugins.values()):
            raise NotFound(f"no enabled plugin {plugin!r} receives webhooks")
        event = await payments.parse_webhook(niaga, plugin, headers, body)
        if event is None:
            raise WebhookRejected(f"{plugin} did not recognise this webhook")
        order = await orders.apply_webhook(niaga, plugin, event)
        return Response({"received": True, "event": event.id, "applied": order is not None})
