"""Sales reports: orders, revenue and average order value per channel or market."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from kernel.money import Money
from kernel.runtime import Niaga

COUNTED = ("paid", "authorized", "partially_fulfilled", "fulfilled", "partially_returned",
           "returned")


async def sales(ctx: Niaga, since: float | None, until: float | None,
                group_by: Literal["channel", "market"]) -> dict[str, Any]:
    orders = await ctx.store.list_orders(since=since, until=until, limit=100_000)
    groups: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for order in orders:
        if order.status not in COUNTED:
            continue
        net = order.payment.captured.amount - order.payment.refunded.amount
        if order.payment.status == "authorized":
            net = order.total.amount
        key = (order.channel if group_by == "channel" else order.market, order.currency)
        groups[key][0] += 1
        groups[key][1] += net
    rows = []
    for (group, currency), (count, revenue) in sorted(groups.items()):
        rows.append({"group": group, "currency": currency, "orders": count,
                     "revenue": Money(revenue, currency),
                     "aov": Money(revenue // count if count else 0, currency)})
    return {"group_by": group_by, "from": since, "to": until, "groups": rows}
