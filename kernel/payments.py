"""What the kernel and payment plugins say to each other."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from kernel.money import Money

PaymentKind = Literal["card", "redirect", "bank_transfer", "cod", "wallet"]


class PaymentMethod(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    gateway: str
    label: str
    kind: PaymentKind


class PaymentRequest(msgspec.Struct, kw_only=True, frozen=True):
    order_id: str
    order_number: str
    market: str
    amount: Money
    data: dict[str, Any]  # the gateway's own fields from the checkout body (token, ...)
    idempotency_key: str  # passed to the gateway so a retried call charges once
    capture: bool = True  # capture at once when the gateway supports it
    email: str | None = None


class PaymentResult(msgspec.Struct, kw_only=True, frozen=True):
    """``captured``/``authorized``: money is held; ``pending``: asynchronous (bank transfer, COD);
    ``declined``: the customer's payment was refused (402, no order)."""

    status: Literal["authorized", "captured", "pending", "declined"]
    amount: Money
    reference: str | None = None
    message: str | None = None
    instructions: dict[str, str] = {}
    # pending only: False means no payment window (cash on delivery is paid at the door)
    expires: bool = True
    # pending only: True lets the order ship before it is paid (cash on delivery)
    ship_unpaid: bool = False


class PaymentOperation(msgspec.Struct, kw_only=True, frozen=True):
    """Capture, void or refund on an existing payment."""

    order_id: str
    reference: str | None
    amount: Money
    idempotency_key: str


class OperationResult(msgspec.Struct, kw_only=True, frozen=True):
    ok: bool
    amount: Money
    reference: str | None = None
    message: str | None = None


class WebhookEvent(msgspec.Struct, kw_only=True, frozen=True):
    """A verified notification from a gateway or carrier."""

    id: str  # the sender's event id; a replay with the same id changes nothing
    # "ignored": verified, but nothing for the kernel to do (a gateway's routine notice)
    kind: Literal["payment.captured", "payment.failed", "payment.refunded", "shipment.updated",
                  "ignored"]
    order_id: str | None = None
    reference: str | None = None
    amount: Money | None = None
    detail: dict[str, Any] = {}


class WebhookRejected(Exception):
    """A webhook whose signature or shape does not verify (answered 400, nothing changes)."""
