"""Stripe: card payments through PaymentIntents, over HTTPS with ``httpx``.

Checkout sends the Stripe PaymentMethod id the storefront collected with Stripe.js
(``{"payment": {"method": "stripe", "payment_method": "pm_..."}}``). The plugin
creates and confirms one PaymentIntent (``POST /v1/payment_intents``) with
``payment_method_types[]=card`` (a card plugin, whatever the Dashboard enables),
``capture_method=automatic`` or ``manual`` as the kernel asks, the order's id,
number and market as metadata, and the kernel's idempotency key as Stripe's
``Idempotency-Key`` so a retried checkout never charges twice.

=========================  =====================================================
PaymentIntent status       Niaga
=========================  =====================================================
``succeeded``              captured: the order is paid
``requires_capture``       authorized: an admin captures later (``.../capture``)
``requires_action``,       pending: the order waits for the customer (3-D Secure)
``processing``             and a webhook (``payment_intent.succeeded``) settles it
card error (HTTP 402)      declined, with Stripe's decline message (no order)
anything else              a GatewayError naming ``stripe`` (502); never the key
=========================  =====================================================

Capture is ``POST /v1/payment_intents/{id}/capture`` (``amount_to_capture``),
void is ``POST /v1/payment_intents/{id}/cancel`` and refund is ``POST /v1/refunds``
(``payment_intent``, ``amount``), each with the kernel's idempotency key.

Amounts: Stripe takes integer minor units, with its own list of zero-decimal
currencies (https://docs.stripe.com/currencies): JPY, KRW... are sent as is;
two-decimal currencies (EUR, USD, and IDR, which Stripe treats as two-decimal)
as Niaga's minor units; ISK and UGX "with two decimals" (x100); three-decimal
currencies must end in 0 (an amount that cannot be sent exactly is refused).

Webhooks (``POST /webhooks/stripe``): the ``Stripe-Signature`` header
(``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``, any number of v1
entries) is checked against the endpoint's signing secret, and timestamps more
than ``tolerance_seconds`` away from now are refused. ``payment_intent.succeeded``
becomes payment.captured, ``payment_intent.payment_failed`` and
``payment_intent.canceled`` payment.failed, ``charge.refunded`` payment.refunded;
the order is found through the PaymentIntent's ``metadata.order_id``. Any other
event type is verified and answered None ("not a change") until the kernel has an
"ignored" kind (see ``plugins.payments._http.ignored``).

3-D Secure: with ``return_url`` set, a card that needs authentication answers
pending with ``instructions["redirect_url"]`` (Stripe's hosted page). Without
it, Stripe asks for Stripe.js (``next_action`` ``use_stripe_sdk``); the plugin
reports that in the instructions but never exposes the PaymentIntent's client
secret (Stripe: show it to the customer only, never store or log it).

Settings (``[markets.XX.plugins.stripe]``):

- ``api_key`` or, when unset, the environment variable named by ``api_key_env``
  (default ``STRIPE_API_KEY``): a secret (``sk_...``) or restricted (``rk_...``) key.
  Prefer the environment: a key in a markets file ends up in backups and diffs.
- ``webhook_secret`` or the variable named by ``webhook_secret_env`` (default
  ``STRIPE_WEBHOOK_SECRET``): the endpoint's signing secret (``whsec_...``).
  Optional: without it every webhook is rejected.
- ``api_base`` (default ``https://api.stripe.com``), ``timeout_seconds`` (10),
  ``tolerance_seconds`` (300), ``return_url`` (none), ``label`` ("Card").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from typing import TYPE_CHECKING, Any

import msgspec

from kernel import GatewayError, Market, Money, ValidationError, hookimpl
from kernel.money import MoneyError, currency_digits
from kernel.payments import (
    OperationResult,
    PaymentMethod,
    PaymentOperation,
    PaymentRequest,
    PaymentResult,
    WebhookEvent,
    WebhookRejected,
)
from plugins.payments._http import HttpGateway, derived_key, header, ignored, redact

if TYPE_CHECKING:  # imported at the first call (cold start)
    import httpx

SIGNATURE_HEADER = "Stripe-Signature"

# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF",
                          "VND", "VUV", "XAF", "XOF", "XPF"})
# https://docs.stripe.com/currencies#special-cases: whole units only, sent "with two decimals"
WHOLE_WITH_TWO_DECIMALS = frozenset({"ISK", "UGX"})
# https://docs.stripe.com/currencies#three-decimal: the last digit must be 0
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

_KEY_RE = re.compile(r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9*]+")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_]{3,255}$")
_PI_RE = re.compile(r"^pi_[A-Za-z0-9]+$")
_HEADER_SAFE = r"[!-~](?:[ -~]*[!-~])?"

EVENT_KINDS = {
    "payment_intent.succeeded": "payment.captured",
    "payment_intent.payment_failed": "payment.failed",
    "payment_intent.canceled": "payment.failed",
    "charge.refunded": "payment.refunded",
}


def stripe_digits(currency: str) -> int:
    """How many decimals Stripe's ``amount`` carries for ``currency``."""
    if currency in ZERO_DECIMAL:
        return 0
    if currency in WHOLE_WITH_TWO_DECIMALS:
        return 2
    return currency_digits(currency)


