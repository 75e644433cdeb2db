"""Signed notifications for gateways without a vendor scheme of their own.

testpay, bank-transfer (the bank's or a reconciliation job's notice that a
transfer arrived) and cod (the courier's notice that the cash was collected)
accept JSON notifications signed like Stripe's webhooks::

    <Header>: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the shared secret>

with a timestamp tolerance, every ``v1`` compared in constant time, and a body
``{"id", "type": "payment.captured" | "payment.failed" | "payment.refunded",
"order_id", "reference"?, "amount"?}`` (amount: a decimal string in the market's
currency). The event ``id`` is the sender's: a replay is the same event.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Literal

import msgspec

from kernel import Money, hookimpl
from kernel.payments import WebhookEvent, WebhookRejected


class _Notice(msgspec.Struct, forbid_unknown_fields=False):
    id: str
    type: Literal["payment.captured", "payment.failed", "payment.refunded"]
    order_id: str | None = None
    reference: str | None = None
    amount: str | None = None


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The signature header value for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256)
    return f"t={t},v1={digest.hexdigest()}"


def secret_from(value: str | None, env: str | None) -> str | None:
    """A webhook secret from the settings, else from the named environment variable."""
    return value or (os.environ.get(env) if env else None) or None


def parse(name: str, header_name: str, headers: dict[str, str], body: bytes | str,
          secret: str | None, tolerance_seconds: int, currency: str) -> WebhookEvent:
    """Verify and parse one notification; WebhookRejected (nothing changes) otherwise."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not secret:
        raise WebhookRejected(f"{name}: no webhook secret is configured; notifications refused")
    header = next((v for k, v in headers.items() if k.lower() == header_name.lower()), None)
    if not header:
        raise WebhookRejected(f"{name}: missing {header_name} header")
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if not timestamp or not (timestamp.isascii() and timestamp.isdigit()) or not signatures:
        raise WebhookRejected(f"{name}: malformed {header_name} header")
    if abs(time.time() - int(timestamp)) > tolerance_seconds:
        raise WebhookRejected(f"{name}: webhook timestamp outside the tolerance (replayed?)")
    expected = sign(body, secret, int(timestamp)).partition(",v1=")[2].encode("ascii")
    if not any(hmac.compare_digest(expected, s.encode("utf-8")) for s in signatures):
        raise WebhookRejected(f"{name}: webhook signature does not verify")
    try:
        notice = msgspec.json.decode(body, type=_Notice)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise WebhookRejected(f"{name}: bad webhook body: {exc}") from exc
    amount = None
    if notice.amount is not None:
        try:
            amount = Money.parse(notice.amount, currency)
        except ValueError as exc:
            raise WebhookRejected(f"{name}: bad webhook amount: {exc}") from exc
    return WebhookEvent(id=notice.id, kind=notice.type, order_id=notice.order_id,
                        reference=notice.reference, amount=amount)


class SignedNotices:
    """Mix into a payment plugin whose Config has ``webhook_secret``, ``webhook_secret_env``
    and ``tolerance_seconds``: it then accepts signed notices at ``/webhooks/<name>``."""

    name: str
    notice_header = "Niaga-Signature"

    @hookimpl
    def niaga_webhook_parse(self, plugin: str, headers: dict[str, str],
                            body: bytes) -> WebhookEvent | None:
        if plugin != self.name:
            return None
        config = self.config  # type: ignore[attr-defined]
        secret = secret_from(config.webhook_secret, config.webhook_secret_env)
        return parse(self.name, self.notice_header, headers, body, secret,
                     config.tolerance_seconds, self.market.currency)  # type: ignore[attr-defined]

