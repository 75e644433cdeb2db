"""Audit: recompute every order's money and every stock level from history; list what differs.

What is recomputed, and where:

- **Orders (every store):** the totals invariant (:func:`kernel.totals.check_totals`: totals
  from lines and adjustments, rounding included), each line's fulfilled units from the
  order's fulfilments, and the payment: amounts in the order's currency, ``0 ≤ refunded ≤
  captured ≤ total``, ``authorized ≤ total``, the payment status agreeing with its amounts
  and the order status agreeing with the payment.
- **on_hand (SQL only):** ``Σ niaga_stock_movement.delta − Σ units fulfilled from the row``.
  The movement log holds counts (set), adjustments (POS, corrections) and restocked
  returns; fulfilments are not logged there, they are read from the orders' fulfilments
  (same transaction as the stock update). DynamoDB keeps no movement rows (its stream is
  the history and is not retained), so on_hand is not recomputed there.
- **reserved:** SQL: the row's ``reserved`` equals the sum of its reservation rows, and each
  order's reservation rows equal the units the order still holds (``Order.allocations``,
  cancelled orders hold none). A reservation whose checkout never became an order is a
  checkout in flight until it expires; past expiry it is reported (the sweeper releases
  it). DynamoDB: ``reserved`` equals the units held by non-cancelled orders (a checkout in
  flight there shows as a difference: audit a store at rest).

Memory is bounded by the number of stock rows and open holds, not by orders: orders are
read a page at a time (:func:`kernel.services.reports._pages`) and folded into sums.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import msgspec

from kernel.errors import InvariantError
from kernel.orders import Order
from kernel.runtime import Niaga

Key = tuple[str, str]  # (sku, location id)


class Discrepancy(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "order.totals", "order.payment", "order.lines", "stock.on_hand", ...
    subject: str  # the order (id and number) or the stock row (sku@location)
    detail: str


class AuditReport(msgspec.Struct, kw_only=True):
    store: str
    orders: int = 0
    stock_rows: int = 0
    checks: list[str] = []  # what was recomputed on this store
    discrepancies: list[Discrepancy] = []
    seconds: float = 0.0


# order status -> payment statuses it may have (on_hold may have any)
_PAYMENT_OF_STATUS: dict[str, frozenset[str]] = {
    "pending_payment": frozenset({"pending", "failed"}),
    "authorized": frozenset({"authorized"}),
    "paid": frozenset({"captured"}),
    "cancelled": frozenset({"voided", "refunded", "failed", "pending"}),
}
_TAKEN = frozenset({"captured", "partially_refunded", "refunded"})


def check_order(order: Order) -> list[Discrepancy]:
    """Everything wrong with one order's money and lines, recomputed from the order."""
    subject = f"{order.number} ({order.id})"
    found: list[Discrepancy] = []

    def bad(kind: str, detail: str) -> None:
        found.append(Discrepancy(kind=kind, subject=subject, detail=detail))

    try:
        from kernel.totals import check_totals

        check_totals(order)
    except InvariantError as exc:
        bad("order.totals", str(exc).split(": ", 1)[-1])
    shipped: dict[str, int] = defaultdict(int)
    for f in order.fulfillments:
        for item in f.lines:
            shipped[item["line_id"]] += int(item["quantity"])
    for line in order.lines:
        if line.fulfilled != shipped.pop(line.id, 0):
            bad("order.lines", f"line {line.id}: fulfilled {line.fulfilled} != "
                               f"{shipped.get(line.id, 0)} in fulfilments")
        if not 0 <= line.returned <= line.fulfilled <= line.quantity:
            bad("order.lines", f"line {line.id}: not 0 ≤ returned {line.returned} ≤ "
                               f"fulfilled {line.fulfilled} ≤ quantity {line.quantity}")
    for line_id in shipped:
        bad("order.lines", f"a fulfilment names line {line_id}, which the order does not have")
    p, total = order.payment, order.total.amount
    for name in ("authorized", "captured", "refunded"):
        if getattr(p, name).currency != order.currency:
            bad("order.payment", f"{name} is not in {order.currency}")
    auth, cap, ref = p.authorized.amount, p.captured.amount, p.refunded.amount
    if not 0 <= ref <= cap <= total:
        bad("order.payment", f"not 0 ≤ refunded {ref} ≤ captured {cap} ≤ total {total}")
    if not 0 <= auth <= total:
        bad("order.payment", f"authorized {auth} outside 0..total {total}")
    expected = {"captured": ref == 0, "partially_refunded": 0 < ref < cap,
                "refunded": ref == cap, "authorized": cap == 0 and ref == 0,
                "pending": cap == 0 and ref == 0, "voided": cap == ref}.get(p.status, True)
    if not expected:
        bad("order.payment", f"payment {p.status} with captured {cap}, refunded {ref}")
    allowed = _PAYMENT_OF_STATUS.get(order.status)
    if allowed is not None and p.status not in allowed:
        bad("order.payment", f"order {order.status} with payment {p.status}")
    if order.status in ("partially_fulfilled", "fulfilled", "partially_returned", "returned") \
            and p.status not in _TAKEN and not p.ship_unpaid:
        bad("order.payment", f"order {order.status} with payment {p.status}, not ship-unpaid")
    if order.status == "returned" and cap - ref:
        bad("order.payment", f"order returned but {cap - ref} of {cap} captured kept")
    return found


