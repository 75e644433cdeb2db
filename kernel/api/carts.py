"""Carts and checkout. The cart id is the capability: no token needed to use one."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter

from kernel.api.auth import provide_customer, provide_optional_customer
from kernel.api.ratelimit import admit_checkout
from kernel.api.schemas import (
    AddressUpdate,
    CartCreate,
    CartRead,
    CheckoutCreate,
    DeliveryOptionRead,
    DeliveryUpdate,
    LineCreate,
    LineUpdate,
    LoyaltyUpdate,
    MarketMove,
    OrderRead,
    PaymentMethodRead,
    cart_read,
    money,
    order_read,
)
from kernel.errors import ValidationError
from kernel.runtime import Niaga
from kernel.services import carts
from kernel.services.checkout import checkout, request_hash
from kernel.store.base import Customer

IdempotencyKey = Annotated[str | None, Parameter(header="Idempotency-Key", required=False,
                                                 description="required: makes retries safe")]
Channel = Annotated[str | None, Parameter(
    header="Niaga-Channel", required=False, max_length=32,
    description="the channel this request comes from (web, app, pos, marketplace, social; "
                "one of the market's): the cart and its order record every channel that "
                "touched the cart")]


class CartController(Controller):
    path = "/carts"
    tags = ["carts"]

    @post("/", dependencies={"customer": Provide(provide_optional_customer)}, status_code=201)
    async def create(self, niaga: Niaga, data: CartCreate,
                     customer: Customer | None) -> Response[CartRead]:
        """201 with a new cart; 200 with the customer's open cart in that market when there
        is one (one active cart per customer and market)."""
        cart, created = await carts.open_cart(niaga, data.market, data.channel, customer)
        return Response(cart_read(cart), status_code=201 if created else 200)

    @get("/{cart_id:str}")
    async def read(self, niaga: Niaga, cart_id: str) -> CartRead:
        return cart_read(await carts.view_cart(niaga, cart_id))

    @post("/{cart_id:str}/lines", status_code=200)
    async def add_line(self, niaga: Niaga, cart_id: str, data: LineCreate,
                       channel: Channel = None) -> CartRead:
        return cart_read(await carts.add_line(niaga, cart_id, data.sku, data.quantity, channel))

    @patch("/{cart_id:str}/lines/{line_id:str}")
    async def update_line(self, niaga: Niaga, cart_id: str, line_id: str,
                          data: LineUpdate, channel: Channel = None) -> CartRead:
        return cart_read(await carts.set_quantity(niaga, cart_id, line_id, data.quantity,
                                                  channel))

    @delete("/{cart_id:str}/lines/{line_id:str}", status_code=200)
    async def remove_line(self, niaga: Niaga, cart_id: str, line_id: str,
                          channel: Channel = None) -> CartRead:
        return cart_read(await carts.remove_line(niaga, cart_id, line_id, channel))

    @put("/{cart_id:str}/address")
    async def address(self, niaga: Niaga, cart_id: str, data: AddressUpdate,
                      channel: Channel = None) -> CartRead:
        return cart_read(await carts.set_address(niaga, cart_id, data.to_address(), channel))

    @put("/{cart_id:str}/market")
    async def market(self, niaga: Niaga, cart_id: str, data: MarketMove,
                     channel: Channel = None) -> CartRead:
        """Move the cart to another market: re-priced and re-taxed there, delivery and points
        cleared (``warnings`` say what changed). A customer's cart that meets the customer's
        open cart in that market is merged into it: the answer is that cart."""
        return cart_read(await carts.move_market(niaga, cart_id, data.market, channel))

    @get("/{cart_id:str}/delivery-options")
    async def delivery_options(self, niaga: Niaga, cart_id: str) -> list[DeliveryOptionRead]:
        return [DeliveryOptionRead(id=o.id, kind=o.kind, carrier=o.carrier, label=o.label,
                                   price=money(o.price), location_id=o.location_id)
                for o in await carts.delivery_options(niaga, cart_id)]

    @put("/{cart_id:str}/delivery")
    async def delivery(self, niaga: Niaga, cart_id: str, data: DeliveryUpdate,
                       channel: Channel = None) -> CartRead:
        return cart_read(await carts.set_delivery(niaga, cart_id, data.option_id, channel))

    @put("/{cart_id:str}/loyalty", dependencies={"customer": Provide(provide_customer)})
    async def loyalty(self, niaga: Niaga, cart_id: str, data: LoyaltyUpdate,
                      customer: Customer, channel: Channel = None) -> CartRead:
        return cart_read(await carts.use_loyalty(niaga, cart_id, customer, data.points,
                                                 channel))

    @get("/{cart_id:str}/payment-methods")
    async def payment_methods(self, niaga: Niaga, cart_id: str) -> list[PaymentMethodRead]:
        return [PaymentMethodRead(id=m.id, gateway=m.gateway, label=m.label, kind=m.kind)
                for m in await carts.payment_methods(niaga, cart_id)]

    @post("/{cart_id:str}/checkout")
    async def checkout(self, niaga: Niaga, cart_id: str, data: CheckoutCreate, state: State,
                       idempotency_key: IdempotencyKey = None,
                       channel: Channel = None) -> Response[OrderRead]:
        if not idempotency_key:
            raise ValidationError.field("Idempotency-Key",
                                        "this header is required so a retry charges once")
        await admit_checkout(state.get("checkout_limiter"), niaga, cart_id)  # 429 if over
        order, created = await checkout(niaga, cart_id, data.payment, idempotency_key,
                                        request_hash(data.payment), channel)
        return Response(order_read(order), status_code=201 if created else 200)
