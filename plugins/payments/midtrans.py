"""Midtrans (Indonesia): virtual accounts and e-wallets through the Core API.

One payment method, ``midtrans``, offered for IDR carts; the checkout body picks
the channel: ``{"payment": {"method": "midtrans", "channel": "bca_va"}}``, one of
the market's ``methods`` (``bca_va``, ``bni_va``, ``bri_va``, ``permata_va``,
``gopay``, ``qris``). When the market enables a single channel it may be omitted.

Authorize sends ``POST /v2/charge`` (HTTP Basic: the server key as user name,
empty password) with ``transaction_details: {order_id, gross_amount}``. Midtrans'
``order_id`` is Niaga's order id (``request.order_id``), so a notification names
the Niaga order directly; the order number is for people. ``gross_amount`` is an
integer number of rupiah: Niaga's IDR has 2 minor digits (ISO 4217), so the
plugin sends ``amount // 100`` and refuses an amount with sen. Midtrans answers
``status_code`` "201", ``transaction_status`` "pending": the order waits for
payment (*pending payment*) and the customer gets instructions: the bank and
virtual-account number (``va_numbers`` / ``permata_va_number``), or the e-wallet's
deeplink / QR-code URLs (``actions``), and ``expiry_time`` (Jakarta time) when
given. Virtual accounts expire with the market's ``payment_window_hours``.

Midtrans sometimes reports errors as HTTP 200 with a 4xx/5xx ``status_code`` in
the body, sometimes as the HTTP status itself: both are read the same way. A
refused payment (``deny``) is declined; anything else is a GatewayError naming
``midtrans`` (and never the server key).

Operations, each with the kernel's idempotency key turned into Midtrans'
``Idempotency-Key`` header (and ``refund_key``), derived as a digest when the key
has characters Midtrans does not allow:

- capture: virtual accounts and e-wallets settle by themselves; capture asks
  ``GET /v2/{order_id}/status`` and succeeds only when Midtrans says settled;
- void: ``POST /v2/{order_id}/cancel``;
- refund: ``POST /v2/{order_id}/refund`` with ``refund_key`` and ``amount``.
  Midtrans refunds e-wallet/QRIS payments only; for a virtual account it refuses
  and the merchant refunds by bank transfer.

Notifications (``POST /webhooks/midtrans``, set as the Payment Notification URL):
``signature_key`` must equal ``sha512(order_id + status_code + gross_amount +
server_key)`` (hex). That signature does not cover ``transaction_status`` nor
``transaction_id``: a signed ``cancel`` (status_code 200, like ``settlement``)
could be edited to say ``settlement``. So, as Midtrans recommends, a verified
notification only names the order: the plugin then asks ``GET
/v2/{order_id}/status`` and reads the transaction id, status, fraud status,
amount and refunds from that answer, never from the posted body. A status call
that fails (5xx, 401, timeout, no transaction) is a GatewayError: the kernel
answers 502 and Midtrans sends the notification again later.
``settlement`` (and ``capture`` with ``fraud_status`` accept) is
payment.captured; ``deny``, ``cancel``, ``expire``, ``failure`` are
payment.failed; ``refund``, ``partial_refund`` payment.refunded. ``pending``
(sent right after the charge), ``authorize`` and ``capture`` under fraud review
change nothing: an "ignored" event (None while the kernel lacks that kind).
The event id is ``transaction_id:transaction_status`` as Midtrans answered them
(plus the refund's key for refunds), so a repeated notification is applied once,
a later status is new, and editing the posted body cannot make a new id.

Settings (``[markets.XX.plugins.midtrans]``):

- ``server_key`` or, when unset, the environment variable named by
  ``server_key_env`` (default ``MIDTRANS_SERVER_KEY``). Prefer the environment.
- ``environment``: ``sandbox`` (default, https://api.sandbox.midtrans.com) or
  ``production`` (https://api.midtrans.com).
- ``methods``: the channels offered (default all six above).
- ``timeout_seconds`` (10), ``label`` ("Virtual account / e-wallet").
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import re
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from kernel import GatewayError, Market, Money, ValidationError, hookimpl
from kernel.money import MoneyError
from kernel.payments import (
    OperationResult,
    PaymentMethod,
    PaymentOperation,
    PaymentRequest,
    PaymentResult,
    WebhookEvent,
    WebhookRejected,
)
from plugins.payments._http import HttpGateway, derived_key, ignored, redact

if TYPE_CHECKING:  # imported at the first call (cold start)
    import httpx

BASE_URLS = {"sandbox": "https://api.sandbox.midtrans.com",
             "production": "https://api.midtrans.com"}

CHANNELS: dict[str, dict[str, Any]] = {
    "bca_va": {"payment_type": "bank_transfer", "bank_transfer": {"bank": "bca"}},
    "bni_va": {"payment_type": "bank_transfer", "bank_transfer": {"bank": "bni"}},
    "bri_va": {"payment_type": "bank_transfer", "bank_transfer": {"bank": "bri"}},
    "permata_va": {"payment_type": "bank_transfer", "bank_transfer": {"bank": "permata"}},
    "gopay": {"payment_type": "gopay"},
    "qris": {"payment_type": "qris"},
}
VIRTUAL_ACCOUNTS = ("bca_va", "bni_va", "bri_va", "permata_va")

CAPTURED = "payment.captured"
FAILED = "payment.failed"
REFUNDED = "payment.refunded"
STATUS_KINDS = {"settlement": CAPTURED, "deny": FAILED, "cancel": FAILED, "expire": FAILED,
                "failure": FAILED, "refund": REFUNDED, "partial_refund": REFUNDED}

_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9._~-]{1,50}$")
IDEMPOTENCY_KEY_LIMIT = 36  # Midtrans does not document a maximum; a UUID's length is safe


def signature(order_id: str, status_code: str, gross_amount: str, server_key: str) -> str:
    """A notification's ``signature_key``."""
    text = order_id + status_code + gross_amount + server_key
    return hashlib.sha512(text.encode("utf-8")).hexdigest()


