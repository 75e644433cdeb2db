"""Orders by id (the id is the capability) and the customer's own routes."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.params import Parameter

from kernel.api.auth import provide_customer
from kernel.api.schemas import (
    CartRead,
    MeLoyaltyRead,
    MeRead,
    MergeCreate,
    OrderRead,
    TierRead,
    TrackingRead,
    cart_read,
    order_read,
)
from kernel.errors import NotFound
from kernel.runtime import Niaga
from kernel.services import carts, loyalty, orders
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

    @get("/")
    async def me(self, niaga: Niaga, customer: Customer,
                 market: Annotated[str | None, Parameter(
                     query="market", required=False, min_length=2, max_length=2,
                     description="whose tiers to show (default: the first market that "
                                 "runs a loyalty programme)")] = None) -> MeRead:
        summary = await loyalty.account_summary(niaga, customer.id, market)
        tier = summary["tier"]
        return MeRead(id=customer.id, email=customer.email, name=customer.name,
                      loyalty=MeLoyaltyRead(
                          balance=summary["balance"], lifetime_points=summary["lifetime_points"],
                          tier=TierRead(name=str(tier["name"]),
                                        multiplier=str(tier.get("multiplier", "1")))
                          if isinstance(tier, dict) else None,
                          market=summary["market"]))

    @get("/cart")
    async def cart(self, niaga: Niaga, customer: Customer,
                   market: Annotated[str, Parameter(query="market", min_length=2,
                                                    max_length=2)]) -> CartRead:
        niaga.market(market)
        cart = await niaga.store.find_open_cart(customer.id, market)
        if cart is None:
            raise NotFound(f"no open cart in market {market}")
        await carts.reprice(niaga, cart)
        return cart_read(cart)

    @post("/cart/merge", status_code=200)
    async def merge(self, niaga: Niaga, customer: Customer, data: MergeCreate) -> CartRead:
        return cart_read(await carts.merge_into_customer_cart(niaga, data.cart_id, customer))

    @get("/orders")
    async def orders(self, niaga: Niaga, customer: Customer) -> list[OrderRead]:
        return [order_read(o) for o in await niaga.store.list_orders(customer_id=customer.id)]
