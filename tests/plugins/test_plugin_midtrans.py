"""The ``midtrans`` payment plugin against recorded Core API answers (no network).

Answers come from ``recordings/midtrans/*.json`` (``{"status", "headers", "body"}``,
bodies in Midtrans' documented charge / cancel / refund / status / notification
shapes), served by an ``httpx.MockTransport`` that first asserts what the plugin
sent: method, URL, Basic auth with the server key, the JSON body (``gross_amount``
in whole rupiah) and the ``Idempotency-Key``. Notifications are signed here with
the test server key; each verified one is confirmed with a GET status call.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path

import httpx
import pytest

from kernel.errors import ConfigError, GatewayError, ValidationError
from kernel.money import Money
from kernel.payments import PaymentOperation, PaymentRequest, WebhookRejected
from kernel.testing import check_plugin_conformance
from plugins.payments.midtrans import Midtrans, rupiah, signature

RECORDINGS = Path(__file__).parent / "recordings" / "midtrans"
SERVER_KEY = "SB-Mid-server-NiagaTestKey0123456789abcd"
TX = "7d2a3f1e-5c44-4b8e-9a0d-3e1f2b6c9a10"
ORDER = "ord-id-1"
AMOUNT = Money(15_000_000, "IDR")  # Rp 150.000,00


def recording(name: str) -> dict:
    return json.loads((RECORDINGS / f"{name}.json").read_text())


class Gateway:
    """Plays Midtrans: serves recordings in order, asserting each request first."""

    def __init__(self, host: str = "api.sandbox.midtrans.com") -> None:
        self.host = host
        self.script: list[tuple] = []
        self.seen: list[tuple[httpx.Request, object]] = []

    def expect(self, method: str, path: str, answer, *, body: object = None,
               key: bool = True, edit: dict | None = None) -> None:
        """Answer the next request with recording ``answer`` (its body updated with
        ``edit``), or raise ``answer`` when it is an httpx exception class."""
        self.script.append((method, path, answer, body, key, edit or {}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert self.script, f"unexpected request {request.method} {request.url}"
        method, path, answer, body, key, edit = self.script.pop(0)
        assert (request.method, request.url.scheme, request.url.host, request.url.path) == (
            method, "https", self.host, path)
        basic = base64.b64encode(f"{SERVER_KEY}:".encode()).decode()
        assert request.headers["Authorization"] == f"Basic {basic}"
        assert request.headers["Accept"] == "application/json"
        sent = json.loads(request.content) if request.content else None
        if body is not None:
            assert request.headers["Content-Type"] == "application/json"
            assert sent == body
        if key:
            # kernel keys hold ":" and anything a client sent: Midtrans gets a safe digest
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,36}", request.headers["Idempotency-Key"])
        self.seen.append((request, sent))
        if isinstance(answer, type) and issubclass(answer, Exception):
            raise answer("simulated", request=request)
        rec = recording(answer)
        return httpx.Response(rec["status"], json={**rec["body"], **edit},
                              headers=rec["headers"])


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        assert SERVER_KEY not in record.getMessage() + (record.exc_text or "")


@pytest.fixture
def gateway():
    return Gateway()


def make(build, gateway, monkeypatch, currency="IDR", **settings) -> Midtrans:
    monkeypatch.setenv("MIDTRANS_SERVER_KEY", SERVER_KEY)
    market = build.market("ID", currency, plugins={"midtrans": settings})
    plugin = build.plugin(Midtrans, market)
    plugin.transport = httpx.MockTransport(gateway)
    return plugin


@pytest.fixture
def midtrans(build, gateway, monkeypatch):
    plugin = make(build, gateway, monkeypatch)
    yield plugin
    assert gateway.script == [], "an expected Midtrans call was not made"


def request(channel: object = "bca_va", *, amount: Money = AMOUNT, key: str = "cart-9:idem-1",
            order_id: str = ORDER, email: str | None = None) -> PaymentRequest:
    return PaymentRequest(order_id=order_id, order_number="ID-7K2M-9QXA", market="ID",
                          amount=amount, data={} if channel is None else {"channel": channel},
                          idempotency_key=key, email=email)


def operation(key: str, amount: Money = AMOUNT, order_id: str = ORDER) -> PaymentOperation:
    return PaymentOperation(order_id=order_id, reference=TX, amount=amount, idempotency_key=key)


def charge(payment: dict, *, expiry: int | None = 1440, **extra) -> dict:
    body = {**payment, "transaction_details": {"order_id": ORDER, "gross_amount": 150000},
            **extra}
    if expiry is not None:
        body["custom_expiry"] = {"expiry_duration": expiry, "unit": "minute"}
    return body


# -- the plugin itself ------------------------------------------------------------------


def test_conformance():
    assert check_plugin_conformance(Midtrans) == []


def test_one_method_for_idr_carts_and_none_for_others(build, gateway, monkeypatch, midtrans):
    cart = build.cart(midtrans.market, [("KOPI", 1, "150000.00", "standard")])
    [method] = midtrans.niaga_payment_methods(cart, midtrans.market)
    assert (method.id, method.gateway, method.kind, method.label) == (
        "midtrans", "midtrans", "bank_transfer", "Virtual account / e-wallet")
    euro = make(build, gateway, monkeypatch, currency="EUR")
    assert euro.niaga_payment_methods(build.cart(euro.market, [("T", 1, "1.00", "s")]),
                                      euro.market) == []


def test_other_gateways_are_not_answered(midtrans):
    assert midtrans.niaga_payment_authorize("stripe", request()) is None
    for hook in (midtrans.niaga_payment_capture, midtrans.niaga_payment_void,
                 midtrans.niaga_payment_refund):
        assert hook("stripe", operation("k")) is None
    assert midtrans.niaga_webhook_parse("stripe", {}, b"{}") is None


# -- charge -------------------------------------------------------------------------------


def test_a_bca_virtual_account_is_pending_with_its_number(midtrans, gateway):
    gateway.expect("POST", "/v2/charge", "charge_bca_va", body=charge(
        {"payment_type": "bank_transfer", "bank_transfer": {"bank": "bca"}},
        customer_details={"email": "budi@example.id"}))
    result = midtrans.niaga_payment_authorize("midtrans", request(email="budi@example.id"))
    assert (result.status, result.reference, result.amount) == ("pending", TX, AMOUNT)
    assert result.instructions == {
        "channel": "bca_va", "bank": "bca", "va_number": "12785002123456",
        "expires_at": "2024-07-05 10:53:53 +07:00", "amount": "150000.00 IDR"}
    assert result.message == "Transfer to BCA virtual account 12785002123456"
    [(_, sent)] = gateway.seen
    assert type(sent["transaction_details"]["gross_amount"]) is int  # whole rupiah


def test_a_permata_virtual_account(midtrans, gateway):
    gateway.expect("POST", "/v2/charge", "charge_permata_va", body=charge(
        {"payment_type": "bank_transfer", "bank_transfer": {"bank": "permata"}}))
    result = midtrans.niaga_payment_authorize("midtrans", request("permata_va"))
    assert result.status == "pending"
    assert (result.instructions["bank"], result.instructions["va_number"]) == (
        "permata", "8778000002332015")


def test_gopay_gives_the_deeplink_and_qr_code(midtrans, gateway):
    gateway.expect("POST", "/v2/charge", "charge_gopay",
                   body=charge({"payment_type": "gopay"}, expiry=None))
    result = midtrans.niaga_payment_authorize("midtrans", request("gopay"))
    assert result.status == "pending" and result.reference == TX
    assert result.instructions["deeplink_url"].startswith(
        "https://simulator.sandbox.midtrans.com/gopay/partner/app/payment-pin")
    assert result.instructions["qr_code_url"].endswith(f"/v2/gopay/{TX}/qr-code")
    assert "va_number" not in result.instructions
    assert "deeplink_url" in result.message


def test_qris_gives_the_qr_string(midtrans, gateway):
    gateway.expect("POST", "/v2/charge", "charge_qris",
                   body=charge({"payment_type": "qris"}, expiry=None))
    result = midtrans.niaga_payment_authorize("midtrans", request("qris"))
    assert result.instructions["qr_string"].startswith("000201")
    assert result.message == "Scan the QR code to pay"


def test_the_idempotency_key_is_stable_and_midtrans_safe(midtrans, gateway):
    for _ in range(2):
        gateway.expect("POST", "/v2/charge", "charge_bca_va")
    midtrans.niaga_payment_authorize("midtrans", request(key="cart-9:ümlaut key"))
    midtrans.niaga_payment_authorize("midtrans", request(key="cart-9:ümlaut key"))
    first, again = (r.headers["Idempotency-Key"] for r, _ in gateway.seen)
    assert first == again


def test_the_virtual_account_expires_with_the_markets_payment_window(build, gateway,
                                                                     monkeypatch):
    monkeypatch.setenv("MIDTRANS_SERVER_KEY", SERVER_KEY)
    market = build.market("ID", "IDR", plugins={"midtrans": {}})
    market = type(market)(**{**{f: getattr(market, f) for f in market.__struct_fields__},
                             "payment_window_hours": 2.5})
    plugin = build.plugin(Midtrans, market)
    plugin.transport = httpx.MockTransport(gateway)
    gateway.expect("POST", "/v2/charge", "charge_bca_va", body=charge(
        {"payment_type": "bank_transfer", "bank_transfer": {"bank": "bca"}}, expiry=150))
    assert plugin.niaga_payment_authorize("midtrans", request()).status == "pending"


def test_a_deny_is_declined(midtrans, gateway):
    gateway.expect("POST", "/v2/charge", "charge_deny")
    result = midtrans.niaga_payment_authorize("midtrans", request())
    assert result.status == "declined"
    assert "Do not honor" in result.message


@pytest.mark.parametrize(("answer", "needle"), [
    ("error_duplicate_order_id", "order id already used at Midtrans"),  # HTTP 200, body 406
    ("error_validation", "transaction_details.gross_amount is required"),  # HTTP 200, body 400
    ("error_unauthorized", "authentication failed; check the server_key"),  # HTTP 401
    ("error_server", "recovering from unexpected issues"),  # HTTP 500
])
def test_errors_in_the_body_or_the_http_status_are_gateway_errors(midtrans, gateway, answer,
                                                                   needle):
    gateway.expect("POST", "/v2/charge", answer)
    with pytest.raises(GatewayError) as err:
        midtrans.niaga_payment_authorize("midtrans", request())
    text = str(err.value)
    assert text.startswith("midtrans: charge failed") and needle in text
    assert f"status {recording(answer)['body']['status_code']}" in text
    assert SERVER_KEY not in text


@pytest.mark.parametrize(("failure", "needle"), [
    (httpx.ReadTimeout, "timed out after 10s"),
    (httpx.ConnectError, "network error"),
])
def test_timeouts_and_network_errors_are_gateway_errors(midtrans, gateway, failure, needle):
    gateway.expect("POST", "/v2/charge", failure)
    with pytest.raises(GatewayError, match=needle) as err:
        midtrans.niaga_payment_authorize("midtrans", request())
    assert str(err.value).startswith("midtrans: ") and SERVER_KEY not in repr(err.value)


def test_an_unreadable_answer_is_a_gateway_error(midtrans, gateway):
    def html(request):
        return httpx.Response(502, text="<html>Bad gateway</html>")
    midtrans.transport = httpx.MockTransport(html)
    with pytest.raises(GatewayError, match="unreadable answer"):
        midtrans.niaga_payment_authorize("midtrans", request())


def test_an_answer_for_another_order_is_refused(midtrans, gateway):
    """Midtrans replays a key's first answer whatever the body: never book it on another order."""
    gateway.expect("POST", "/v2/charge", "charge_bca_va")
    with pytest.raises(GatewayError, match="another order id"):
        midtrans.niaga_payment_authorize("midtrans", request(order_id="ord-id-2"))


