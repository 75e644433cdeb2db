"""Order use cases after checkout: pay, capture, fulfil, cancel, return, expire.

Every change is one :meth:`Store.save_order`: the order (version-conditioned),
its events, its stock effects and the idempotency record, atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kernel.errors import Conflict, GatewayError, NotFound, ValidationError
from kernel.events import Event
from kernel.ids import new_id
from kernel.money import Money
from kernel.orders import Allocated, Fulfillment, Order
from kernel.payments import OperationResult, WebhookEvent
from kernel.runtime import Niaga
from kernel.services import payments
from kernel.store.base import IdempotencyRecord, StockEffects

log = logging.getLogger("niaga.orders")


async def load_order(ctx: Niaga, order_id: str) -> Order:
    order = await ctx.store.get_order(order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


def _event(order: Order, type_: str, at: float, **data: Any) -> Event:
    # the customer id lets consumers (the loyalty ledger) skip guest orders without a read
    return Event(id=new_id(), type=type_, market=order.market, subject=order.id, at=at,
                 data={"number": order.number, "customer_id": order.customer_id, **data})


def _guard(ctx: Niaga, order: Order, to_status: str) -> None:
    market = ctx.market(order.market)
    reasons = ctx.plugins_for(order.market).collect("niaga_order_transition", order=order,
                                                    to_status=to_status, market=market)
    if reasons:
        raise Conflict(f"order {order.number} cannot become {to_status}: {'; '.join(reasons)}")


async def _save(ctx: Niaga, order: Order, events: list[Event],
                effects: StockEffects | None = None,
                idempotency: IdempotencyRecord | None = None,
                remember: tuple[str, str, str] | None = None) -> Order:
    """Persist a change; ``remember`` = (scope, key, body hash) stores the order as the
    response a replay of that request gets."""
    version = order.version
    order.version += 1
    if remember is not None:
        idempotency = _record(*remember, order)
    await ctx.store.save_order(order, version, events, effects, idempotency)
    ctx.dispatcher.kick()
    return order


async def _gateway(ctx: Niaga, order: Order, action: str, amount: Money,
                   key: str) -> OperationResult:
    op = payments.operation(order.id, order.payment.reference, amount, key)
    return await payments.operate(ctx, order.market, order.payment.gateway, action, op)


async def mark_paid(ctx: Niaga, order_id: str, reference: str | None,
                    source: str = "admin") -> Order:
    order = await load_order(ctx, order_id)
    if order.payment.status == "captured":
        return order  # already paid: marking twice changes nothing
    shipped_unpaid = order.payment.ship_unpaid and order.status in (
        "partially_fulfilled", "fulfilled")
    if order.status not in ("pending_payment", "authorized", "on_hold") and not shipped_unpaid:
        raise Conflict(f"order {order.number} is {order.status}; it cannot be marked paid")
    now = ctx.clock()
    order.payment.status = "captured"
    order.payment.captured = order.total
    order.payment.authorized = order.total
    order.payment_due_at = None
    if shipped_unpaid or order.status == "on_hold":
        # cash collected at the door, or paid while held: the status stays where it is
        order.record(now, "paid", source=source, reference=reference)
    else:
        _guard(ctx, order, "paid")
        order.move_to("paid", now, "paid", source=source, reference=reference)
    return await _save(ctx, order, [_event(order, "order.paid", now, source=source)])


async def release_hold(ctx: Niaga, order_id: str, note: str | None) -> Order:
    """A person reviewed a held order and lets it go on, to where its payment puts it."""
    order = await load_order(ctx, order_id)
    if order.status != "on_hold":
        raise Conflict(f"order {order.number} is {order.status}, not on hold")
    to = order.status_after_payment()
    _guard(ctx, order, to)
    now = ctx.clock()
    order.move_to(to, now, "released", note=note, rule=(order.hold or {}).get("rule"))
    order.hold = None
    return await _save(ctx, order, [_event(order, "order.released", now, to=to)])


async def _replayed(ctx: Niaga, scope: str, key: str, body_hash: str) -> Order | None:
    """The order as the first request with this key left it, or None for a new key."""
    import msgspec

    from kernel.errors import IdempotencyMismatch

    record = await ctx.store.get_idempotency(scope, key)
    if record is None:
        return None
    if record.request_hash != body_hash:
        raise IdempotencyMismatch(
            "this Idempotency-Key was used with a different body",
            errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}])
    return msgspec.json.decode(record.body, type=Order)


def _record(scope: str, key: str, body_hash: str, order: Order) -> IdempotencyRecord:
    import msgspec

    return IdempotencyRecord(scope=scope, key=key, request_hash=body_hash, status=200,
                             body=msgspec.json.encode(order))


async def capture(ctx: Niaga, order_id: str, amount: Money | None, key: str,
                  body_hash: str) -> Order:
    scope = f"capture:{order_id}"
    if (first := await _replayed(ctx, scope, key, body_hash)) is not None:
        return first
    order = await load_order(ctx, order_id)
    if order.status != "authorized":
        raise Conflict(f"order {order.number} is {order.status}; only authorized orders capture")
    amount = amount or order.payment.authorized
    held = order.payment.authorized
    if amount.currency != order.currency or not 0 < amount.amount <= held.amount:
        raise ValidationError.field("amount", f"must be between 0 and {order.payment.authorized}")
    _guard(ctx, order, "paid")
    await _gateway(ctx, order, "capture", amount, f"{order.id}:{key}")
    now = ctx.clock()
    order.payment.status = "captured"
    order.payment.captured = amount
    order.move_to("paid", now, "captured", amount=amount.format_amount())
    return await _save(ctx, order, [_event(order, "order.paid", now)],
                       remember=(scope, key, body_hash))


async def cancel(ctx: Niaga, order_id: str, reason: str | None, source: str = "admin",
                 event: str = "cancelled") -> Order:
    order = await load_order(ctx, order_id)
    if order.status == "cancelled":
        return order
    if any(line.fulfilled for line in order.lines):
        raise Conflict(f"order {order.number} has shipped units; return them instead")
    _guard(ctx, order, "cancelled")
    key = f"cancel:{order.id}"
    money_note: dict[str, str] = {}
    payment = order.payment
    if payment.status == "authorized":
        await _gateway(ctx, order, "void", payment.authorized, key)
        payment.status = "voided"
        money_note["voided"] = payment.authorized.format_amount()
    elif payment.status in ("captured", "partially_refunded"):
        due = payment.captured - payment.refunded
        if due.amount > 0:
            await _gateway(ctx, order, "refund", due, key)
            payment.refunded = payment.refunded + due
        payment.status = "refunded"
        money_note["refunded"] = due.format_amount()
    elif payment.status == "pending":
        # close what the customer could still pay (a virtual account, a QR code)
        await _gateway(ctx, order, "void", order.total, key)
        payment.status = "voided"
    now = ctx.clock()
    order.payment_due_at = None
    order.move_to("cancelled", now, event, reason=reason, source=source, **money_note)
    type_ = "order.expired" if event == "expired" else "order.cancelled"
    return await _save(ctx, order, [_event(order, type_, now, reason=reason)],
                       StockEffects(release=True))


def _take(allocations: list[Allocated], sku: str, quantity: int,
          location_id: str | None) -> tuple[list[Allocated], list[Allocated]]:
    """Split ``quantity`` of ``sku`` off the order's allocations (at ``location_id`` if given)."""
    taken: list[Allocated] = []
    left: list[Allocated] = []
    need = quantity
    for alloc in allocations:
        if need and alloc.sku == sku and location_id in (None, alloc.location_id):
            take = min(need, alloc.quantity)
            need -= take
            taken.append(Allocated(sku=sku, location_id=alloc.location_id, quantity=take))
            if alloc.quantity > take:
                left.append(Allocated(sku=sku, location_id=alloc.location_id,
                                      quantity=alloc.quantity - take))
        else:
            left.append(alloc)
    if need:
        where = f" at {location_id}" if location_id else ""
        raise ValidationError.field("lines", f"{sku}: only {quantity - need} unit(s) "
                                             f"allocated{where}")
    return taken, left


