"""The totals invariant, enforced in one place for carts and orders alike.

total = subtotal − discount_total + shipping_total + (tax_total unless prices include tax),
every total equals the sum of its parts (lines and adjustments), and no line is negative.
"""

from __future__ import annotations

from typing import Any

from kernel.errors import InvariantError


def _sum(items: Any) -> int:
    return sum(m.amount for m in items)


def check_totals(doc: Any) -> None:
    """Raise :class:`InvariantError` if a cart or order's money does not add up."""
    cur = doc.currency
    problems = []
    for name in ("subtotal", "discount_total", "shipping_total", "tax_total", "total"):
        if getattr(doc, name).currency != cur:
            problems.append(f"{name} is not in {cur}")
    for line in doc.lines:
        if line.subtotal.amount != line.unit_price.amount * line.quantity:
            problems.append(f"line {line.id}: subtotal != unit_price × quantity")
        expected = line.subtotal.amount - line.discount.amount
        if not doc.prices_include_tax:
            expected += line.tax.amount
        if line.total.amount != expected:
            problems.append(f"line {line.id}: total != subtotal − discount (+ tax)")
        if line.discount.amount < 0 or line.discount.amount > line.subtotal.amount:
            problems.append(f"line {line.id}: discount outside 0..subtotal")
    by_kind: dict[str, int] = {"tax": 0, "shipping": 0, "discount": 0, "rounding": 0}
    for adj in doc.adjustments:
        by_kind[adj.kind] += adj.amount.amount
    if doc.subtotal.amount != _sum(line.subtotal for line in doc.lines):
        problems.append("subtotal != Σ line subtotals")
    if doc.discount_total.amount != _sum(line.discount for line in doc.lines):
        problems.append("discount_total != Σ line discounts")
    if doc.discount_total.amount != by_kind["discount"]:
        problems.append("discount_total != Σ discount adjustments")
    if doc.shipping_total.amount != by_kind["shipping"]:
        problems.append("shipping_total != Σ shipping adjustments")
    if doc.tax_total.amount != by_kind["tax"]:
        problems.append("tax_total != Σ tax adjustments")
    line_tax = _sum(line.tax for line in doc.lines)
    if line_tax > doc.tax_total.amount and doc.lines:
        problems.append("Σ line tax exceeds tax_total")
    total = doc.subtotal.amount - doc.discount_total.amount + doc.shipping_total.amount
    if not doc.prices_include_tax:
        total += doc.tax_total.amount
    total += by_kind["rounding"]
    if doc.total.amount != total:
        problems.append(f"total {doc.total.amount} != computed {total}")
    if doc.total.amount < 0:
        problems.append("total is negative")
    if problems:
        raise InvariantError(f"{type(doc).__name__} {doc.id}: " + "; ".join(problems))