@pytest.mark.parametrize(("amount", "needle"), [
    (Money(15_000_050, "IDR"), "has sen"),
    (Money(0, "IDR"), "cannot charge"),
    (Money(4990, "EUR"), "IDR only"),
])
def test_amounts_midtrans_cannot_take_are_refused_before_calling(midtrans, gateway, amount,
                                                                 needle):
    with pytest.raises(GatewayError, match=needle) as err:
        midtrans.niaga_payment_authorize("midtrans", request(amount=amount))
    assert str(err.value).startswith("midtrans: ")
    assert gateway.seen == []


def test_rupiah_are_whole_minor_units_divided_by_100():
    assert rupiah(Money(15_000_000, "IDR")) == 150_000


@pytest.mark.parametrize(("channel", "settings"), [
    (None, {}), ("ovo", {}), (7, {}), ("gopay", {"methods": ["bca_va", "qris"]}),
])
def test_the_channel_must_be_one_the_market_enables(build, gateway, monkeypatch, channel,
                                                    settings):
    plugin = make(build, gateway, monkeypatch, **settings)
    with pytest.raises(ValidationError) as err:
        plugin.niaga_payment_authorize("midtrans", request(channel))
    assert err.value.errors[0]["field"] == "payment.channel"
    assert gateway.seen == []


