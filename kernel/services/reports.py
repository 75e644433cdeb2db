"""Sales reports over a period [since, until): orders, revenue and AOV per channel, market and
channel × market (per currency), plus customer metrics (multichannel buyers, repeat rate).

Which orders count and what revenue means is decided here once, for the API and the CLI:

- counted: the sale is committed: payment authorized or taken, or goods shipped unpaid (cash on
  delivery). Unpaid (``pending_payment``), held (``on_hold``) and ``cancelled`` orders are not.
  Returned orders still count as orders; their refunds lower revenue.
- revenue of an order = what the customer pays and keeps paid: the captured amount (the
  authorized one while not captured yet, the order total when shipped unpaid) minus refunds.
  ``gross`` is the same before refunds. Refunds are attributed to the order's period, as of now.
- money in different currencies is never summed: every figure is per currency.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from fractions import Fraction

import msgspec

from kernel.errors import ValidationError
from kernel.money import Money, round_fraction
from kernel.orders import Order
from kernel.runtime import Niaga

COUNTED = frozenset({"authorized", "paid", "partially_fulfilled", "fulfilled",
                     "partially_returned", "returned"})
PAGE = 5000  # orders per list_orders read; a report pages through the period newest first


class SalesRow(msgspec.Struct, kw_only=True):
    channel: str | None
    market: str | None
    currency: str
    orders: int = 0
    gross: int = 0  # minor units
    refunded: int = 0

    @property
    def revenue(self) -> Money:
        return Money(self.gross - self.refunded, self.currency)

    @property
    def aov(self) -> Money:
        """Average order value (net revenue ÷ orders), rounded half-up to the minor unit."""
        net = self.gross - self.refunded
        return Money(round_fraction(Fraction(net, self.orders)) if self.orders else 0,
                     self.currency)


class CustomerMetrics(msgspec.Struct, kw_only=True):
    customers: int  # known customers with at least one counted order (guests are not)
    repeat_customers: int  # ... with two or more
    multichannel_customers: int  # ... whose counted orders were created in 2+ channels
    guest_orders: int

    @property
    def repeat_rate(self) -> float | None:
        return round(self.repeat_customers / self.customers, 4) if self.customers else None

    @property
    def multichannel_share(self) -> float | None:
        return (round(self.multichannel_customers / self.customers, 4)
                if self.customers else None)


class SalesReport(msgspec.Struct, kw_only=True):
    since: float | None
    until: float | None
    by_channel: list[SalesRow]
    by_market: list[SalesRow]
    by_channel_market: list[SalesRow]
    totals: list[SalesRow]  # per currency
    customers: CustomerMetrics
    cross_channel_orders: int  # counted orders whose cart was touched by 2+ channels
    truncated: bool  # True only if paging could not make progress (see _pages)


def parse_instant(value: str | None, field: str) -> float | None:
    """An ISO 8601 date or date-time as epoch seconds; a value without offset is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError) as exc:
        raise ValidationError.field(
            field, f"{value!r} is not an ISO 8601 date or date-time (e.g. 2025-01-31 or "
            "2025-01-31T12:00:00+07:00)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def period(from_: str | None, to: str | None) -> tuple[float | None, float | None]:
    since, until = parse_instant(from_, "from"), parse_instant(to, "to")
    if since is not None and until is not None and until <= since:
        raise ValidationError.field("to", "must be later than from (the period is [from, to))")
    return since, until


def revenue_of(order: Order) -> tuple[int, int]:
    """(gross, refunded) in minor units of the order's currency; see the module docstring."""
    pay = order.payment
    if pay.captured.amount:
        gross = pay.captured.amount
    elif pay.status == "authorized":
        gross = pay.authorized.amount
    elif pay.status == "pending":  # shipped unpaid (cash on delivery): owed in full
        gross = order.total.amount
    else:
        gross = 0
    return gross, pay.refunded.amount


async def _pages(ctx: Niaga, since: float | None, until: float | None
                 ) -> AsyncIterator[tuple[list[Order], bool]]:
    """Every order created in [since, until) as (page, truncated), one read per PAGE orders.

    list_orders is newest first with an exclusive ``until``; the next page starts just above
    the oldest timestamp seen (so orders sharing it are not lost) and drops the ids already
    counted. Only if a whole page shares one timestamp can it not advance: then ``truncated``.
    """
    cursor: float | None = until
    edge_ids: set[str] = set()
    while True:
        page = await ctx.store.list_orders(since=since, until=cursor, limit=PAGE)
        fresh = [o for o in page if o.id not in edge_ids]
        if len(page) < PAGE:
            yield fresh, False
            return
        if not fresh:
            yield fresh, True
            return
        yield fresh, False
        oldest = min(o.created_at for o in page)
        edge = {o.id for o in page if o.created_at == oldest}
        # ids at the same edge accumulate: an order is never counted twice
        edge_ids = edge_ids | edge if cursor == math.nextafter(oldest, math.inf) else edge
        cursor = math.nextafter(oldest, math.inf)


class Tally:
    """The report built in one pass over orders (fed page by page, nothing kept per order)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str | None, str | None, str], SalesRow] = {}
        self.orders_of: dict[str, int] = defaultdict(int)  # customer id -> counted orders
        self.channels_of: dict[str, set[str]] = defaultdict(set)  # ... -> channels bought in
        self.guests = self.cross = 0
        self.truncated = False

    def add(self, order: Order) -> None:
        if order.status not in COUNTED:
            return
        gross, refunded = revenue_of(order)
        for key in ((order.channel, None, order.currency), (None, order.market, order.currency),
                    (order.channel, order.market, order.currency), (None, None, order.currency)):
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = SalesRow(channel=key[0], market=key[1], currency=key[2])
            row.orders += 1
            row.gross += gross
            row.refunded += refunded
        if len(set(order.channels)) > 1:
            self.cross += 1
        if order.customer_id is None:
            self.guests += 1
        else:
            self.orders_of[order.customer_id] += 1
            self.channels_of[order.customer_id].add(order.channel)

    def _pick(self, has_channel: bool, has_market: bool) -> list[SalesRow]:
        found = [r for (c, m, _), r in self.rows.items()
                 if (c is not None) == has_channel and (m is not None) == has_market]
        return sorted(found, key=lambda r: (r.channel or "", r.market or "", r.currency))

    def report(self, since: float | None, until: float | None) -> SalesReport:
        metrics = CustomerMetrics(
            customers=len(self.orders_of),
            repeat_customers=sum(1 for n in self.orders_of.values() if n >= 2),
            multichannel_customers=sum(1 for ch in self.channels_of.values() if len(ch) >= 2),
            guest_orders=self.guests)
        return SalesReport(since=since, until=until, by_channel=self._pick(True, False),
                           by_market=self._pick(False, True),
                           by_channel_market=self._pick(True, True),
                           totals=self._pick(False, False), customers=metrics,
                           cross_channel_orders=self.cross, truncated=self.truncated)


async def sales(ctx: Niaga, since: float | None, until: float | None) -> SalesReport:
    tally = Tally()
    async for page, truncated in _pages(ctx, since, until):
        for order in page:
            tally.add(order)
        tally.truncated = truncated
    return tally.report(since, until)
