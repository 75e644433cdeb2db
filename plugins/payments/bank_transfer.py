"""Bank transfer: the customer pays by transfer to the merchant's account; the order waits.

Checkout places the order as *pending payment* and shows the customer the
account, the amount and the order number to quote as the transfer reference.
When the money arrives the merchant marks the order paid (admin action); if it
does not arrive within the market's ``payment_window_hours`` the order is
cancelled and its stock released. Refunds are made by the merchant by hand.

Settings (``[markets.XX.plugins.bank-transfer]``):

- ``bank``, ``account_name``, ``account_number`` (required): where to pay.
- ``iban``, ``bic`` (optional): shown too when given (SEPA transfers).
- ``label`` (default ``"Bank transfer"``): the payment method's name at checkout.
- ``webhook_secret`` (or the environment variable named by ``webhook_secret_env``,
  default ``NIAGA_BANK_TRANSFER_WEBHOOK_SECRET``), ``tolerance_seconds`` (300):
  a bank or reconciliation job can post signed notices to
  ``/webhooks/bank-transfer`` (``Niaga-Signature: t=…,v1=…``, see
  ``plugins/payments/_signed.py``); ``payment.captured`` pays the order once.
  Without a secret, notices are refused and the admin's mark-paid is the way.
"""

from __future__ import annotations

import hashlib

import msgspec

from kernel import Market, hookimpl
from kernel.payments import (
    OperationResult,
    PaymentMethod,
    PaymentOperation,
    PaymentRequest,
    PaymentResult,
)
from plugins.payments import _signed


class BankTransfer(_signed.SignedNotices):
    name = "bank-transfer"
    family = "payment"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        bank: str
        account_name: str
        account_number: str
        label: str = "Bank transfer"
        iban: str | None = None
        bic: str | None = None
        # signed notices from the bank or a reconciliation job when a transfer arrives
        # (plugins/payments/_signed.py); without a secret every notice is refused
        webhook_secret: str | None = None
        webhook_secret_env: str | None = "NIAGA_BANK_TRANSFER_WEBHOOK_SECRET"
        tolerance_seconds: int = 300

    def __init__(self, config: Config, market: Market):
        for key in ("bank", "account_name", "account_number", "label"):
            if not getattr(config, key).strip():
                raise ValueError(f"{key}: must not be empty")
        self.config = config
        self.market = market

    @hookimpl
    def niaga_payment_methods(self, cart, market) -> list[PaymentMethod]:
        return [PaymentMethod(id=self.name, gateway=self.name, label=self.config.label,
                              kind="bank_transfer")]

    @hookimpl
    def niaga_payment_authorize(self, gateway: str,
                                request: PaymentRequest) -> PaymentResult | None:
        if gateway != self.name:
            return None
        digest = hashlib.sha256(request.idempotency_key.encode("utf-8")).hexdigest()[:24]
        instructions = {
            "bank": self.config.bank,
            "account_name": self.config.account_name,
            "account_number": self.config.account_number,
            "reference": request.order_number,
            "amount": f"{request.amount.format_amount()} {request.amount.currency}",
        }
        if self.config.iban:
            instructions["iban"] = self.config.iban
        if self.config.bic:
            instructions["bic"] = self.config.bic
        return PaymentResult(
            status="pending",
            amount=request.amount,
            reference="bt_" + digest,
            message=f"Transfer {instructions['amount']} quoting {request.order_number}",
            instructions=instructions,
        )

    @hookimpl
    def niaga_payment_capture(self, gateway: str, operation: PaymentOperation):
        if gateway != self.name:
            return None
        return OperationResult(ok=True, amount=operation.amount, reference=operation.reference,
                               message="transfer received, confirmed by the merchant")

    @hookimpl
    def niaga_payment_void(self, gateway: str, operation: PaymentOperation):
        if gateway != self.name:
            return None
        return OperationResult(ok=True, amount=operation.amount, reference=operation.reference,
                               message="no transfer expected any more")

    @hookimpl
    def niaga_payment_refund(self, gateway: str, operation: PaymentOperation):
        if gateway != self.name:
            return None
        return OperationResult(
            ok=True, amount=operation.amount, reference=operation.reference,
            message=f"refund {operation.amount} to the customer by bank transfer manually",
        )