def test_a_single_enabled_channel_needs_no_choice(build, gateway, monkeypatch):
    plugin = make(build, gateway, monkeypatch, methods=["gopay"])
    gateway.expect("POST", "/v2/charge", "charge_gopay",
                   body=charge({"payment_type": "gopay"}, expiry=None))
    assert plugin.niaga_payment_authorize("midtrans", request(None)).status == "pending"


def test_production_uses_the_production_host(build, monkeypatch):
    gateway = Gateway(host="api.midtrans.com")
    plugin = make(build, gateway, monkeypatch, environment="production")
    gateway.expect("POST", "/v2/charge", "charge_bca_va")
    assert plugin.niaga_payment_authorize("midtrans", request()).status == "pending"


# -- capture, cancel, refund ------------------------------------------------------------------


def test_void_cancels_the_transaction(midtrans, gateway):
    gateway.expect("POST", f"/v2/{ORDER}/cancel", "cancel")
    result = midtrans.niaga_payment_void("midtrans", operation(f"cancel:{ORDER}"))
    assert result.ok and result.reference == TX and result.amount == AMOUNT


def test_a_partial_refund_sends_a_refund_key_and_whole_rupiah(midtrans, gateway):
    gateway.expect("POST", f"/v2/{ORDER}/refund", "refund_partial")
    result = midtrans.niaga_payment_refund("midtrans",
                                           operation(f"{ORDER}:ret-1", Money(5_000_000, "IDR")))
    assert result.ok and result.amount == Money(5_000_000, "IDR")
    [(sent_request, sent)] = gateway.seen
    assert sent["amount"] == 50_000 and sent["reason"]
    assert sent["refund_key"] == result.reference == sent_request.headers["Idempotency-Key"]
    assert sent["refund_key"].replace("-", "").replace("_", "").isalnum()