async def _sql_facts(store: Any) -> dict[str, Any]:
    """One GROUP BY per table: rows, logged movements, reservations (per row and order)."""
    t = store.t
    rows = await t.stock.raw(f"SELECT sku, location_id, on_hand, reserved "
                             f"FROM {t.stock._meta.tablename}")
    moved = await t.movement.raw(f"SELECT sku, location_id, SUM(delta) AS n "
                                 f"FROM {t.movement._meta.tablename} GROUP BY sku, location_id")
    held = await t.reservation.raw(
        f"SELECT order_id, sku, location_id, quantity, expires_at "
        f"FROM {t.reservation._meta.tablename} WHERE sku <> '*'")
    by_order: dict[str, dict[Key, int]] = defaultdict(lambda: defaultdict(int))
    per_row: dict[Key, int] = defaultdict(int)
    expires: dict[str, float] = {}
    for r in held:
        by_order[r["order_id"]][(r["sku"], r["location_id"])] += int(r["quantity"])
        per_row[(r["sku"], r["location_id"])] += int(r["quantity"])
        if r["expires_at"] is not None:
            expires[r["order_id"]] = min(expires.get(r["order_id"], r["expires_at"]),
                                         r["expires_at"])
    return {"rows": {(r["sku"], r["location_id"]): (int(r["on_hand"]), int(r["reserved"]))
                     for r in rows},
            "moved": {(r["sku"], r["location_id"]): int(r["n"] or 0) for r in moved},
            "by_order": by_order, "per_row": per_row, "expires": expires}