def rupiah(amount: Money) -> int:
    """Niaga IDR (2 minor digits) → Midtrans' integer ``gross_amount``, or a GatewayError."""
    if amount.currency != "IDR":
        raise GatewayError(f"midtrans: charges IDR only, not {amount.currency}",
                           gateway="midtrans")
    whole, sen = divmod(amount.amount, 100)
    if sen:
        raise GatewayError(f"midtrans: {amount} has sen; Midtrans takes whole rupiah only",
                           gateway="midtrans")
    if whole <= 0:
        raise GatewayError(f"midtrans: cannot charge {amount}", gateway="midtrans")
    return whole


def _idr(text: Any) -> Money:
    if isinstance(text, int | float) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise ValueError(f"not an amount: {text!r}")
    return Money.parse(text, "IDR")


class Midtrans(HttpGateway):
    name = "midtrans"
    family = "payment"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        server_key: str | None = None
        server_key_env: str = "MIDTRANS_SERVER_KEY"
        environment: Literal["sandbox", "production"] = "sandbox"
        methods: list[str] = msgspec.field(default_factory=lambda: list(CHANNELS))
        timeout_seconds: float = 10.0
        label: str = "Virtual account / e-wallet"

        def __repr__(self) -> str:  # the settings may hold the server key: never print it
            return (f"Midtrans.Config(environment={self.environment!r}, "
                    f"methods={self.methods!r}, timeout_seconds={self.timeout_seconds!r})")

    def __init__(self, config: Config, market: Market):
        server_key = config.server_key or os.environ.get(config.server_key_env, "")
        if not server_key:
            raise ValueError(f"server_key: not set; set server_key or the environment variable "
                             f"{config.server_key_env}")
        if not config.methods:
            raise ValueError("methods: enable at least one channel")
        unknown = [m for m in config.methods if m not in CHANNELS]
        if unknown:
            raise ValueError(f"methods: unknown channel(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(CHANNELS)}")
        if config.timeout_seconds <= 0:
            raise ValueError("timeout_seconds: must be positive")
        self.config = config
        self.market = market
        self.timeout_seconds = config.timeout_seconds
        self._server_key = server_key

    def __repr__(self) -> str:
        return f"Midtrans(market={self.market.code!r}, environment={self.config.environment!r})"

    # -- HTTP -------------------------------------------------------------------

    def _new_client(self) -> httpx.Client:
        import httpx

        return httpx.Client(
            base_url=BASE_URLS[self.config.environment],
            auth=httpx.BasicAuth(self._server_key, ""),
            headers={"Accept": "application/json", "User-Agent": "niaga-midtrans/1"},
            timeout=httpx.Timeout(self.config.timeout_seconds),
            transport=self.transport,
        )

    def _secrets(self) -> tuple[str | None, ...]:
        return (self._server_key,)

    def _call(self, method: str, path: str, action: str, *, body: dict[str, Any] | None = None,
              key: str | None = None) -> tuple[str, dict[str, Any]]:
        """One Core API call → (Midtrans status_code, body); the body's code wins over HTTP's."""
        headers = {}
        if key is not None:
            headers["Idempotency-Key"] = derived_key("niaga-", key, IDEMPOTENCY_KEY_LIMIT)
        response = self._send(method, path, action, json=body, headers=headers)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise GatewayError(f"midtrans: {action} failed: unreadable answer "
                               f"(HTTP {response.status_code})", gateway=self.name)
        code = payload.get("status_code")
        return (str(code) if code is not None else str(response.status_code)), payload

    def _message(self, payload: dict[str, Any]) -> str:
        parts = [payload.get("status_message")]
        extra = payload.get("validation_messages")
        if isinstance(extra, list):
            parts.extend(extra)
        text = "; ".join(str(p) for p in parts if p) or "no message"
        return redact(text, self._server_key)

    def _failure(self, action: str, code: str, payload: dict[str, Any]) -> GatewayError:
        if code == "401":
            why = "authentication failed; check the server_key setting and environment"
        elif code == "406":
            why = f"order id already used at Midtrans ({self._message(payload)})"
        else:
            why = self._message(payload)
        return GatewayError(f"midtrans: {action} failed: {why} (status {code})",
                            gateway=self.name, midtrans_status=code)

    def _order_path(self, order_id: str, suffix: str) -> str:
        if not _ORDER_ID_RE.match(order_id):
            raise GatewayError(f"midtrans: {order_id!r} cannot be a Midtrans order_id",
                               gateway=self.name)
        return f"/v2/{order_id}/{suffix}"

    # -- payments ---------------------------------------------------------------

    @hookimpl
    def niaga_payment_methods(self, cart, market) -> list[PaymentMethod]:
        if cart.currency != "IDR":
            return []
        return [PaymentMethod(id=self.name, gateway=self.name, label=self.config.label,
                              kind="bank_transfer")]

    def _channel(self, data: dict[str, Any]) -> str:
        channel = data.get("channel")
        if channel is None and len(self.config.methods) == 1:
            return self.config.methods[0]
        if not isinstance(channel, str) or channel not in self.config.methods:
            raise ValidationError.field(
                "payment.channel", f"choose one of {', '.join(self.config.methods)}")
        return channel

    @hookimpl
    def niaga_payment_authorize(self, gateway: str,
                                request: PaymentRequest) -> PaymentResult | None:
        if gateway != self.name:
            return None
        channel = self._channel(request.data)
        gross_amount = rupiah(request.amount)
        if not _ORDER_ID_RE.match(request.order_id):
            raise GatewayError(f"midtrans: {request.order_id!r} cannot be a Midtrans order_id",
                               gateway=self.name)
        body = copy.deepcopy(CHANNELS[channel])
        body["transaction_details"] = {"order_id": request.order_id,
                                       "gross_amount": gross_amount}
        if request.email:
            body["customer_details"] = {"email": request.email}
        if channel in VIRTUAL_ACCOUNTS:
            minutes = max(1, round(self.market.payment_window_hours * 60))
            body["custom_expiry"] = {"expiry_duration": minutes, "unit": "minute"}
        code, payload = self._call("POST", "/v2/charge", "charge", body=body,
                                   key=request.idempotency_key)
        status = payload.get("transaction_status")
        answered_for = payload.get("order_id")
        if answered_for is not None and answered_for != request.order_id:
            # Midtrans replays the first answer for an Idempotency-Key whatever the body
            raise GatewayError("midtrans: charge answered for another order id (an earlier "
                               "attempt with this Idempotency-Key); retry later",
                               gateway=self.name)
        if code == "202" or status in ("deny", "cancel", "expire", "failure"):
            return PaymentResult(status="declined", amount=request.amount,
                                 reference=_str(payload.get("transaction_id")),
                                 message=self._message(payload))
        if code not in ("200", "201"):
            raise self._failure("charge", code, payload)
        reference = _str(payload.get("transaction_id"))
        try:
            amount = _idr(payload.get("gross_amount", f"{gross_amount}.00"))
        except (ValueError, MoneyError) as exc:
            raise GatewayError(f"midtrans: charge: unexpected gross_amount ({exc})",
                               gateway=self.name) from exc
        if status == "pending":
            instructions = _instructions(channel, payload)
            return PaymentResult(status="pending", amount=amount, reference=reference,
                                 message=_pending_message(instructions),
                                 instructions=instructions)
        if status == "settlement" or (status == "capture"
                                      and payload.get("fraud_status") in (None, "accept")):
            return PaymentResult(status="captured", amount=amount, reference=reference)
        raise GatewayError(f"midtrans: charge: unexpected transaction_status {status!r}",
                           gateway=self.name)

    @hookimpl
    def niaga_payment_capture(self, gateway: str, operation: PaymentOperation):
        if gateway != self.name:
            return None
        code, payload = self._call("GET", self._order_path(operation.order_id, "status"),
                                   "status")
        if code.startswith("5") or code == "401":
            raise self._failure("status", code, payload)
        status = payload.get("transaction_status")
        settled = status == "settlement" or (status == "capture"
                                              and payload.get("fraud_status") == "accept")
        return OperationResult(
            ok=settled, amount=operation.amount, reference=operation.reference,
            message="settled at Midtrans" if settled else
            f"midtrans: not paid (status {status or code}); virtual accounts and e-wallets "
            "settle when the customer pays",
        )

    @hookimpl
    def niaga_payment_void(self, gateway: str, operation: PaymentOperation):
        if gateway != self.name:
            return None
        code, payload = self._call("POST", self._order_path(operation.order_id, "cancel"),
                                   "cancel", key=operation.idempotency_key)
        if code.startswith("5") or code == "401":
            raise self._failure("cancel", code, payload)
        ok = code == "200" and payload.get("transaction_status") == "cancel"
        return OperationResult(ok=ok, amount=operation.amount, reference=operation.reference,
                               message=None if ok else f"midtrans: {self._message(payload)}")

    @hookimpl
    def niaga_payment_refund(self, gateway: str, operation: PaymentOperation):
        if gateway != self.name:
            return None
        refund_key = derived_key("niaga-", operation.idempotency_key, IDEMPOTENCY_KEY_LIMIT)
        body = {"refund_key": refund_key, "amount": rupiah(operation.amount),
                "reason": "refund from Niaga"}
        code, payload = self._call("POST", self._order_path(operation.order_id, "refund"),
                                   "refund", body=body, key=operation.idempotency_key)
        if code.startswith("5") or code == "401":
            raise self._failure("refund", code, payload)
        ok = code == "200" and payload.get("transaction_status") in ("refund", "partial_refund")
        amount = operation.amount
        if ok and payload.get("refund_amount") is not None:
            try:
                amount = _idr(payload["refund_amount"])
            except (ValueError, MoneyError) as exc:
                raise GatewayError(f"midtrans: refund: unexpected refund_amount ({exc})",
                                   gateway=self.name) from exc
        return OperationResult(ok=ok, amount=amount, reference=refund_key,
                               message=None if ok else f"midtrans: {self._message(payload)}")

    # -- notifications ------------------------------------------------------------

    @hookimpl
    def niaga_webhook_parse(self, plugin: str, headers: dict[str, str],
                            body: bytes) -> WebhookEvent | None:
        if plugin != self.name:
            return None
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise WebhookRejected(f"midtrans: bad notification body: {exc}") from exc
        if not isinstance(payload, dict):
            raise WebhookRejected("midtrans: bad notification body: not a JSON object")
        fields = ("order_id", "status_code", "gross_amount", "signature_key")
        missing = [f for f in fields if not isinstance(payload.get(f), str)]
        if missing:
            raise WebhookRejected(f"midtrans: notification lacks {', '.join(missing)}")
        expected = signature(payload["order_id"], payload["status_code"],
                             payload["gross_amount"], self._server_key)
        if not hmac.compare_digest(expected.encode("ascii"),
                                   payload["signature_key"].lower().encode("utf-8")):
            raise WebhookRejected("midtrans: notification signature does not verify")
        order_id = payload["order_id"]
        if not _ORDER_ID_RE.match(order_id):
            raise WebhookRejected("midtrans: notification order_id is not one Niaga sends")
        # The signature covers order_id, status_code and gross_amount only: whatever else
        # the body says (transaction_status, transaction_id, fraud_status, refunds) could
        # have been edited. Midtrans' answer for the order is what counts.
        return self._notified(order_id, self._transaction(order_id))

    def _transaction(self, order_id: str) -> dict[str, Any]:
        """Midtrans' own record of ``order_id`` (GET status), or a GatewayError (retry)."""
        code, answer = self._call("GET", self._order_path(order_id, "status"), "status")
        if code.startswith("5") or code == "401":
            raise self._failure("status", code, answer)
        if not (isinstance(answer.get("transaction_id"), str)
                and isinstance(answer.get("transaction_status"), str)):
            raise self._failure("status", code, answer)  # 404: no such transaction, ...
        if answer.get("order_id", order_id) != order_id:
            raise GatewayError("midtrans: status answered for another order id",
                               gateway=self.name)
        return answer

    def _notified(self, order_id: str, answer: dict[str, Any]) -> WebhookEvent | None:
        """The event for a verified notification, from Midtrans' status ``answer``."""
        transaction_id, status = answer["transaction_id"], answer["transaction_status"]
        event_id = f"{transaction_id}:{status}"
        detail = {"transaction_status": status, "payment_type": answer.get("payment_type"),
                  "status_code": _str(answer.get("status_code"))}
        kind = STATUS_KINDS.get(status)
        if status == "capture":
            kind = CAPTURED if answer.get("fraud_status") == "accept" else None
            detail["fraud_status"] = answer.get("fraud_status")
        if kind is None:
            return ignored(event_id, detail)
        try:
            if kind == REFUNDED:
                amount, refund_id = _refunded(answer)
                event_id += f":{refund_id}"
            else:
                amount = _idr(answer.get("gross_amount"))
        except (ValueError, MoneyError) as exc:
            raise GatewayError(f"midtrans: status: unexpected amount ({exc})",
                               gateway=self.name) from exc
        return WebhookEvent(id=event_id, kind=kind, order_id=order_id,
                            reference=transaction_id, amount=amount, detail=detail)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _refunded(payload: dict[str, Any]) -> tuple[Money | None, str]:
    """(total refunded, an id for this refund) from a refunded transaction's status."""
    refunds = payload.get("refunds")
    if isinstance(refunds, list) and refunds and all(isinstance(r, dict) for r in refunds):
        total = sum((_idr(r.get("refund_amount")) for r in refunds), Money.zero("IDR"))
        last = refunds[-1]
        refund_id = last.get("refund_key") or last.get("refund_chargeback_id") or len(refunds)
        return total, str(refund_id)
    if payload.get("refund_amount") is not None:
        amount = _idr(payload["refund_amount"])
        return amount, str(payload["refund_amount"])
    return None, "refund"


