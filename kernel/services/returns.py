"""Returns: units come back per line, restocked where they arrive or written off, and the
money goes back pro rata through the original gateway.

A return is planned first (every check, no writes: bad input changes nothing), then
executed: the refund at the gateway, then one :meth:`Store.save_order` with the order, its
``order.returned`` event, the restocked units and the idempotency record. Exchanges
(:mod:`kernel.services.exchanges`) plan and execute the same way.

Where units go back:

- a line's ``location_id`` names where they arrive (a store other than the one that
  shipped them); it must serve the order's market;
- without one, to the locations that shipped the line, first shipment first: units
  returned earlier count against the earliest shipments.

Written-off units (``restock: false``) leave stock as it is; the history entry and the
event say which lines and quantities were written off and which were restocked where.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from kernel.errors import Conflict, ValidationError, VersionConflict
from kernel.money import Money, allocate
from kernel.orders import Allocated, Order, OrderLine
from kernel.runtime import Niaga
from kernel.services.orders import _event, _gateway, _guard, _record, _replayed, _save, load_order
from kernel.store.base import IdempotencyRecord, StockEffects

RETURNABLE = ("fulfilled", "partially_fulfilled", "partially_returned")
RETRIES = 3


class ReturnItem(msgspec.Struct, kw_only=True, frozen=True):
    line_id: str
    quantity: int
    restock: bool | None = None  # None: the request's default
    location_id: str | None = None  # where the units came back (None: where they shipped from)


class ReturnPlan(msgspec.Struct, kw_only=True):
    wanted: dict[str, int]  # line id -> units coming back
    restocked: list[dict[str, Any]]  # [{line_id, sku, location_id, quantity}]
    written_off: list[dict[str, Any]]  # [{line_id, sku, quantity, location_id?}]
    refund: Money
    status: str
    new_rows: list[tuple[str, str]] = []  # (sku, location) stock rows to create first


def items_of(lines: list[dict[str, Any]]) -> list[ReturnItem]:
    return [ReturnItem(line_id=x["line_id"], quantity=x["quantity"], restock=x.get("restock"),
                       location_id=x.get("location_id")) for x in lines]


def _shipped_from(order: Order, line: OrderLine) -> list[tuple[str | None, int]]:
    return [(f.location_id, x["quantity"]) for f in order.fulfillments for x in f.lines
            if x["line_id"] == line.id]


def _origins(order: Order, line: OrderLine, skip: int, quantity: int
             ) -> list[tuple[str | None, int]]:
    """Where ``quantity`` units of ``line`` shipped from, after the first ``skip`` units."""
    found: list[tuple[str | None, int]] = []
    for location, shipped in _shipped_from(order, line):
        passed = min(skip, shipped)
        skip -= passed
        take = min(shipped - passed, quantity)
        if take:
            found.append((location, take))
            quantity -= take
    if quantity:  # shipped before fulfilments named lines: the first location (or none)
        first = next(iter(_shipped_from(order, line)), (None, 0))[0]
        found.append((first, quantity))
    return found


async def plan(ctx: Niaga, order: Order, items: list[ReturnItem], restock: bool) -> ReturnPlan:
    """Check a return against ``order`` without changing anything; 409 on the wrong status,
    422 naming ``lines[i].…`` on a bad line."""
    if order.status not in RETURNABLE:
        raise Conflict(f"order {order.number} is {order.status}; only shipped units return")
    if not items:
        raise ValidationError.field("lines", "name the lines and quantities to return")
    served: set[str] | None = None
    if any(item.location_id is not None for item in items):
        served = {loc.id for loc in await ctx.locations(order.market)}
    wanted: dict[str, int] = {}
    refund = 0
    restocked: list[dict[str, Any]] = []
    written_off: list[dict[str, Any]] = []
    explicit: set[tuple[str, str]] = set()
    for i, item in enumerate(items):
        line = next((li for li in order.lines if li.id == item.line_id), None)
        if line is None:
            raise ValidationError.field(f"lines[{i}].line_id",
                                        f"order {order.number} has no line {item.line_id}")
        # a line named twice counts once: its quantities add up against the same room
        before = line.returned + wanted.get(line.id, 0)
        room = line.fulfilled - before
        if not 1 <= item.quantity <= room:
            raise ValidationError.field(f"lines[{i}].quantity",
                                        f"must be between 1 and {room} for {line.sku}")
        if item.location_id is not None and served is not None \
                and item.location_id not in served:
            raise ValidationError.field(
                f"lines[{i}].location_id",
                f"{item.location_id!r} is not a location of market {order.market}")
        wanted[line.id] = wanted.get(line.id, 0) + item.quantity
        # the line's paid total pro rata per unit; the last unit takes what is left
        per_unit = allocate(line.total.amount, [1] * line.quantity)
        refund += sum(per_unit[before:before + item.quantity])
        keep = restock if item.restock is None else item.restock
        if item.location_id is not None:
            places: list[tuple[str | None, int]] = [(item.location_id, item.quantity)]
        else:
            places = _origins(order, line, before, item.quantity)
        for location, qty in places:
            entry = {"line_id": line.id, "sku": line.sku, "location_id": location,
                     "quantity": qty}
            if keep and location is not None:
                restocked.append(entry)
                if item.location_id is not None:
                    explicit.add((line.sku, location))
            else:
                written_off.append(entry)
    returned = {li.id: li.returned + wanted.get(li.id, 0) for li in order.lines}
    all_back = all(returned[li.id] >= li.quantity for li in order.lines)
    money = Money(refund, order.currency)
    left = order.payment.captured - order.payment.refunded
    if all_back or money > left:
        # everything came back: refund shipping too; and never refund money never collected
        # (a refused cash-on-delivery parcel)
        money = left
    new_rows: list[tuple[str, str]] = []
    if explicit:  # a store that never stocked the SKU gets its row (one read)
        levels = await ctx.store.get_stock({sku for sku, _ in explicit},
                                           {loc for _, loc in explicit})
        new_rows = sorted(explicit - set(levels))
    return ReturnPlan(wanted=wanted, restocked=restocked, written_off=written_off,
                      refund=money, status="returned" if all_back else "partially_returned",
                      new_rows=new_rows)


def _material(order: Order) -> bytes:
    """What a return depends on; a write that changes none of it (a history note) is
    not a conflict."""
    return msgspec.json.encode([order.status, [(li.id, li.fulfilled, li.returned)
                                               for li in order.lines], order.payment])


def _apply(order: Order, p: ReturnPlan, now: float, exchange: Order | None) -> list:
    for line_id, qty in p.wanted.items():
        order.line(line_id).returned += qty
    if p.refund.amount > 0:
        order.payment.refunded = order.payment.refunded + p.refund
        order.payment.status = ("refunded" if order.payment.refunded >= order.payment.captured
                                else "partially_refunded")
    lines = [{"line_id": k, "quantity": v} for k, v in p.wanted.items()]
    detail: dict[str, Any] = {"refund": p.refund.format_amount(), "lines": lines,
                              "restock": bool(p.restocked) and not p.written_off,
                              "restocked": p.restocked, "written_off": p.written_off}
    if exchange is not None:
        detail["exchange"] = exchange.id
        if exchange.id not in order.exchanged_for:
            order.exchanged_for.append(exchange.id)
    order.move_to(p.status, now, "returned", **detail)  # type: ignore[arg-type]
    data = {"refund": p.refund.format_amount(), "lines": dict(p.wanted),
            "restocked": p.restocked, "written_off": p.written_off}
    if exchange is not None:
        order.record(now, "exchanged", order_id=exchange.id, number=exchange.number)
        data["exchange"] = exchange.id
    return [_event(order, "order.returned", now, **data)]


async def execute(ctx: Niaga, order: Order, p: ReturnPlan, gateway_key: str,
                  remember: Callable[[Order], IdempotencyRecord],
                  exchange: Order | None = None) -> Order:
    """Refund, then one write. A concurrent write that changed nothing the return depends on
    (the loyalty ledger noting its reversal) is retried on the fresh order, so the refund
    already made is never left unrecorded for a history note."""
    _guard(ctx, order, p.status)  # before any money goes back
    if p.refund.amount > 0:
        await _gateway(ctx, order, "refund", p.refund, gateway_key)
    now = ctx.clock()
    for sku, location in p.new_rows:
        # on_hand None: create the row if it is still missing, never overwrite a count
        # someone set since the plan read it
        await ctx.store.set_stock(sku, location, None, "return", now)
    basis = _material(order)
    back = [Allocated(sku=r["sku"], location_id=r["location_id"], quantity=r["quantity"])
            for r in p.restocked]
    for attempt in range(RETRIES):
        events = _apply(order, p, now, exchange)
        try:
            return await _save(ctx, order, events, StockEffects(restock=back),
                               idempotency=remember(order))
        except VersionConflict:
            fresh = await load_order(ctx, order.id)
            if attempt == RETRIES - 1 or _material(fresh) != basis:
                raise
            order = fresh
    raise AssertionError("unreachable")  # pragma: no cover


async def return_lines(ctx: Niaga, order_id: str, lines: list[dict[str, Any]], restock: bool,
                       key: str, body_hash: str) -> Order:
    scope = f"return:{order_id}"
    if (first := await _replayed(ctx, scope, key, body_hash)) is not None:
        return first
    order = await load_order(ctx, order_id)
    p = await plan(ctx, order, items_of(lines), restock)
    return await execute(ctx, order, p, f"{order.id}:{key}",
                         lambda o: _record(scope, key, body_hash, o))
