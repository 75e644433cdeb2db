"""Store pickup (click & collect): free pickup at any store that has every item in stock.

Offers one option per store of the market whose own stock covers every line
of the cart, so a customer never picks a store that must wait for a transfer.
Booking a pickup gives a short pickup code ("PU-…") instead of a tracking number.

Settings (``[markets.XX.plugins.store-pickup]``), all optional:

- ``label`` (default ``"Pick up in store: {name}"``): the option's name;
  ``{name}``, ``{city}`` and ``{id}`` are replaced with the store's.
"""

from __future__ import annotations

import msgspec

from kernel import Market, Money, hookimpl
from kernel.catalog import Location
from kernel.delivery import DeliveryContext, DeliveryOption
from plugins.carriers._booking import OfflineBooking


def _fields(loc: Location) -> dict[str, str]:
    return {"name": loc.name, "city": loc.city or loc.name, "id": loc.id}


class StorePickup(OfflineBooking):
    name = "store-pickup"
    family = "carrier"
    tracking_prefix = "PU-"
    tracking_digits = 6
    tracking_status = "ready_for_pickup"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        label: str = "Pick up in store: {name}"

    def __init__(self, config: Config, market: Market):
        try:
            config.label.format_map({"name": "x", "city": "x", "id": "x"})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"label: {config.label!r} may only use {{name}}, {{city}} and {{id}} ({exc!r})"
            ) from exc
        self.config = config
        self.market = market

    @hookimpl
    def niaga_delivery_options(self, context: DeliveryContext,
                               market: Market) -> list[DeliveryOption]:
        cart = context.cart
        if not cart.lines:
            return []
        return [
            DeliveryOption(
                id=f"{self.name}:{loc.id}",
                kind="pickup",
                carrier=self.name,
                label=self.config.label.format_map(_fields(loc)),
                price=Money.zero(cart.currency),
                location_id=loc.id,
            )
            for loc in context.locations
            if loc.kind == "store" and context.can_fill(loc.id)
        ]