def _line_quantities(order: Order, lines: list[dict[str, Any]] | None,
                     room: Callable[[Any], int]) -> dict[str, int]:
    if lines is None:
        return {line.id: room(line) for line in order.lines if room(line) > 0}
    wanted: dict[str, int] = {}
    for i, item in enumerate(lines):
        line = order.line(item["line_id"])
        qty = item["quantity"]
        # a line named twice counts once: its quantities add up against the same room
        left = room(line) - wanted.get(line.id, 0)
        if not 1 <= qty <= left:
            raise ValidationError.field(f"lines[{i}].quantity",
                                        f"must be between 1 and {left} for {line.sku}")
        wanted[line.id] = wanted.get(line.id, 0) + qty
    return wanted


def fulfillable(order: Order) -> None:
    """Paid orders ship; cash on delivery ships (or is picked up) before it is paid."""
    cod = order.payment.ship_unpaid and order.status == "pending_payment"
    if order.status not in ("paid", "partially_fulfilled") and not cod:
        raise Conflict(f"order {order.number} is {order.status}; only paid orders ship")


async def fulfil(ctx: Niaga, order_id: str, lines: list[dict[str, Any]] | None,
                 location_id: str | None, tracking_number: str | None) -> Order:
    order = await load_order(ctx, order_id)
    fulfillable(order)
    wanted = _line_quantities(order, lines,
                              lambda li: li.quantity - li.fulfilled - li.returned)
    if not wanted:
        raise ValidationError.field("lines", "nothing left to fulfil")
    events, shipped = await record_fulfilments(ctx, order, wanted, location_id,
                                               tracking_number, ctx.clock())
    return await _save(ctx, order, events, StockEffects(fulfil=shipped))