def test_a_refused_refund_is_not_ok(midtrans, gateway):
    gateway.expect("POST", f"/v2/{ORDER}/refund", "refund_not_allowed")
    result = midtrans.niaga_payment_refund("midtrans", operation(f"{ORDER}:ret-2"))
    assert not result.ok
    assert result.message == "midtrans: Merchant cannot modify the status of the transaction"


@pytest.mark.parametrize(("answer", "ok"), [("status_settlement", True),
                                            ("status_pending", False)])
def test_capture_succeeds_only_for_a_settled_payment(midtrans, gateway, answer, ok):
    gateway.expect("GET", f"/v2/{ORDER}/status", answer, key=False)
    result = midtrans.niaga_payment_capture("midtrans", operation(f"{ORDER}:cap-1"))
    assert result.ok is ok
    if not ok:
        assert "not paid (status pending)" in result.message


def test_a_server_error_on_cancel_is_a_gateway_error(midtrans, gateway):
    gateway.expect("POST", f"/v2/{ORDER}/cancel", "error_server")
    with pytest.raises(GatewayError, match="midtrans: cancel failed"):
        midtrans.niaga_payment_void("midtrans", operation("k"))


def test_an_order_id_midtrans_cannot_take_never_reaches_a_url(midtrans, gateway):
    with pytest.raises(GatewayError, match="cannot be a Midtrans order_id"):
        midtrans.niaga_payment_void("midtrans", operation("k", order_id="../charge"))
    assert gateway.seen == []


# -- notifications -----------------------------------------------------------------------------
#
# Midtrans signs order_id + status_code + gross_amount only, so a verified notification just
# names the order: the plugin asks GET /v2/{order_id}/status and believes that answer.


def notification(name: str, key: str = SERVER_KEY, **over) -> bytes:
    payload = {**recording(f"notification_{name}"), **over}
    payload["signature_key"] = signature(payload["order_id"], payload["status_code"],
                                         payload["gross_amount"], key)
    return json.dumps(payload).encode()


def edited(body: bytes, **over) -> bytes:
    """A signed notification with unsigned fields changed: its signature still verifies."""
    return json.dumps({**json.loads(body), **over}).encode()


def status(gateway: Gateway, answer, **edit) -> None:
    gateway.expect("GET", f"/v2/{ORDER}/status", answer, key=False, edit=edit)


def test_settlement_is_payment_captured(midtrans, gateway):
    status(gateway, "status_settlement")
    event = midtrans.niaga_webhook_parse("midtrans", {}, notification("settlement"))
    assert (event.id, event.kind, event.order_id, event.reference, event.amount) == (
        f"{TX}:settlement", "payment.captured", ORDER, TX, AMOUNT)
    [(sent, _)] = gateway.seen
    assert sent.content == b"" and "Idempotency-Key" not in sent.headers


