"""Admin routes of the stock pool: levels per location, an order's allocations, and the
pickup steps (ready for pickup, picked up)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Parameter
from msgspec import Struct

from kernel.api.admin import stock_read
from kernel.api.auth import admin_guard
from kernel.api.schemas import OrderRead, StockRead, order_read
from kernel.runtime import Niaga
from kernel.services import catalog, orders, pickup

SkuPath = Annotated[str, Parameter(max_length=64)]


class AllocationRead(Struct):
    """Units of one SKU the order still holds at one location (shipped ones are gone)."""

    sku: str
    location_id: str
    quantity: int


class InventoryController(Controller):
    path = "/admin"
    tags = ["admin"]
    guards = [admin_guard]
    security = [{"bearer": []}]

    @get("/inventory/{sku:str}")
    async def stock(self, niaga: Niaga, sku: SkuPath,
                    market: Annotated[str | None, Parameter(
                        query="market", required=False, min_length=2, max_length=2,
                        description="only the locations serving this market")] = None,
                    ) -> list[StockRead]:
        return [stock_read(level) for level in await catalog.stock_of(niaga, sku, market)]

    @get("/orders/{order_id:str}/allocations")
    async def allocations(self, niaga: Niaga, order_id: str) -> list[AllocationRead]:
        order = await orders.load_order(niaga, order_id)
        return [AllocationRead(sku=a.sku, location_id=a.location_id, quantity=a.quantity)
                for a in order.allocations if a.quantity > 0]

    @post("/orders/{order_id:str}/ready-for-pickup", status_code=200)
    async def ready_for_pickup(self, niaga: Niaga, order_id: str) -> OrderRead:
        return order_read(await pickup.ready_for_pickup(niaga, order_id))

    @post("/orders/{order_id:str}/picked-up", status_code=200)
    async def picked_up(self, niaga: Niaga, order_id: str) -> OrderRead:
        return order_read(await pickup.picked_up(niaga, order_id))