async def record_fulfilments(ctx: Niaga, order: Order, wanted: dict[str, int],
                             location_id: str | None, tracking_number: str | None, now: float,
                             step: str | None = None) -> tuple[list[Event], list[Allocated]]:
    """Take ``wanted`` (line id -> units) off the order's allocations, only at
    ``location_id`` if named, and record one Fulfillment per location the units leave from,
    each booked with the carrier (its own tracking number). The order moves as if they
    shipped one after the other (partially_fulfilled, then fulfilled), each step in the
    history (as ``step`` if given) with its event. Returns the events and the units that
    leave stock, for the caller's one atomic save."""
    allocations = list(order.allocations)
    shipped: list[Allocated] = []
    by_location: dict[str, dict[str, int]] = {}
    for line_id, qty in wanted.items():
        taken, allocations = _take(allocations, order.line(line_id).sku, qty, location_id)
        shipped += taken
        for item in taken:
            at_loc = by_location.setdefault(item.location_id, {})
            at_loc[line_id] = at_loc.get(line_id, 0) + item.quantity
    if tracking_number is not None and len(by_location) > 1:
        raise ValidationError.field(
            "tracking_number", f"these units leave from {len(by_location)} locations "
                               f"({', '.join(by_location)}): one parcel each; name location_id "
                               "or let the carrier number them")
    plan: list[tuple[str, dict[str, int], str]] = []
    for loc, quantities in by_location.items():
        for line_id, qty in quantities.items():
            order.line(line_id).fulfilled += qty
        plan.append((loc, quantities,
                     "fulfilled" if order.fully_fulfilled else "partially_fulfilled"))
    for status in dict.fromkeys(status for _, _, status in plan):
        _guard(ctx, order, status)  # before the carrier books anything
    events: list[Event] = []
    for loc, quantities, status in plan:
        fulfillment = Fulfillment(id=new_id(), location_id=loc,
                                  lines=[{"line_id": k, "quantity": v}
                                         for k, v in quantities.items()],
                                  tracking_number=tracking_number, at=now)
        if tracking_number is None and order.delivery is not None:
            shipment = await _carrier(ctx, order.market, "niaga_create_shipment",
                                      carrier=order.delivery.carrier, order=order,
                                      fulfillment=fulfillment)
            if shipment is not None:
                fulfillment.tracking_number = shipment.tracking_number
        order.fulfillments.append(fulfillment)
        order.move_to(status, now, step or status, fulfillment=fulfillment.id,  # type: ignore[arg-type]
                      location_id=loc, tracking_number=fulfillment.tracking_number)
        events.append(_event(order, f"order.{status}", now, fulfillment=fulfillment.id))
    order.allocations = allocations
    return events, shipped


