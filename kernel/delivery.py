"""What the kernel and carrier plugins say to each other."""

from __future__ import annotations

from typing import Literal

import msgspec

from kernel.cart import Cart, units_by_sku
from kernel.catalog import Location
from kernel.inventory import StockLevel, available
from kernel.money import Money


class DeliveryOption(msgspec.Struct, kw_only=True, frozen=True):
    id: str  # unique within the market, e.g. "flat-rate:express", "store-pickup:id-jkt-gi"
    kind: Literal["ship", "pickup"]
    carrier: str  # the plugin offering it
    label: str
    price: Money
    location_id: str | None = None


class DeliveryContext(msgspec.Struct, kw_only=True):
    cart: Cart
    locations: list[Location]  # the market's locations
    stock: dict[tuple[str, str], StockLevel]  # (sku, location_id) for the cart's SKUs

    def can_fill(self, location_id: str) -> bool:
        """Whether one location has every unit of the cart in stock (pickup, ship-from-store)."""
        return all(available(self.stock, sku, location_id) >= qty
                   for sku, qty in units_by_sku(self.cart.lines).items())


class Shipment(msgspec.Struct, kw_only=True, frozen=True):
    carrier: str
    tracking_number: str
    label_url: str | None = None


class TrackingStatus(msgspec.Struct, kw_only=True, frozen=True):
    carrier: str
    tracking_number: str
    status: str  # e.g. "label_created", "in_transit", "delivered", "ready_for_pickup"
    detail: str | None = None
