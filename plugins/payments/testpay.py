"""TestPay: a fake card gateway for development, demos and tests. Never use it to take money.

It answers from the card token in the checkout body (``payment.token``):

- ``tok_ok``: captured (or authorized when the kernel asks not to capture);
- ``tok_decline``: declined ("card declined");
- ``tok_fail``: the gateway fails (a 502 upstream error);
- ``tok_pending``: pending, like a card awaiting 3-D Secure: a signed
  ``payment.captured`` (or ``payment.failed``) webhook settles it later;
- ``tok_timeout_after_auth``: authorizes like ``tok_ok``, then the answer is lost
  (a ``TimeoutError``, as an HTTP read timeout after the request went out); a
  repeat with the same idempotency key answers the recorded authorization, as a
  real gateway answers a retried idempotent request. The kernel's fault tests
  use it (tests/faults).

References are derived from the idempotency key, so a retried call returns the
same reference and is recorded once. Every call is kept in an in-memory log
(``TestPay.calls``) that tests can inspect; ``TestPay.reset()`` clears it.

Webhooks posted to ``/webhooks/testpay`` carry a JSON body
``{"id", "type": "payment.captured" | "payment.failed" | "payment.refunded",
"order_id", "amount"?, "reference"?}`` signed like Stripe's:
``Testpay-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.
:meth:`TestPay.sign` builds that header.

Settings (``[markets.XX.plugins.testpay]``), all optional:

- ``label`` (default ``"Test card"``): the payment method's name at checkout.
- ``webhook_secret`` (default ``"whsec_test"``): the HMAC key for webhooks. The
  default is public: fine for a development gateway, nothing else.
- ``tolerance_seconds`` (default 300): how old (or early) a webhook's timestamp may be.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, ClassVar

import msgspec

from kernel import GatewayError, Market, ValidationError, hookimpl
from kernel.payments import (
    OperationResult,
    PaymentMethod,
    PaymentOperation,
    PaymentRequest,
    PaymentResult,
    WebhookEvent,
)
from plugins.payments import _signed

TOKENS = ("tok_ok", "tok_decline", "tok_fail", "tok_pending", "tok_timeout_after_auth")
SIGNATURE_HEADER = "Testpay-Signature"

Call = tuple[str, str | None, int, str]  # (operation, reference, amount in minor units, key)


def derived_id(prefix: str, key: str) -> str:
    """A stable id for an idempotency key: the same key always gives the same id."""
    return prefix + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


class TestPay:
    __test__ = False  # not a pytest test class, despite its name

    name = "testpay"
    family = "payment"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        label: str = "Test card"
        webhook_secret: str = "whsec_test"
        tolerance_seconds: int = 300

    # shared by every market's instance: one fake gateway per process
    calls: ClassVar[list[Call]] = []
    _results: ClassVar[dict[tuple[str, str], Any]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, config: Config, market: Market):
        if not config.webhook_secret:
            raise ValueError("webhook_secret: must not be empty")
        if config.tolerance_seconds <= 0:
            raise ValueError("tolerance_seconds: must be positive")
        self.config = config
        self.market = market

    # -- the call log -----------------------------------------------------------

    @classmethod
    def reset(cls) -> None:
        """Forget every recorded call (between tests)."""
        with cls._lock:
            cls.calls.clear()
            cls._results.clear()

    @classmethod
    def calls_of(cls, operation: str) -> list[Call]:
        with cls._lock:
            return [c for c in cls.calls if c[0] == operation]

    @classmethod
    def _once(cls, operation: str, key: str, reference: str | None, amount: int,
              answer: Any) -> Any:
        """Record a call unless its idempotency key was seen; return the first answer."""
        with cls._lock:
            first = cls._results.get((operation, key))
            if first is not None:
                return first
            cls._results[(operation, key)] = answer
            cls.calls.append((operation, reference, amount, key))
            return answer

    # -- payments ---------------------------------------------------------------

    @hookimpl
    def niaga_payment_methods(self, cart, market) -> list[PaymentMethod]:
        return [PaymentMethod(id=self.name, gateway=self.name, label=self.config.label,
                              kind="card")]

    @hookimpl
    def niaga_payment_authorize(self, gateway: str,
                                request: PaymentRequest) -> PaymentResult | None:
        if gateway != self.name:
            return None
        token = request.data.get("token")
        if not isinstance(token, str) or token not in TOKENS:
            raise ValidationError.field(
                "payment.token", f"testpay needs a test token: one of {', '.join(TOKENS)}"
            )
        if token == "tok_fail":
            raise GatewayError("testpay: gateway unavailable", plugin=self.name)
        reference = derived_id("tp_", request.idempotency_key)
        if token == "tok_decline":
            result = PaymentResult(status="declined", amount=request.amount,
                                   reference=reference, message="card declined")
        elif token == "tok_pending":
            result = PaymentResult(status="pending", amount=request.amount, reference=reference,
                                   instructions={"next_action": "confirm the card (3-D Secure)"})
        else:  # tok_ok, tok_timeout_after_auth
            result = PaymentResult(
                status="captured" if request.capture else "authorized",
                amount=request.amount,
                reference=reference,
            )
        with self._lock:
            seen = ("authorize", request.idempotency_key) in self._results
        answer = self._once("authorize", request.idempotency_key, reference,
                            request.amount.amount, result)
        if token == "tok_timeout_after_auth" and not seen:
            raise TimeoutError("testpay: authorized, but the answer timed out")
        return answer

    def _operation(self, op: str, gateway: str, operation: PaymentOperation,
                   reference: str | None) -> OperationResult | None:
        if gateway != self.name:
            return None
        result = OperationResult(ok=True, amount=operation.amount, reference=reference)
        return self._once(op, operation.idempotency_key, operation.reference,
                          operation.amount.amount, result)

    @hookimpl
    def niaga_payment_capture(self, gateway: str, operation: PaymentOperation):
        return self._operation("capture", gateway, operation, operation.reference)

    @hookimpl
    def niaga_payment_void(self, gateway: str, operation: PaymentOperation):
        return self._operation("void", gateway, operation, operation.reference)

    @hookimpl
    def niaga_payment_refund(self, gateway: str, operation: PaymentOperation):
        refund_id = derived_id("tpr_", operation.idempotency_key)
        return self._operation("refund", gateway, operation, refund_id)

    # -- webhooks ---------------------------------------------------------------

    @staticmethod
    def sign(body: bytes, secret: str = "whsec_test", timestamp: int | None = None) -> str:
        """The ``Testpay-Signature`` header value for ``body``."""
        return _signed.sign(body, secret, timestamp)

    @hookimpl
    def niaga_webhook_parse(self, plugin: str, headers: dict[str, str],
                            body: bytes) -> WebhookEvent | None:
        if plugin != self.name:
            return None
        return _signed.parse(self.name, SIGNATURE_HEADER, headers, body,
                             self.config.webhook_secret, self.config.tolerance_seconds,
                             self.market.currency)
