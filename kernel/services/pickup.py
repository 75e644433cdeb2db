"""Click and collect: the store says an order is ready, then hands it over.

Both steps are for orders whose delivery is a pickup, and both are one atomic
:meth:`Store.save_order` with their history entry and outbox event.
"""

from __future__ import annotations

from kernel.errors import Conflict
from kernel.orders import Order
from kernel.runtime import Niaga
from kernel.services import orders
from kernel.store.base import StockEffects

READY = "ready_for_pickup"
PICKED_UP = "picked_up"


def _pickup_location(order: Order) -> str:
    delivery = order.delivery
    if delivery is None or delivery.kind != "pickup" or not delivery.location_id:
        kind = delivery.kind if delivery else "no delivery"
        raise Conflict(f"order {order.number} is not a pickup order ({kind}); ship it with "
                       "POST /admin/orders/{id}/fulfillments")
    return delivery.location_id


def _remaining(order: Order) -> dict[str, int]:
    return {line.id: left for line in order.lines
            if (left := line.quantity - line.fulfilled - line.returned) > 0}


def _held_at(order: Order, location_id: str) -> None:
    """Every unit still to hand over must be held at the pickup store: the shelf the staff
    take it from. Units allocated elsewhere need a transfer first."""
    away = sorted({f"{a.sku} at {a.location_id}" for a in order.allocations
                   if a.location_id != location_id and a.quantity > 0})
    if away:
        raise Conflict(f"order {order.number} holds {', '.join(away)}, not at the pickup "
                       f"store {location_id}; transfer the units there first")


def _picked_up(order: Order) -> bool:
    return any(h.event == PICKED_UP for h in order.history)


async def ready_for_pickup(ctx: Niaga, order_id: str) -> Order:
    """The store has the order on its shelf. A second call changes nothing (staff tap
    twice; the customer is told once)."""
    order = await orders.load_order(ctx, order_id)
    location_id = _pickup_location(order)
    if any(h.event == READY for h in order.history) and order.status != "cancelled":
        return order
    orders.fulfillable(order)
    _held_at(order, location_id)
    now = ctx.clock()
    order.record(now, READY, location_id=location_id)
    event = orders._event(order, f"order.{READY}", now, location_id=location_id)
    return await orders._save(ctx, order, [event])


async def picked_up(ctx: Niaga, order_id: str) -> Order:
    """The customer took every remaining unit at the pickup store: they leave its stock,
    one fulfilment records it, the order is fulfilled. Also right at the counter without a
    ready step. A second call on the picked-up order changes nothing."""
    order = await orders.load_order(ctx, order_id)
    location_id = _pickup_location(order)
    if order.status == "fulfilled" and _picked_up(order):
        return order
    orders.fulfillable(order)
    wanted = _remaining(order)
    if not wanted:
        raise Conflict(f"order {order.number} has nothing left to pick up")
    _held_at(order, location_id)
    now = ctx.clock()
    events, shipped = await orders.record_fulfilments(ctx, order, wanted, location_id, None,
                                                      now, step=PICKED_UP)
    # the status event (order.fulfilled) for every consumer of fulfilments, and the step
    events.append(orders._event(order, f"order.{PICKED_UP}", now, location_id=location_id,
                                fulfillment=order.fulfillments[-1].id))
    return await orders._save(ctx, order, events, StockEffects(fulfil=shipped))