def test_a_replay_has_the_same_id_and_a_later_status_a_new_one(midtrans, gateway):
    for answer in ("status_settlement", "status_settlement", "status_partial_refund"):
        status(gateway, answer)
    first = midtrans.niaga_webhook_parse("midtrans", {}, notification("settlement"))
    again = midtrans.niaga_webhook_parse("midtrans", {}, notification("settlement"))
    refund = midtrans.niaga_webhook_parse("midtrans", {}, notification("partial_refund"))
    assert first == again
    assert refund.id != first.id


def test_expire_is_payment_failed(midtrans, gateway):
    status(gateway, "status_expire")  # Midtrans answers status_code 407 for an expired one
    event = midtrans.niaga_webhook_parse("midtrans", {}, notification("expire"))
    assert (event.id, event.kind, event.order_id) == (f"{TX}:expire", "payment.failed", ORDER)


def test_a_partial_refund_is_payment_refunded_once_per_refund(midtrans, gateway):
    status(gateway, "status_partial_refund")
    event = midtrans.niaga_webhook_parse("midtrans", {}, notification("partial_refund"))
    assert (event.kind, event.amount) == ("payment.refunded", Money(5_000_000, "IDR"))
    assert event.id == f"{TX}:partial_refund:niaga-r1"


@pytest.mark.parametrize(("fraud", "kind"), [("accept", "payment.captured"),
                                           ("challenge", "ignored")])
def test_a_card_capture_counts_only_when_fraud_screening_accepts(midtrans, gateway, fraud, kind):
    status(gateway, "status_capture", fraud_status=fraud)
    # the posted fraud_status is not signed: only Midtrans' answer counts
    body = notification("settlement", transaction_status="capture", fraud_status="accept")
    event = midtrans.niaga_webhook_parse("midtrans", {}, body)
    assert (event.id, event.kind) == (f"{TX}:capture", kind)


def test_pending_changes_nothing(midtrans, gateway):
    body = notification("pending")
    status(gateway, "status_pending")
    event = midtrans.niaga_webhook_parse("midtrans", {}, body)
    assert (event.id, event.kind, event.order_id) == (f"{TX}:pending", "ignored", None)


@pytest.mark.parametrize(("truth", "kind"), [("status_cancel", "payment.failed"),
                                             ("status_pending", "ignored")])
def test_a_cancel_edited_to_settlement_is_never_captured(midtrans, gateway, truth, kind):
    """A signed cancel (status_code 200, like a settlement) edited to say settlement still
    verifies; Midtrans' own status decides."""
    cancel = notification("settlement", transaction_status="cancel")
    forged = edited(cancel, transaction_status="settlement", fraud_status="accept")
    status(gateway, truth)
    event = midtrans.niaga_webhook_parse("midtrans", {}, forged)
    assert event.kind == kind != "payment.captured"
    assert event.id == f"{TX}:{recording(truth)['body']['transaction_status']}"
    assert event.detail["transaction_status"] != "settlement"


def test_an_edited_transaction_id_cannot_make_a_new_event(midtrans, gateway):
    genuine = notification("settlement")
    status(gateway, "status_settlement")
    first = midtrans.niaga_webhook_parse("midtrans", {}, genuine)
    for other in ("0b9c7e2d-1111-4222-8333-444455556666", f"{TX}x", ""):
        status(gateway, "status_settlement")
        event = midtrans.niaga_webhook_parse("midtrans", {}, edited(genuine, transaction_id=other))
        assert event == first and (event.id, event.reference) == (f"{TX}:settlement", TX)
    # nor can one without a transaction id or status: the body only names the order
    status(gateway, "status_settlement")
    bare = {k: v for k, v in json.loads(genuine).items()
            if k not in ("transaction_id", "transaction_status")}
    assert midtrans.niaga_webhook_parse("midtrans", {}, json.dumps(bare).encode()) == first


def test_an_edited_refund_cannot_make_a_new_event(midtrans, gateway):
    body = notification("partial_refund")
    refunds = [{**json.loads(body)["refunds"][0], "refund_key": "forged", "refund_amount":
                "150000.00"}]
    status(gateway, "status_partial_refund")
    event = midtrans.niaga_webhook_parse("midtrans", {}, edited(body, refunds=refunds,
                                                                refund_amount="150000.00"))
    assert (event.id, event.amount) == (f"{TX}:partial_refund:niaga-r1", Money(5_000_000, "IDR"))


