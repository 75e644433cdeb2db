"""Tax requests and results, and the rounding rules every tax plugin shares.

A tax plugin decides *rates*; :func:`compute_taxes` turns rates into minor units
honouring the market's rounding level (unit, line, total) and mode, so that
every plugin rounds the same way and the parts always add up.
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

import msgspec

from kernel.cart import Address
from kernel.markets import MoneyPolicy
from kernel.money import Money, allocate, round_fraction

SHIPPING = "shipping"  # pseudo line id for the delivery charge


class TaxLine(msgspec.Struct, kw_only=True, frozen=True):
    line_id: str
    sku: str
    tax_class: str
    quantity: int
    amount: Money  # after discounts; gross when prices include tax


class TaxRequest(msgspec.Struct, kw_only=True, frozen=True):
    market: str
    currency: str
    policy: MoneyPolicy
    lines: list[TaxLine]
    shipping: Money
    address: Address | None
    delivery_kind: str | None  # "ship" | "pickup" | None (not chosen yet)
    pickup_address: Address | None = None  # the store's address for pickups


class TaxedLine(msgspec.Struct, kw_only=True, frozen=True):
    line_id: str  # a cart line id, or SHIPPING
    tax: Money
    rate: str  # percent as a decimal string, e.g. "19"
    label: str


class TaxResult(msgspec.Struct, kw_only=True, frozen=True):
    source: str  # the plugin's name, shown on the cart's adjustments
    lines: list[TaxedLine]  # one per cart line, plus SHIPPING when shipping is taxed
    estimated: bool = False  # True when a rate depends on an address not given yet


def compute_taxes(
    request: TaxRequest,
    rates: dict[str, tuple[Fraction, str]],
    *,
    source: str,
    estimated: bool = False,
) -> TaxResult:
    """Apply ``rates`` (line id or SHIPPING -> (percent, label)) with the market's rounding."""
    policy = request.policy
    included = policy.prices_include_tax
    mode = policy.rounding_mode
    items: list[tuple[str, int, int]] = [
        (t.line_id, t.amount.amount, t.quantity) for t in request.lines if t.line_id in rates
    ]
    if SHIPPING in rates and request.shipping.amount:
        items.append((SHIPPING, request.shipping.amount, 1))

    def factor(rate: Fraction) -> Fraction:
        return rate / (100 + rate) if included else rate / 100

    taxes: dict[str, int] = {}
    if policy.rounding_level == "total":
        groups: dict[Fraction, list[tuple[str, int]]] = defaultdict(list)
        for line_id, amount, _qty in items:
            groups[rates[line_id][0]].append((line_id, amount))
        for rate, members in groups.items():
            group_tax = round_fraction(sum(a for _, a in members) * factor(rate), mode)
            shares = allocate(group_tax, [abs(a) for _, a in members])
            for (line_id, _), share in zip(members, shares, strict=True):
                taxes[line_id] = share
    else:
        for line_id, amount, qty in items:
            rate = rates[line_id][0]
            if policy.rounding_level == "unit" and qty > 1:
                unit_tax = round_fraction(Fraction(amount, qty) * factor(rate), mode)
                taxes[line_id] = unit_tax * qty
            else:
                taxes[line_id] = round_fraction(amount * factor(rate), mode)
    return TaxResult(
        source=source,
        estimated=estimated,
        lines=[
            TaxedLine(
                line_id=line_id,
                tax=Money(taxes[line_id], request.currency),
                rate=rates[line_id][1],
                label=f"{rates[line_id][1]}%",
            )
            for line_id, _, _ in items
        ],
    )
