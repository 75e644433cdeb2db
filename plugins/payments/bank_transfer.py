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


class BankTransfer:
    name = "bank-transfer"
    family = "payment"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        bank: str
        account_name: str
        account_number: str
        label: str = "Bank transfer"
        iban: str | None = None
        bic: str | None = None

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