def to_stripe_amount(money: Money) -> int:
    """Niaga minor units → Stripe's ``amount``, exactly, or a GatewayError."""
    ours, theirs = currency_digits(money.currency), stripe_digits(money.currency)
    if theirs >= ours:
        value = money.amount * 10 ** (theirs - ours)
    else:
        factor = 10 ** (ours - theirs)
        if money.amount % factor:
            raise GatewayError(f"stripe: {money} has fractions Stripe cannot charge in "
                               f"{money.currency}", gateway="stripe")
        value = money.amount // factor
    if money.currency in THREE_DECIMAL and value % 10:
        raise GatewayError(f"stripe: {money}: Stripe takes {money.currency} amounts only in "
                           "multiples of 10 (last digit 0)", gateway="stripe")
    if value <= 0:
        raise GatewayError(f"stripe: cannot charge {money}", gateway="stripe")
    return value


def from_stripe_amount(value: Any, currency: Any) -> Money:
    """Stripe's ``amount`` + ``currency`` → Money; ValueError when it is not exact."""
    if not isinstance(value, int) or isinstance(value, bool) or not isinstance(currency, str):
        raise ValueError(f"not a Stripe amount: {value!r} {currency!r}")
    code = currency.upper()
    ours, theirs = currency_digits(code), stripe_digits(code)
    if theirs >= ours:
        factor = 10 ** (theirs - ours)
        if value % factor:
            raise ValueError(f"{value} is not a whole number of {code} minor units")
        return Money(value // factor, code)
    return Money(value * 10 ** (ours - theirs), code)


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``body`` (what Stripe sends; for tests)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256)
    return f"t={t},v1={digest.hexdigest()}"


