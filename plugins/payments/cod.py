"""Cash on delivery (COD): the customer pays the courier when the parcel arrives.

Checkout places the order as *pending payment* and tells the customer how much
to have ready at the door. The money is collected on delivery; the merchant then
marks the order paid (admin action), or a carrier integration confirms the
delivery. Nothing is charged online, so voiding costs nothing; refunds are made
by the merchant in cash or by bank transfer.

COD is offered only for orders that are shipped (never for store pickup: pay at
the till instead) and, when ``max_amount`` is set, only up to that order total.
A cart that has no delivery chosen yet sees COD; choosing pickup hides it.

Settings (``[markets.XX.plugins.cod]``), all optional:

- ``label`` (default ``"Cash on delivery"``): the payment method's name at checkout.
- ``max_amount``: the largest order total (a decimal string in the market's
  currency) that may be paid cash on delivery. Larger orders do not see COD,
  and an attempt to pay one with COD anyway is declined.

There is no COD fee setting: a fee changes the order total, and this plugin
cannot add a charge to the cart.

Example::

    [markets.ID.plugins.cod]
    label = "Bayar di tempat (COD)"
    max_amount = "5000000"      # Rp 5.000.000

A COD order stays *pending payment* until the cash is collected: it has no
payment window (the sweeper never expires it), it can be fulfilled while unpaid,
and ``POST /admin/orders/{id}/mark-paid`` records the cash once it arrives.
"""

from __future__ import annotations

import hashlib

import msgspec

from kernel import Cart, Market, Money, hookimpl
from kernel.payments import (
    OperationResult,
    PaymentMethod,
    PaymentOperation,
    PaymentRequest,
    PaymentResult,
)
from plugins.payments import _signed


class CashOnDelivery(_signed.SignedNotices):
    name = "cod"
    family = "payment"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        label: str = "Cash on delivery"
        max_amount: str | None = None
        # signed notices from the courier when the cash is collected
        # (plugins/payments/_signed.py); without a secret every notice is refused
        webhook_secret: str | None = None
        webhook_secret_env: str | None = "NIAGA_COD_WEBHOOK_SECRET"
        tolerance_seconds: int = 300

    def __init__(self, config: Config, market: Market):
        if not config.label.strip():
            raise ValueError("label: must not be empty")
        self.max_amount: Money | None = None
        if config.max_amount is not None:
            try:
                self.max_amount = Money.parse(config.max_amount, market.currency)
            except ValueError as exc:
                raise ValueError(f"max_amount: {exc}") from exc
            if self.max_amount.amount <= 0:
                raise ValueError("max_amount: must be more than zero")
        self.config = config
        self.market = market

    def _too_much(self, amount: Money) -> bool:
        if amount.currency != self.market.currency:
            return True  # the courier collects the market's currency only
        return self.max_amount is not None and amount > self.max_amount

    @hookimpl
    def niaga_payment_methods(self, cart: Cart, market: Market) -> list[PaymentMethod]:
        if cart.delivery is not None and cart.delivery.kind != "ship":
            return []  # nobody delivers a pickup order, so nobody collects the cash
        if self._too_much(cart.total):
            return []
        return [PaymentMethod(id=self.name, gateway=self.name, label=self.config.label,
                              kind="cod")]

    @hookimpl
    def niaga_payment_authorize(self, gateway: str,
                                request: PaymentRequest) -> PaymentResult | None:
        if gateway != self.name:
            return None
        if self._too_much(request.amount):
            limit = f" (at most {self.max_amount})" if self.max_amount is not None else ""
            return PaymentResult(
                status="declined", amount=request.amount,
                message=f"{request.amount} is too much for cash on delivery{limit}",
            )
        digest = hashlib.sha256(request.idempotency_key.encode("utf-8")).hexdigest()[:24]
        due = f"{request.amount.format_amount()} {request.amount.currency}"
        return PaymentResult(
            status="pending",
            amount=request.amount,
            reference="cod_" + digest,
            message=f"Pay {due} in cash when your order {request.order_number} arrives",
            instructions={"pay_on_delivery": due},
            expires=False,  # paid at the door, whenever the parcel gets there
            ship_unpaid=True,
        )

    @hookimpl
    def niaga_payment_capture(self, gateway: str,
                              operation: PaymentOperation) -> OperationResult | None:
        if gateway != self.name:
            return None
        return OperationResult(ok=True, amount=operation.amount, reference=operation.reference,
                               message="cash collected on delivery")

    @hookimpl
    def niaga_payment_void(self, gateway: str,
                           operation: PaymentOperation) -> OperationResult | None:
        if gateway != self.name:
            return None
        return OperationResult(ok=True, amount=operation.amount, reference=operation.reference,
                               message="no cash will be collected")

    @hookimpl
    def niaga_payment_refund(self, gateway: str,
                             operation: PaymentOperation) -> OperationResult | None:
        if gateway != self.name:
            return None
        return OperationResult(ok=True, amount=operation.amount, reference=operation.reference,
                               message="refund in cash or by transfer")