@pytest.mark.parametrize(("answer", "needle"), [
    ("error_server", "Please retry. (status 500)"),
    ("error_unauthorized", "authentication failed; check the server_key"),
    ("error_not_found", "Transaction doesn't exist. (status 404)"),
    (httpx.ReadTimeout, "status timed out after 10s"),
    (httpx.ConnectError, "network error"),
])
def test_a_failed_status_call_is_a_gateway_error_so_midtrans_retries(midtrans, gateway, answer,
                                                                      needle):
    status(gateway, answer)
    with pytest.raises(GatewayError, match=r"^midtrans: status") as err:
        midtrans.niaga_webhook_parse("midtrans", {}, notification("settlement"))
    assert needle in str(err.value)
    assert SERVER_KEY not in repr(err.value)


@pytest.mark.parametrize(("edit", "needle"), [
    ({"order_id": "ord-id-2"}, "status answered for another order id"),
    ({"gross_amount": "150000.005"}, "status: unexpected amount"),
    ({"transaction_status": None}, "status failed"),
])
def test_an_odd_status_answer_is_a_gateway_error(midtrans, gateway, edit, needle):
    status(gateway, "status_settlement", **edit)
    with pytest.raises(GatewayError, match=needle):
        midtrans.niaga_webhook_parse("midtrans", {}, notification("settlement"))


def test_the_status_call_logs_no_server_key(midtrans, gateway, caplog):
    status(gateway, "status_settlement")
    midtrans.niaga_webhook_parse("midtrans", {}, notification("settlement"))
    assert f"midtrans GET /v2/{ORDER}/status -> HTTP 200" in caplog.text
    assert SERVER_KEY not in caplog.text  # and the autouse guard checks every record


@pytest.mark.parametrize(("body", "reason"), [
    (lambda: notification("settlement", key="SB-Mid-server-wrong"), "signature"),
    (lambda: notification("settlement")[:-1] + b', "gross_amount": "1.00"}', "signature"),
    (lambda: json.dumps({**json.loads(notification("settlement")),
                         "status_code": "201"}).encode(), "signature"),
    (lambda: json.dumps({**json.loads(notification("settlement")),
                         "signature_key": "é" * 128}).encode(), "signature"),
    (lambda: json.dumps({k: v for k, v in json.loads(notification("settlement")).items()
                         if k != "signature_key"}).encode(), "lacks signature_key"),
    (lambda: b"order_id=1", "bad notification body"),
    (lambda: b"[1]", "not a JSON object"),
    (lambda: notification("settlement", order_id="../charge"), "order_id is not one Niaga"),
])
def test_notifications_that_do_not_verify_are_rejected(midtrans, gateway, body, reason):
    with pytest.raises(WebhookRejected, match=reason) as err:
        midtrans.niaga_webhook_parse("midtrans", {}, body())
    assert str(err.value).startswith("midtrans: ")
    assert SERVER_KEY not in str(err.value)
    assert gateway.seen == []  # nothing unverified reaches Midtrans


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "needle"), [
    ({}, "server_key: not set; set server_key or the environment variable MIDTRANS_SERVER_KEY"),
    ({"server_key": SERVER_KEY, "methods": []}, "methods: enable at least one"),
    ({"server_key": SERVER_KEY, "methods": ["ovo"]}, "methods: unknown channel(s) 'ovo'"),
    ({"server_key": SERVER_KEY, "environment": "staging"}, "environment"),
    ({"server_key": SERVER_KEY, "serverkey": "x"}, "serverkey"),
    ({"server_key": SERVER_KEY, "timeout_seconds": 0}, "timeout_seconds"),
])
def test_bad_settings_fail_at_load(build, monkeypatch, settings, needle):
    monkeypatch.delenv("MIDTRANS_SERVER_KEY", raising=False)
    market = build.market("ID", "IDR", plugins={"midtrans": settings})
    with pytest.raises(ConfigError) as err:
        build.plugin(Midtrans, market)
    assert str(err.value).startswith("markets.ID.plugins.midtrans")
    assert needle in str(err.value) and SERVER_KEY not in str(err.value)


def test_the_server_key_never_shows_in_reprs(build, gateway, monkeypatch):
    plugin = make(build, gateway, monkeypatch, server_key=SERVER_KEY)
    for shown in (repr(plugin), str(plugin), repr(plugin.config), str(plugin.config)):
        assert SERVER_KEY not in shown
