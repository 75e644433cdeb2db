"""Orders: an immutable record of what was sold, and a guarded state machine over it."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from kernel.cart import Address, Adjustment, Delivery, Line, LoyaltyUse
from kernel.errors import Conflict
from kernel.markets import MoneyPolicy
from kernel.money import Money

OrderStatus = Literal[
    "on_hold", "pending_payment", "authorized", "paid", "partially_fulfilled", "fulfilled",
    "cancelled", "returned", "partially_returned",
]

# Every allowed move. Anything else is a 409 naming both states.
TRANSITIONS: dict[str, frozenset[str]] = {
    # held for review by a risk rule; released to what its payment says, or cancelled
    "on_hold": frozenset({"pending_payment", "authorized", "paid", "cancelled"}),
    # cash on delivery ships before it is paid
    "pending_payment": frozenset({"paid", "cancelled", "partially_fulfilled", "fulfilled"}),
    "authorized": frozenset({"paid", "cancelled"}),  # card held, not captured yet
    "paid": frozenset({"partially_fulfilled", "fulfilled", "cancelled", "partially_returned",
                       "returned"}),
    "partially_fulfilled": frozenset({"fulfilled", "partially_returned", "returned", "cancelled"}),
    "fulfilled": frozenset({"partially_returned", "returned"}),
    "partially_returned": frozenset({"partially_returned", "returned", "fulfilled",
                                     "partially_fulfilled"}),
    "cancelled": frozenset(),
    "returned": frozenset(),
}

PaymentStatus = Literal[
    "pending", "authorized", "captured", "partially_refunded", "refunded", "voided", "failed",
]


class Payment(msgspec.Struct, kw_only=True):
    method: str  # the payment method id the customer chose (= the gateway plugin's name)
    gateway: str
    status: PaymentStatus
    authorized: Money
    captured: Money
    refunded: Money
    reference: str | None = None  # the gateway's id for this payment
    instructions: dict[str, str] = {}  # e.g. bank account and due date for a transfer
    ship_unpaid: bool = False  # cash on delivery: fulfil first, paid at the door


class OrderLine(Line, kw_only=True):
    fulfilled: int = 0
    returned: int = 0


class Fulfillment(msgspec.Struct, kw_only=True):
    id: str
    location_id: str | None
    lines: list[dict[str, Any]]  # [{line_id, quantity}]
    tracking_number: str | None = None
    at: float = 0.0


class Allocated(msgspec.Struct, kw_only=True, frozen=True):
    """Units of one SKU held at one location for this order."""

    sku: str
    location_id: str
    quantity: int


class HistoryEntry(msgspec.Struct, kw_only=True):
    at: float
    event: str
    detail: dict[str, Any] = {}


class Order(msgspec.Struct, kw_only=True):
    id: str
    number: str
    cart_id: str
    market: str
    channel: str
    channels: list[str]
    customer_id: str | None
    currency: str
    status: OrderStatus
    lines: list[OrderLine]
    address: Address | None
    delivery: Delivery | None
    loyalty: LoyaltyUse | None
    subtotal: Money
    discount_total: Money
    shipping_total: Money
    tax_total: Money
    total: Money
    prices_include_tax: bool
    money_policy: MoneyPolicy
    adjustments: list[Adjustment]
    payment: Payment
    allocations: list[Allocated]
    fulfillments: list[Fulfillment] = []
    history: list[HistoryEntry] = []
    created_at: float
    payment_due_at: float | None = None
    version: int = 1
    idempotency_key: str | None = None
    request_hash: str | None = None
    hold: dict[str, str] | None = None  # {rule, reason} while on_hold for review
    # indexed for velocity rules (kernel.checkout): the address email, lower-cased, and
    # sha256 of the card token the checkout named (never the token itself)
    email: str | None = None
    card_fingerprint: str | None = None
    # exchanges link both ways: the new order names the one whose units it replaces, and
    # that one lists every order placed in exchange for its returned units
    exchange_of: str | None = None
    exchanged_for: list[str] = []

    def status_after_payment(self) -> OrderStatus:
        """Where the payment alone puts the order (used when a hold is released)."""
        return {"captured": "paid", "authorized": "authorized"}.get(self.payment.status,
                                                                    "pending_payment")

    def line(self, line_id: str) -> OrderLine:
        for line in self.lines:
            if line.id == line_id:
                return line
        from kernel.errors import ValidationError

        raise ValidationError.field("line_id", f"order {self.number} has no line {line_id}")

    def move_to(self, status: OrderStatus, at: float, event: str, **detail: Any) -> None:
        """Change status through the state machine and record the step in the history."""
        if status != self.status and status not in TRANSITIONS[self.status]:
            raise Conflict(f"order {self.number} is {self.status}; it cannot become {status}")
        self.history.append(
            HistoryEntry(at=at, event=event, detail={"from": self.status, "to": status, **detail})
        )
        self.status = status

    def record(self, at: float, event: str, **detail: Any) -> None:
        self.history.append(HistoryEntry(at=at, event=event, detail=detail))

    @property
    def fully_fulfilled(self) -> bool:
        return all(line.fulfilled >= line.quantity - line.returned for line in self.lines)
