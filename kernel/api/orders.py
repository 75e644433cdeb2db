"""Orders by id (the id is the capability) and the customer's own routes."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.params import Parameter

from kernel.api.auth import provide_customer
from kernel.api.schemas import (
    CartRead,
    MergeCreate,
    OrderRead,
    TrackingRead,
    cart_read,
    order_read,
)
from kernel.runtime import Niaga
from kernel.services import carts, orders
from kernel.services.orders import load_order
from kernel.store.base import Customer


class OrderController(Controller):
    path = "/orders"
    tags = ["orders"]

    @get("/{order_id:str}")
    async def read(self, niaga: Niaga, order_id: str) -> OrderRead:
        return order_read(await load_order(niaga, order_id))

    @get("/{order_id:str}/tracking")
    async def tracking(self, niaga: Niaga, order_id: str) -> list[TrackingRead]:
        return [TrackingRead(**t) for t in await orders.tracking(niaga, order_id)]


class MeController(Controller):
    path = "/me"
    tags = ["customer"]
    dependencies = {"customer": Provide(provide_customer)}

    # GET /me (the profile) lives in kernel.api.customers.ProfileController with PATCH /me:
    # two controllers cannot share one path

    @get("/cart")
    async def cart(self, niaga: Niaga, customer: Customer,
                   market: Annotated[str, Parameter(query="market", min_length=2,
                                                    max_length=2)]) -> CartRead:
        return cart_read(await carts.customer_cart(niaga, customer.id, market))

    @post("/cart/merge", status_code=200)
    async def merge(self, niaga: Niaga, customer: Customer, data: MergeCreate) -> CartRead:
        return cart_read(await carts.merge_into_customer_cart(niaga, data.cart_id, customer))

    @get("/orders")
    async def orders(self, niaga: Niaga, customer: Customer) -> list[OrderRead]:
        return [order_read(o) for o in await niaga.store.list_orders(customer_id=customer.id)]
