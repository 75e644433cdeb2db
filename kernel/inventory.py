"""Inventory: stock per (SKU, location), reservations, and the default allocation rule."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from kernel.catalog import Location
from kernel.events import Event
from kernel.orders import Allocated

# units on hand of one (SKU, location): far above any real stock, and under half of the
# SQL INTEGER column's 2**31 - 1, so one more in-range delta cannot overflow it either
MAX_ON_HAND = 1_000_000_000


class StockLevel(msgspec.Struct, kw_only=True):
    sku: str
    location_id: str
    on_hand: int
    reserved: int = 0
    low_threshold: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class Reservation(msgspec.Struct, kw_only=True, frozen=True):
    """Units held for an order (or a checkout about to become one) until ``expires_at``.

    ``expires_at`` is None once the order is placed and paid: the units stay
    reserved until they are fulfilled, cancelled or returned.
    """

    order_id: str
    sku: str
    location_id: str
    quantity: int
    expires_at: float | None


class AllocationRequest(msgspec.Struct, kw_only=True):
    """What an allocation hook decides on: which locations give how many of each SKU."""

    market: str
    needs: dict[str, int]  # sku -> quantity
    kind: str  # "ship" | "pickup"
    # the location the chosen delivery option names: the pickup store, or the store a
    # ship-from-store courier leaves from; None lets allocation choose
    pickup_location_id: str | None
    locations: list[Location]  # the market's locations, warehouses first
    stock: dict[tuple[str, str], StockLevel]  # (sku, location_id) -> level


def is_low(level: StockLevel) -> bool:
    """At or under its low-stock threshold; a threshold of 0 means none is set."""
    return level.low_threshold > 0 and level.available <= level.low_threshold


def fell_low(before: StockLevel | None, after: StockLevel) -> bool:
    """The change crossed into low stock: it was not low before and is now. A row that was
    already low stays quiet, so a merchant hears once per fall, not on every sale below it;
    a new row has no before (whoever created it knows its level)."""
    return before is not None and is_low(after) and not is_low(before)


def low_stock_events(level: StockLevel, markets: Sequence[str], at: float,
                     event_id: str, *, reason: str, order_id: str | None = None
                     ) -> list[Event]:
    """``stock.low`` once per market the location serves: the event's market routes it to
    that market's plugins, and a shared warehouse running low concerns every market it
    serves. ``event_id`` + ``:<market>`` keeps ids stable for a redelivered stream record.
    A location serving no market gets one event for every market (market ``*``)."""
    data: dict[str, object] = {"sku": level.sku, "location_id": level.location_id,
                               "available": level.available,
                               "threshold": level.low_threshold, "reason": reason}
    if order_id is not None:
        data["order_id"] = order_id
    return [Event(id=f"{event_id}:{market}", type="stock.low", market=market,
                  subject=f"{level.sku}@{level.location_id}", at=at, data=dict(data))
            for market in (list(dict.fromkeys(markets)) or ["*"])]


def available(stock: dict[tuple[str, str], StockLevel], sku: str, location_id: str) -> int:
    level = stock.get((sku, location_id))
    return level.available if level else 0


def default_allocation(req: AllocationRequest) -> list[Allocated] | None:
    """An option tied to a location (pickup, ship-from-store): that location. Otherwise one
    warehouse that has it all, else one store, else split across locations.

    Returns None when the stock cannot cover the need.
    """
    if req.pickup_location_id:
        loc = req.pickup_location_id
        if all(available(req.stock, s, loc) >= q for s, q in req.needs.items()):
            return [Allocated(sku=s, location_id=loc, quantity=q) for s, q in req.needs.items()]
        return None
    ordered = sorted(req.locations, key=lambda loc: (loc.kind != "warehouse", loc.id))
    for loc in ordered:
        if all(available(req.stock, s, loc.id) >= q for s, q in req.needs.items()):
            return [Allocated(sku=s, location_id=loc.id, quantity=q) for s, q in req.needs.items()]
    result: list[Allocated] = []
    for sku, need in req.needs.items():
        left = need
        for loc in ordered:
            take = min(left, available(req.stock, sku, loc.id))
            if take > 0:
                result.append(Allocated(sku=sku, location_id=loc.id, quantity=take))
                left -= take
            if not left:
                break
        if left:
            return None
    return result


def shortfalls(req: AllocationRequest) -> dict[str, int]:
    """SKU -> units available in the market, for each SKU the market cannot cover."""
    short = {}
    for sku, need in req.needs.items():
        total = sum(available(req.stock, sku, loc.id) for loc in req.locations)
        if total < need:
            short[sku] = max(total, 0)
    return short