def _instructions(channel: str, payload: dict[str, Any]) -> dict[str, str]:
    found = {"channel": channel}
    vas = payload.get("va_numbers")
    if isinstance(vas, list) and vas and isinstance(vas[0], dict):
        found["bank"] = str(vas[0].get("bank", ""))
        found["va_number"] = str(vas[0].get("va_number", ""))
    if isinstance(payload.get("permata_va_number"), str):
        found["bank"] = "permata"
        found["va_number"] = payload["permata_va_number"]
    actions = payload.get("actions")
    names = {"deeplink-redirect": "deeplink_url", "generate-qr-code": "qr_code_url",
             "generate-qr-code-v2": "qr_code_url", "mobile-deeplink-web": "deeplink_url"}
    if isinstance(actions, list):
        for action in actions:
            if not isinstance(action, dict) or not isinstance(action.get("url"), str):
                continue
            key = names.get(str(action.get("name")))
            if key and key not in found:
                found[key] = action["url"]
    if isinstance(payload.get("qr_string"), str):
        found["qr_string"] = payload["qr_string"]
    if isinstance(payload.get("expiry_time"), str):
        found["expires_at"] = payload["expiry_time"] + " +07:00"
    if isinstance(payload.get("gross_amount"), str):
        found["amount"] = payload["gross_amount"] + " IDR"
    return found


def _pending_message(instructions: dict[str, str]) -> str:
    if "va_number" in instructions:
        return (f"Transfer to {instructions.get('bank', '').upper()} virtual account "
                f"{instructions['va_number']}")
    if "deeplink_url" in instructions:
        return "Open the e-wallet app at deeplink_url to pay"
    if "qr_code_url" in instructions or "qr_string" in instructions:
        return "Scan the QR code to pay"
    return "Waiting for payment"
