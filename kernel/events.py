"""Domain events, written to the outbox in the same atomic write as the change they describe."""

from __future__ import annotations

from typing import Any

import msgspec

EVENT_TYPES = (
    "order.placed",
    "order.held",
    "order.released",
    "order.paid",
    "order.cancelled",
    "order.expired",
    "order.fulfilled",
    "order.partially_fulfilled",
    "order.ready_for_pickup",
    "order.picked_up",
    "order.returned",
    "stock.low",
)


class Event(msgspec.Struct, kw_only=True):
    id: str
    type: str
    market: str
    subject: str  # the id of the order, SKU, ... the event is about
    at: float
    data: dict[str, Any] = {}
