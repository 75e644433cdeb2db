"""Carts: lines, address, delivery choice, totals and the adjustments that explain them.

Pure data and rules; persistence and pricing live elsewhere. A cart carries a
``version`` for optimistic concurrency: every save is conditioned on it.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from kernel.errors import Conflict, ValidationError
from kernel.money import Money

MAX_LINES = 50  # bounded so one checkout stays one atomic write everywhere (DynamoDB: 100 actions)
MAX_QUANTITY = 999

AdjustmentKind = Literal["tax", "shipping", "discount", "rounding"]


class Address(msgspec.Struct, kw_only=True, omit_defaults=False):
    country: str
    region: str | None = None
    city: str | None = None
    postal_code: str | None = None
    line1: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None


class Line(msgspec.Struct, kw_only=True):
    id: str
    sku: str
    name: str
    quantity: int
    unit_price: Money
    subtotal: Money
    discount: Money
    tax: Money
    total: Money
    tax_class: str = "standard"
    weight_grams: int = 0
    # the rate snapshot of a converted price: {base, base_currency, rate, source}; None for a
    # price from the catalog (see kernel.catalog.ConvertedPrice)
    fx: dict[str, str] | None = None


class Delivery(msgspec.Struct, kw_only=True):
    option_id: str
    kind: Literal["ship", "pickup"]
    carrier: str  # the plugin that offered it
    label: str
    price: Money
    location_id: str | None = None


class Adjustment(msgspec.Struct, kw_only=True):
    """One amount that moves a total, and the plugin (``source``) behind it."""

    source: str
    kind: AdjustmentKind
    label: str
    amount: Money
    line_id: str | None = None


class LoyaltyUse(msgspec.Struct, kw_only=True):
    points: int
    discount: Money
    source: str


class FailedCheckout(msgspec.Struct, kw_only=True):
    """The answer a checkout gave after it started (out of stock, declined, gateway down):
    a retry with the same Idempotency-Key and body gets it again; another body gets 422."""

    request_hash: str
    status: int
    problem: dict[str, Any]


MAX_REMEMBERED_FAILURES = 20


WarningCode = Literal["not_sold", "out_of_stock", "quantity_reduced", "address_cleared",
                      "delivery_cleared", "loyalty_cleared"]


class CartWarning(msgspec.Struct, kw_only=True):
    """What the last change did to the cart that the shopper did not ask for (a line
    dropped, a quantity capped, a choice cleared): shown until the next change."""

    code: WarningCode
    message: str
    sku: str | None = None


CartStatus = Literal["open", "checked_out", "merged"]


class Cart(msgspec.Struct, kw_only=True):
    id: str
    market: str
    channel: str
    currency: str
    customer_id: str | None = None
    status: CartStatus = "open"
    version: int = 1
    lines: list[Line] = []
    address: Address | None = None
    delivery: Delivery | None = None
    loyalty: LoyaltyUse | None = None
    subtotal: Money
    discount_total: Money
    shipping_total: Money
    tax_total: Money
    total: Money
    prices_include_tax: bool
    tax_estimated: bool = False  # tax waits for an address (e.g. US sales tax)
    adjustments: list[Adjustment] = []
    channels: list[str] = []  # every channel that touched this cart
    failed_checkouts: dict[str, FailedCheckout] = {}  # Idempotency-Key -> its answer
    warnings: list[CartWarning] = []
    merged_into: str | None = None  # status "merged": the cart its lines went into
    merged_from: list[str] = []  # carts merged into this one (a replayed merge adds nothing)
    created_at: float = 0.0
    updated_at: float = 0.0

    def line(self, line_id: str) -> Line:
        for line in self.lines:
            if line.id == line_id:
                return line
        from kernel.errors import NotFound

        raise NotFound(f"cart {self.id} has no line {line_id}")

    def line_for_sku(self, sku: str) -> Line | None:
        return next((line for line in self.lines if line.sku == sku), None)

    def ensure_open(self) -> None:
        if self.status == "merged":
            raise Conflict(f"cart {self.id} was merged into cart {self.merged_into}; use that one",
                           merged_into=self.merged_into)
        if self.status != "open":
            raise Conflict(f"cart {self.id} is {self.status}; start a new cart")

    def warn(self, code: WarningCode, message: str, sku: str | None = None) -> None:
        self.warnings.append(CartWarning(code=code, message=message, sku=sku))

    def touch(self, channel: str | None, now: float) -> None:
        if channel and channel not in self.channels:
            self.channels.append(channel)
        self.updated_at = now


def empty_cart(cart_id: str, market: str, channel: str, currency: str, *, include_tax: bool,
               customer_id: str | None, now: float) -> Cart:
    zero = Money.zero(currency)
    return Cart(
        id=cart_id, market=market, channel=channel, currency=currency, customer_id=customer_id,
        subtotal=zero, discount_total=zero, shipping_total=zero, tax_total=zero, total=zero,
        prices_include_tax=include_tax, channels=[channel], created_at=now, updated_at=now,
    )


def units_by_sku(lines: list[Line]) -> dict[str, int]:
    """Units wanted per SKU: the same SKU on two lines needs both quantities."""
    needs: dict[str, int] = {}
    for line in lines:
        needs[line.sku] = needs.get(line.sku, 0) + line.quantity
    return needs


def check_quantity(quantity: int, field: str = "quantity", *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not low <= quantity <= MAX_QUANTITY:
        raise ValidationError.field(field, f"must be between {low} and {MAX_QUANTITY}")