async def return_lines(ctx: Niaga, order_id: str, lines: list[dict[str, Any]], restock: bool,
                       key: str, body_hash: str) -> Order:
    """Units back per line (``restock``/``location_id`` per line, ``restock`` the default),
    refunded pro rata through the original gateway: see :mod:`kernel.services.returns`."""
    from kernel.services import returns

    return await returns.return_lines(ctx, order_id, lines, restock, key, body_hash)


async def apply_webhook(ctx: Niaga, plugin: str, event: WebhookEvent) -> Order | None:
    """A verified gateway notification, applied once (the event id is the idempotency key)."""
    if event.kind == "ignored" or event.order_id is None:
        return None
    if await ctx.store.get_idempotency(f"webhook:{plugin}", event.id) is not None:
        return None
    order = await ctx.store.get_order(event.order_id)
    if order is None:  # e.g. a payment whose order was never placed: answered 2xx, logged
        log.warning("webhook %s from %s names unknown order %s", event.id, plugin,
                    event.order_id)
        return None
    if order.payment.gateway != plugin:
        return None  # a gateway speaks only for the payments it took
    record = IdempotencyRecord(scope=f"webhook:{plugin}", key=event.id, request_hash=event.id,
                               status=200, body=b"{}")
    now = ctx.clock()
    if (event.kind == "payment.captured" and event.amount is not None
            and event.amount != order.total):
        # never mark an order paid for money that does not match it: flag it for a person
        order.record(now, "webhook:amount_mismatch", event_id=event.id, plugin=plugin,
                     amount=event.amount.format_amount(), expected=order.total.format_amount())
        return await _save(ctx, order, [], idempotency=record)
    if event.kind == "payment.captured" and order.status in ("pending_payment", "authorized"):
        order.payment.status = "captured"
        order.payment.captured = event.amount or order.total
        order.payment_due_at = None
        order.move_to("paid", now, "paid", source=f"webhook:{plugin}", event_id=event.id)
        return await _save(ctx, order, [_event(order, "order.paid", now)], idempotency=record)
    if event.kind == "payment.failed" and order.status == "pending_payment":
        order.payment.status = "failed"
        order.move_to("cancelled", now, "payment_failed", source=f"webhook:{plugin}",
                      event_id=event.id)
        return await _save(ctx, order, [_event(order, "order.cancelled", now)],
                           StockEffects(release=True), idempotency=record)
    order.record(now, f"webhook:{event.kind}", event_id=event.id, plugin=plugin)
    return await _save(ctx, order, [], idempotency=record)


async def tracking(ctx: Niaga, order_id: str) -> list[dict[str, Any]]:
    """The carrier's current status of every fulfilment that has a tracking number."""
    order = await load_order(ctx, order_id)
    carrier = order.delivery.carrier if order.delivery else None
    found = []
    for f in order.fulfillments:
        if not (carrier and f.tracking_number):
            continue
        status = await _carrier(ctx, order.market, "niaga_track_shipment", carrier=carrier,
                                tracking_number=f.tracking_number)
        found.append({"fulfillment_id": f.id, "carrier": carrier,
                      "tracking_number": f.tracking_number,
                      "status": status.status if status else "unknown",
                      "detail": status.detail if status else None})
    return found


async def _carrier(ctx: Niaga, market: str, hook: str, **kwargs: Any) -> Any:
    """A carrier call off the event loop; its failure is a GatewayError naming the carrier."""
    try:
        return await ctx.offload(ctx.plugins_for(market).first, market=market,
                                 plugin=kwargs["carrier"], hook=hook, **kwargs)
    except GatewayError:
        raise
    except Exception as exc:
        raise GatewayError(f"carrier {kwargs['carrier']} failed: {exc}",
                           carrier=kwargs["carrier"]) from exc


async def sweep(ctx: Niaga) -> dict[str, int]:
    """Expire unpaid orders past their window and release stock held by crashed checkouts."""
    now = ctx.clock()
    expired = 0
    for order in await ctx.store.unpaid_orders_due(now):
        try:
            await cancel(ctx, order.id, "payment window passed", source="sweeper",
                         event="expired")
            expired += 1
        except Conflict:
            continue  # paid or changed meanwhile
    released = 0
    for order_id in await ctx.store.orphan_reservations(now):
        released += await ctx.store.release_orphans(order_id)
    return {"orders_expired": expired, "units_released": released}
