"""Admin reports: sales over a period, per channel, market and channel × market."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.params import Parameter

from kernel.api.auth import admin_guard
from kernel.api.schemas import SalesCustomersRead, SalesGroupRead, SalesReportRead, money
from kernel.money import Money
from kernel.runtime import Niaga
from kernel.services import reports

SALES_DESCRIPTION = """\
Orders, revenue and average order value (AOV) of the orders **created** in [from, to),
per channel, per market and per channel × market, each per currency (money in different
currencies is never summed), plus `totals` per currency.

- `from`/`to`: ISO 8601 date or date-time; without an offset it is UTC. `to` is exclusive
  (`to=2025-02-01` covers all of January). Either may be left out.
- Counted orders: payment authorized or captured, or shipped unpaid (cash on delivery):
  statuses authorized, paid, partially_fulfilled, fulfilled, partially_returned, returned.
  Unpaid (pending_payment), on_hold and cancelled orders are not counted.
- `revenue` is net of refunds: captured (or authorized, or the total of an order shipped
  unpaid) minus refunded; `gross` is before refunds. A refund lowers the period of its
  order, as of the time of the request. AOV = revenue ÷ orders, rounded half-up.
- `customers`: known customers with counted orders (guest orders count in sales, not here).
  A customer is multichannel when their counted orders were created in two or more
  channels (the channel that created the order; other channels that only touched the cart
  do not count, they show in `cross_channel_orders`). Repeat rate = customers with 2+
  counted orders ÷ customers with 1+.
- `group_by` (channel | market | channel_market) picks which list is also in `groups`.
- `truncated` is true only if the period could not be read completely.
"""


def _group(row: reports.SalesRow) -> SalesGroupRead:
    names = [n for n in (row.channel, row.market) if n is not None]
    return SalesGroupRead(group="/".join(names) or "all", currency=row.currency,
                          orders=row.orders, revenue=money(row.revenue), aov=money(row.aov),
                          gross=money(Money(row.gross, row.currency)),
                          refunded=money(Money(row.refunded, row.currency)),
                          channel=row.channel, market=row.market)


def sales_read(report: reports.SalesReport, group_by: str) -> SalesReportRead:
    lists = {name: [_group(r) for r in getattr(report, f"by_{name}")]
             for name in ("channel", "market", "channel_market")}
    c = report.customers
    return SalesReportRead(
        group_by=group_by, groups=lists[group_by], by_channel=lists["channel"],
        by_market=lists["market"], by_channel_market=lists["channel_market"],
        totals=[_group(r) for r in report.totals],
        customers=SalesCustomersRead(
            customers=c.customers, repeat_customers=c.repeat_customers,
            repeat_rate=c.repeat_rate, multichannel_customers=c.multichannel_customers,
            multichannel_share=c.multichannel_share, guest_orders=c.guest_orders),
        cross_channel_orders=report.cross_channel_orders, truncated=report.truncated,
        from_=report.since, to=report.until)


class ReportController(Controller):
    path = "/admin/reports"
    tags = ["admin"]
    guards = [admin_guard]
    security = [{"bearer": []}]

    @get("/sales", summary="Sales report over a period", description=SALES_DESCRIPTION)
    async def sales(self, niaga: Niaga,
                    # parsed (and rejected naming the field) by reports.period
                    from_: Annotated[str | None, Parameter(query="from", required=False)] = None,
                    to: Annotated[str | None, Parameter(required=False)] = None,
                    group_by: Literal["channel", "market", "channel_market"] = "channel"
                    ) -> SalesReportRead:
        since, until = reports.period(from_, to)
        return sales_read(await reports.sales(niaga, since, until), group_by)