class Stripe(HttpGateway):
    name = "stripe"
    family = "payment"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        api_key: str | None = None
        api_key_env: str = "STRIPE_API_KEY"
        webhook_secret: str | None = None
        webhook_secret_env: str = "STRIPE_WEBHOOK_SECRET"
        api_base: str = "https://api.stripe.com"
        timeout_seconds: float = 10.0
        tolerance_seconds: int = 300
        return_url: str | None = None
        label: str = "Card"

        def __repr__(self) -> str:  # the settings hold secrets: never print them
            return (f"Stripe.Config(api_base={self.api_base!r}, "
                    f"timeout_seconds={self.timeout_seconds!r}, "
                    f"tolerance_seconds={self.tolerance_seconds!r})")

    def __init__(self, config: Config, market: Market):
        api_key = config.api_key or os.environ.get(config.api_key_env, "")
        if not api_key:
            raise ValueError(f"api_key: not set; set api_key or the environment variable "
                             f"{config.api_key_env}")
        if not api_key.startswith(("sk_", "rk_")):
            raise ValueError("api_key: expected a secret (sk_...) or restricted (rk_...) key")
        if not config.api_base.startswith(("https://", "http://")):
            raise ValueError("api_base: must be an http(s) URL")
        if config.timeout_seconds <= 0:
            raise ValueError("timeout_seconds: must be positive")
        if config.tolerance_seconds <= 0:
            raise ValueError("tolerance_seconds: must be positive")
        self.config = config
        self.market = market
        self.timeout_seconds = config.timeout_seconds
        self._api_key = api_key
        self._webhook_secret = (config.webhook_secret
                                or os.environ.get(config.webhook_secret_env) or None)

    def __repr__(self) -> str:
        return f"Stripe(market={self.market.code!r}, api_base={self.config.api_base!r})"

    # -- HTTP -------------------------------------------------------------------

    def _new_client(self) -> httpx.Client:
        import httpx

        return httpx.Client(
            base_url=self.config.api_base,
            headers={"Authorization": f"Bearer {self._api_key}",
                     "User-Agent": "niaga-stripe/1"},
            timeout=httpx.Timeout(self.config.timeout_seconds),
            transport=self.transport,
        )

    def _secrets(self) -> tuple[str | None, ...]:
        return self._api_key, self._webhook_secret

    def _post(self, path: str, form: dict[str, str], key: str,
              action: str) -> tuple[int, dict[str, Any], str]:
        # Stripe takes any key up to 255 characters; a header carries printable ASCII
        idempotency_key = derived_key("niaga-", key, 255, _HEADER_SAFE)
        response = self._send("POST", path, action, data=form,
                              headers={"Idempotency-Key": idempotency_key})
        request_id = response.headers.get("request-id", "")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise GatewayError(f"stripe: {action} failed: unreadable answer "
                               f"(HTTP {response.status_code})", gateway=self.name)
        return response.status_code, body, request_id

    def _clean(self, text: Any) -> str:
        return _KEY_RE.sub("[redacted]", redact(str(text), *self._secrets()))

    def _failure(self, action: str, status: int, body: dict[str, Any],
                 request_id: str) -> GatewayError:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        kind, code = error.get("type"), error.get("code")
        if status == 401:
            why = "authentication failed; check the api_key setting"
        elif status == 403:
            why = "the API key may not make this request"
        elif kind == "idempotency_error":
            why = ("the Idempotency-Key was used before with other parameters (a retried "
                   "checkout with a new order id?)")
        elif status == 429:
            why = "rate limited by Stripe; retry later"
        elif status >= 500:
            why = f"Stripe failed ({kind or 'api_error'})"
        else:
            why = self._clean(error.get("message") or kind or "request refused")
        where = f"HTTP {status}" + (f", request {request_id}" if request_id else "")
        return GatewayError(f"stripe: {action} failed: {why} ({where})", gateway=self.name,
                            stripe_code=code if isinstance(code, str) else None)

    def _refusal(self, status: int, body: dict[str, Any]) -> str | None:
        """Stripe's message when it refused an operation on the payment itself."""
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        if status in (400, 402) and error.get("type") in ("invalid_request_error", "card_error"):
            return self._clean(error.get("message") or error.get("code") or "refused")
        return None

    def _money(self, value: Any, currency: Any, action: str) -> Money:
        try:
            return from_stripe_amount(value, currency)
        except (ValueError, MoneyError) as exc:
            raise GatewayError(f"stripe: {action}: unexpected amount in the answer ({exc})",
                               gateway=self.name) from exc

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
        payment_method = request.data.get("payment_method")
        if not isinstance(payment_method, str) or not _TOKEN_RE.match(payment_method):
            raise ValidationError.field(
                "payment.payment_method", "a Stripe PaymentMethod id (pm_...) is required")
        form = {
            "amount": str(to_stripe_amount(request.amount)),
            "currency": request.amount.currency.lower(),
            "payment_method": payment_method,
            "payment_method_types[]": "card",
            "confirm": "true",
            "capture_method": "automatic" if request.capture else "manual",
            "metadata[order_id]": request.order_id,
            "metadata[order_number]": request.order_number,
            "metadata[market]": request.market,
        }
        if self.config.return_url:
            form["return_url"] = self.config.return_url
        status, body, request_id = self._post("/v1/payment_intents", form,
                                              request.idempotency_key, "authorize")
        error = body.get("error") if isinstance(body.get("error"), dict) else None
        if status == 402 and error and error.get("type") == "card_error":
            intent = error.get("payment_intent")
            return PaymentResult(
                status="declined", amount=request.amount,
                reference=intent.get("id") if isinstance(intent, dict) else None,
                message=self._clean(error.get("message") or "card declined"),
            )
        if status != 200:
            raise self._failure("authorize", status, body, request_id)
        return self._intent_result(body)

    def _intent_result(self, intent: dict[str, Any]) -> PaymentResult:
        reference = intent.get("id")
        if intent.get("object") != "payment_intent" or not isinstance(reference, str):
            raise GatewayError("stripe: authorize: the answer is not a PaymentIntent",
                               gateway=self.name)
        amount = self._money(intent.get("amount"), intent.get("currency"), "authorize")
        status = intent.get("status")
        if status == "succeeded":
            return PaymentResult(status="captured", amount=amount, reference=reference)
        if status == "requires_capture":
            return PaymentResult(status="authorized", amount=amount, reference=reference)
        if status in ("requires_action", "processing"):
            return PaymentResult(status="pending", amount=amount, reference=reference,
                                 message=_pending_message(intent),
                                 instructions=_instructions(intent))
        if status in ("requires_payment_method", "canceled"):
            last = intent.get("last_payment_error")
            why = last.get("message") if isinstance(last, dict) else None
            return PaymentResult(status="declined", amount=amount, reference=reference,
                                 message=self._clean(why or f"payment {status}"))
        raise GatewayError(f"stripe: authorize: unexpected PaymentIntent status {status!r}",
                           gateway=self.name)

    def _operation(self, action: str, operation: PaymentOperation, path: str,
                   form: dict[str, str]) -> tuple[dict[str, Any] | None, OperationResult | None]:
        """POST an operation; (body, None) on success, (None, refusal) when Stripe refused."""
        status, body, request_id = self._post(path, form, operation.idempotency_key, action)
        if status == 200:
            return body, None
        refusal = self._refusal(status, body)
        if refusal is None:
            raise self._failure(action, status, body, request_id)
        return None, OperationResult(ok=False, amount=operation.amount,
                                     reference=operation.reference, message=refusal)

    def _intent_id(self, operation: PaymentOperation) -> str | None:
        ref = operation.reference
        return ref if isinstance(ref, str) and _PI_RE.match(ref) else None

    def _no_intent(self, operation: PaymentOperation) -> OperationResult:
        return OperationResult(ok=False, amount=operation.amount, reference=operation.reference,
                               message="stripe: the payment has no PaymentIntent id")

    @hookimpl
    def niaga_payment_capture(self, gateway: str, operation: PaymentOperation):
        if gateway != self.name:
            return None
        intent_id = self._intent_id(operation)
        if intent_id is None:
            return self._no_intent(operation)
        form = {"amount_to_capture": str(to_stripe_amount(operation.amount))}
        body, refused = self._operation("capture", operation,
                                        f"/v1/payment_intents/{intent_id}/capture", form)
        if body is None:
            return refused
        if body.get("status") != "succeeded":
            return OperationResult(ok=False, amount=operation.amount, reference=intent_id,
                                   message=f"stripe: PaymentIntent is {body.get('status')}")
        captured = self._money(body.get("amount_received"), body.get("currency"), "capture")
        return OperationResult(ok=True, amount=captured, reference=intent_id)

    @hookimpl
    def niaga_payment_void(self, gateway: str, operation: PaymentOperation):
        if gateway != self.name:
            return None
        intent_id = self._intent_id(operation)
        if intent_id is None:
            return self._no_intent(operation)
        body, refused = self._operation("void", operation,
                                        f"/v1/payment_intents/{intent_id}/cancel", {})
        if body is None:
            return refused
        ok = body.get("status") == "canceled"
        return OperationResult(ok=ok, amount=operation.amount, reference=intent_id,
                               message=None if ok else
                               f"stripe: PaymentIntent is {body.get('status')}")

    @hookimpl
    def niaga_payment_refund(self, gateway: str, operation: PaymentOperation):
        if gateway != self.name:
            return None
        intent_id = self._intent_id(operation)
        if intent_id is None:
            return self._no_intent(operation)
        form = {"payment_intent": intent_id,
                "amount": str(to_stripe_amount(operation.amount))}
        body, refused = self._operation("refund", operation, "/v1/refunds", form)
        if body is None:
            return refused
        refund_id = body.get("id") if isinstance(body.get("id"), str) else None
        status = body.get("status")
        amount = self._money(body.get("amount"), body.get("currency"), "refund")
        if status in ("succeeded", "pending"):
            return OperationResult(ok=True, amount=amount, reference=refund_id,
                                   message=None if status == "succeeded" else "refund pending")
        return OperationResult(ok=False, amount=amount, reference=refund_id,
                               message=f"stripe: refund {status}")

    # -- webhooks -----------------------------------------------------------------

    def _now(self) -> float:
        return time.time()

    def _verify(self, headers: dict[str, str], body: bytes) -> None:
        secret = self._webhook_secret
        if not secret:
            raise WebhookRejected(f"stripe: no webhook signing secret configured (webhook_secret "
                                  f"or {self.config.webhook_secret_env})")
        value = header(headers, SIGNATURE_HEADER)
        if not value:
            raise WebhookRejected(f"stripe: missing {SIGNATURE_HEADER} header")
        timestamp, signatures = None, []
        for part in value.split(","):
            key, _, item = part.strip().partition("=")
            if key == "t":
                timestamp = item
            elif key == "v1":
                signatures.append(item)
        if not timestamp or not (timestamp.isascii() and timestamp.isdigit()) or not signatures:
            raise WebhookRejected(f"stripe: malformed {SIGNATURE_HEADER} header")
        expected = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body,
                            hashlib.sha256).hexdigest().encode("ascii")
        if not any(hmac.compare_digest(expected, s.encode("utf-8")) for s in signatures):
            raise WebhookRejected("stripe: webhook signature does not verify")
        if abs(self._now() - int(timestamp)) > self.config.tolerance_seconds:
            raise WebhookRejected("stripe: webhook timestamp outside the tolerance (replayed?)")

    @hookimpl
    def niaga_webhook_parse(self, plugin: str, headers: dict[str, str],
                            body: bytes) -> WebhookEvent | None:
        if plugin != self.name:
            return None
        if isinstance(body, str):
            body = body.encode("utf-8")
        self._verify(headers, body)
        try:
            event = json.loads(body)
            event_id, event_type = event["id"], event["type"]
            obj = event["data"]["object"]
            if not (isinstance(event_id, str) and isinstance(event_type, str)
                    and isinstance(obj, dict)):
                raise TypeError("id, type and data.object have the wrong types")
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"stripe: bad webhook body: {exc}") from exc
        detail = {"type": event_type, "livemode": bool(event.get("livemode"))}
        kind = EVENT_KINDS.get(event_type)
        if kind is None:
            return ignored(event_id, detail)
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        order_id = metadata.get("order_id") if isinstance(metadata.get("order_id"), str) else None
        if event_type == "charge.refunded":
            reference = obj.get("payment_intent") or obj.get("id")
            field = "amount_refunded"
        else:
            reference = obj.get("id")
            field = "amount_received" if kind == "payment.captured" else "amount"
            last = obj.get("last_payment_error")
            if isinstance(last, dict) and isinstance(last.get("message"), str):
                detail["message"] = last["message"]
        try:
            amount = from_stripe_amount(obj.get(field), obj.get("currency"))
        except (ValueError, MoneyError) as exc:
            raise WebhookRejected(f"stripe: bad webhook amount: {exc}") from exc
        return WebhookEvent(id=event_id, kind=kind, order_id=order_id,  # type: ignore[arg-type]
                            reference=reference if isinstance(reference, str) else None,
                            amount=amount, detail=detail)


def _redirect_url(intent: dict[str, Any]) -> str | None:
    action = intent.get("next_action")
    if not isinstance(action, dict):
        return None
    for key in ("redirect_to_url", action.get("type")):
        inner = action.get(key) if isinstance(key, str) else None
        if isinstance(inner, dict):
            for field in ("url", "hosted_voucher_url", "hosted_instructions_url"):
                if isinstance(inner.get(field), str):
                    return inner[field]
    return None


def _instructions(intent: dict[str, Any]) -> dict[str, str]:
    found = {"payment_intent": str(intent.get("id"))}
    action = intent.get("next_action")
    if isinstance(action, dict) and isinstance(action.get("type"), str):
        found["next_action"] = action["type"]
    url = _redirect_url(intent)
    if url:
        found["redirect_url"] = url
    return found


def _pending_message(intent: dict[str, Any]) -> str:
    if intent.get("status") == "processing":
        return "Stripe is processing the payment"
    if _redirect_url(intent):
        return "the customer must authenticate the payment at redirect_url"
    return "the customer must authenticate the payment with Stripe.js (next_action)"
