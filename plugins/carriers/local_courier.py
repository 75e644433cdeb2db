"""Local courier: same-day delivery from a store in the customer's own city.

Once the customer has given a shipping address, every store of the market in
the same city (or, with ``match = "region"``, the same region) and country that
has every item of the cart in its own stock is offered as a same-day courier
option, at one fixed price. The parcel leaves from that store, so a customer is
never offered a store that would have to wait for a transfer. Without an address
there is nothing to offer. Cities and regions are compared without case and
surrounding spaces ("jakarta " matches "Jakarta").

Settings (``[markets.XX.plugins.local-courier]``):

- ``price`` (required): the courier's price, a decimal string in the market's
  currency ("15000", "7.50").
- ``label`` (default ``"Same-day courier from {store}"``): the option's name;
  ``{store}``, ``{city}``, ``{region}`` and ``{id}`` are replaced with the store's.
- ``match`` (default ``"city"``): ``"city"`` or ``"region"``, which part of
  the address must equal the store's.

Example::

    [markets.ID.plugins.local-courier]
    price = "25000"
    label = "Kurir hari ini dari {store}"
    match = "city"

Shipments get a courier reference ("LC-…") derived from the order and fulfilment.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from kernel import Market, Money, hookimpl
from kernel.catalog import Location
from kernel.delivery import DeliveryContext, DeliveryOption
from plugins.carriers._booking import OfflineBooking


def _norm(text: str | None) -> str:
    return (text or "").strip().casefold()


def _fields(loc: Location) -> dict[str, str]:
    return {"store": loc.name, "city": loc.city or loc.name, "region": loc.region or "",
            "id": loc.id}


class LocalCourier(OfflineBooking):
    name = "local-courier"
    family = "carrier"
    tracking_prefix = "LC-"
    tracking_digits = 8
    tracking_status = "in_transit"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        price: str
        label: str = "Same-day courier from {store}"
        match: Literal["city", "region"] = "city"

    def __init__(self, config: Config, market: Market):
        try:
            self.price = Money.parse(config.price, market.currency)
        except ValueError as exc:
            raise ValueError(f"price: {exc}") from exc
        if self.price.amount < 0:
            raise ValueError("price: must not be negative")
        if not config.label.strip():
            raise ValueError("label: must not be empty")
        try:
            config.label.format_map({"store": "x", "city": "x", "region": "x", "id": "x"})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"label: {config.label!r} may only use {{store}}, {{city}}, {{region}} and "
                f"{{id}} ({exc!r})"
            ) from exc
        self.config = config
        self.market = market

    @hookimpl
    def niaga_delivery_options(self, context: DeliveryContext,
                               market: Market) -> list[DeliveryOption]:
        cart = context.cart
        address = cart.address
        if address is None or not cart.lines:
            return []
        field = self.config.match
        wanted = _norm(getattr(address, field))
        if not wanted:
            return []
        country = _norm(address.country)
        return [
            DeliveryOption(
                id=f"{self.name}:{loc.id}",
                kind="ship",
                carrier=self.name,
                label=self.config.label.format_map(_fields(loc)),
                price=self.price,
                location_id=loc.id,
            )
            for loc in context.locations
            if loc.kind == "store"
            and _norm(getattr(loc, field)) == wanted
            and _norm(loc.country) == country
            and context.can_fill(loc.id)
        ]