async def audit(ctx: Niaga, progress: Callable[[str], None] | None = None,
                every: int = 1000) -> AuditReport:
    """Recompute orders and stock (see the module docstring); the store should be at rest."""
    from kernel.services.reports import _pages

    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    store = ctx.store
    sql = hasattr(store, "t") and hasattr(store.t, "movement")
    report = AuditReport(store=store.name, checks=[
        "order totals from lines and adjustments", "order lines vs fulfilments",
        "payment amounts and status",
        *(["on_hand = Σ movements − Σ fulfilled", "reserved = Σ reservation rows",
           "each order's reservations = its allocations"] if sql
          else ["reserved = Σ units held by non-cancelled orders"])])
    facts = await _sql_facts(store) if sql else None
    # popped as each order is read: what is left are reservations without an order
    by_order: dict[str, dict[Key, int]] = dict(facts["by_order"]) if facts else {}
    fulfilled: dict[Key, int] = defaultdict(int)
    held: dict[Key, int] = defaultdict(int)
    skus: set[str] = set()
    unplaced: list[str] = []
    async for page, truncated in _pages(ctx, None, None):
        for order in page:
            report.orders += 1
            report.discrepancies += check_order(order)
            sku_of = {line.id: line.sku for line in order.lines}
            skus.update(sku_of.values())
            for f in order.fulfillments:
                for item in f.lines:
                    if f.location_id is None:
                        unplaced.append(order.number)
                        continue
                    key = (sku_of.get(item["line_id"], "?"), f.location_id)
                    fulfilled[key] += int(item["quantity"])
            allocated: dict[Key, int] = defaultdict(int)
            if order.status != "cancelled":
                for a in order.allocations:
                    allocated[(a.sku, a.location_id)] += a.quantity
                    held[(a.sku, a.location_id)] += a.quantity
            if sql:
                reserved = {k: v for k, v in by_order.pop(order.id, {}).items() if v}
                if reserved != {k: v for k, v in allocated.items() if v}:
                    report.discrepancies.append(Discrepancy(
                        kind="order.reservations", subject=f"{order.number} ({order.id})",
                        detail=f"holds {_fmt(allocated)} but reservation rows say "
                               f"{_fmt(reserved)}"))
            if report.orders % every == 0:
                say(f"audit: {report.orders} orders read, "
                    f"{len(report.discrepancies)} discrepancies so far")
        if truncated:
            report.discrepancies.append(Discrepancy(
                kind="audit.incomplete", subject="orders",
                detail="more orders share one created_at than a page holds; not all were read"))
            break
    for number in dict.fromkeys(unplaced):
        report.discrepancies.append(Discrepancy(
            kind="order.lines", subject=number,
            detail="a fulfilment names no location: its units cannot be taken off a row"))
    say(f"audit: {report.orders} orders read; checking stock")
    if facts is not None:
        now = ctx.clock()
        for order_id, rows in sorted(by_order.items()):  # reservations without an order
            if any(rows.values()) and facts["expires"].get(order_id, now) < now:
                report.discrepancies.append(Discrepancy(
                    kind="stock.reservation", subject=f"checkout {order_id}",
                    detail=f"holds {_fmt(rows)} past its expiry with no order "
                           "(`niaga sweep` releases it)"))
        per_row: dict[Key, int] = facts["per_row"]
        levels = facts["rows"]
        for key in sorted(set(levels) | set(facts["moved"]) | set(fulfilled)):
            on_hand, reserved = levels.get(key, (0, 0))
            expected = facts["moved"].get(key, 0) - fulfilled.get(key, 0)
            subject = f"{key[0]}@{key[1]}"
            if key not in levels:
                report.discrepancies.append(Discrepancy(
                    kind="stock.on_hand", subject=subject,
                    detail=f"no stock row, but history says {expected} on hand"))
                continue
            if on_hand != expected:
                report.discrepancies.append(Discrepancy(
                    kind="stock.on_hand", subject=subject,
                    detail=f"on_hand {on_hand} != {expected} (movements "
                           f"{facts['moved'].get(key, 0)} − fulfilled {fulfilled.get(key, 0)})"))
            if reserved != per_row.get(key, 0):
                report.discrepancies.append(Discrepancy(
                    kind="stock.reserved", subject=subject,
                    detail=f"reserved {reserved} != {per_row.get(key, 0)} in reservations"))
            if reserved < 0 or on_hand < reserved:
                report.discrepancies.append(Discrepancy(
                    kind="stock.oversold", subject=subject,
                    detail=f"on_hand {on_hand} < reserved {reserved}"))
        report.stock_rows = len(levels)
    else:
        skus.update(p.sku for p in await store.list_products())
        levels = await store.get_stock(sorted(skus))
        for key in sorted(set(levels) | set(held)):
            level = levels.get(key)
            reserved = level.reserved if level else 0
            if reserved != held.get(key, 0):
                report.discrepancies.append(Discrepancy(
                    kind="stock.reserved", subject=f"{key[0]}@{key[1]}",
                    detail=f"reserved {reserved} != {held.get(key, 0)} held by orders"))
            if level is not None and level.on_hand < level.reserved:
                report.discrepancies.append(Discrepancy(
                    kind="stock.oversold", subject=f"{key[0]}@{key[1]}",
                    detail=f"on_hand {level.on_hand} < reserved {level.reserved}"))
        report.stock_rows = len(levels)
    report.seconds = round(time.perf_counter() - started, 3)
    say(f"audit: done: {report.orders} orders, {report.stock_rows} stock rows, "
        f"{len(report.discrepancies)} discrepancies in {report.seconds:.1f} s")
    return report


def _fmt(units: dict[Key, int]) -> str:
    return ", ".join(f"{q}×{s}@{loc}" for (s, loc), q in sorted(units.items()) if q) or "nothing"
