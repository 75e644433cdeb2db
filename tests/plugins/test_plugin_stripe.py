"""The ``stripe`` payment plugin against recorded Stripe API answers (no network).

Every answer comes from ``recordings/stripe/*.json`` (``{"status", "headers", "body"}``,
bodies in Stripe's documented PaymentIntent / Refund / Error / Event shapes), served by
an ``httpx.MockTransport`` that first asserts the request the plugin sent: method, URL,
form fields, ``Authorization`` and ``Idempotency-Key``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from kernel.errors import ConfigError, GatewayError, ValidationError
from kernel.money import Money
from kernel.payments import PaymentOperation, PaymentRequest, WebhookRejected
from kernel.testing import check_plugin_conformance
from plugins.payments.stripe import Stripe, from_stripe_amount, sign, to_stripe_amount

RECORDINGS = Path(__file__).parent / "recordings" / "stripe"
KEY = "sk_test_51NiagaSecretKey0123456789abcdefWxyz"
WEBHOOK_SECRET = "whsec_NiagaSigningSecret0123456789"
INTENT = "pi_3PzNiagaTest0001"


def recording(name: str) -> dict:
    return json.loads((RECORDINGS / f"{name}.json").read_text())


class Gateway:
    """Plays Stripe: serves recordings in order, asserting each request first."""

    def __init__(self) -> None:
        self.script: list[tuple] = []
        self.seen: list[tuple[httpx.Request, dict[str, str]]] = []

    def expect(self, method: str, path: str, answer, *, form: dict[str, str] | None = None,
               key: str | None = None) -> None:
        self.script.append((method, path, answer, form, key))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert self.script, f"unexpected request {request.method} {request.url}"
        method, path, answer, form, key = self.script.pop(0)
        sent = dict(parse_qsl(request.content.decode(), keep_blank_values=True))
        assert (request.method, request.url.scheme, request.url.host, request.url.path) == (
            method, "https", "api.stripe.com", path)
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        assert request.headers["Authorization"].startswith("Bearer sk_test_")
        if form is not None:
            assert sent == form
        if key is not None:
            assert request.headers["Idempotency-Key"] == key
        self.seen.append((request, sent))
        if isinstance(answer, type) and issubclass(answer, Exception):
            raise answer("simulated", request=request)
        rec = recording(answer)
        return httpx.Response(rec["status"], json=rec["body"], headers=rec["headers"])


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert KEY not in text and WEBHOOK_SECRET not in text


@pytest.fixture
def gateway():
    return Gateway()


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)


def make(build, gateway, code="DE", currency="EUR", **settings) -> Stripe:
    market = build.market(code, currency, plugins={"stripe": settings})
    plugin = build.plugin(Stripe, market)
    plugin.transport = httpx.MockTransport(gateway)
    return plugin


@pytest.fixture
def stripe(build, gateway, env):
    plugin = make(build, gateway)
    yield plugin
    assert gateway.script == [], "an expected Stripe call was not made"


def request(*, key: str = "cart-1:idem-1", capture: bool = True, amount: Money | None = None,
            payment_method: object = "pm_card_visa", market: str = "DE",
            order_id: str = "ord-1", number: str = "DE-1001") -> PaymentRequest:
    return PaymentRequest(
        order_id=order_id, order_number=number, market=market,
        amount=amount or Money(4990, "EUR"),
        data={} if payment_method is None else {"payment_method": payment_method},
        idempotency_key=key, capture=capture,
    )


def operation(key: str, amount: int = 4990, reference: str | None = INTENT) -> PaymentOperation:
    return PaymentOperation(order_id="ord-1", reference=reference, amount=Money(amount, "EUR"),
                            idempotency_key=key)


def create_form(**over: str) -> dict[str, str]:
    form = {
        "amount": "4990", "currency": "eur", "payment_method": "pm_card_visa",
        "payment_method_types[]": "card", "confirm": "true", "capture_method": "automatic",
        "metadata[order_id]": "ord-1", "metadata[order_number]": "DE-1001",
        "metadata[market]": "DE",
    }
    form.update(over)
    return form


# -- the plugin itself ------------------------------------------------------------------


def test_conformance():
    assert check_plugin_conformance(Stripe) == []


def test_offers_one_card_method(build, stripe):
    market = stripe.market
    cart = build.cart(market, [("TEE", 1, "10.00", "standard")])
    [method] = stripe.niaga_payment_methods(cart, market)
    assert (method.id, method.gateway, method.kind, method.label) == (
        "stripe", "stripe", "card", "Card")


def test_other_gateways_are_not_answered(stripe):
    assert stripe.niaga_payment_authorize("testpay", request()) is None
    assert stripe.niaga_payment_capture("testpay", operation("k")) is None
    assert stripe.niaga_payment_void("testpay", operation("k")) is None
    assert stripe.niaga_payment_refund("testpay", operation("k")) is None
    assert stripe.niaga_webhook_parse("testpay", {}, b"{}") is None


# -- authorize --------------------------------------------------------------------------


def test_succeeded_is_captured_and_sends_the_documented_form(stripe, gateway, caplog):
    gateway.expect("POST", "/v1/payment_intents", "payment_intent_succeeded",
                   form=create_form(), key="cart-1:idem-1")
    result = stripe.niaga_payment_authorize("stripe", request())
    assert (result.status, result.reference) == ("captured", INTENT)
    assert result.amount == Money(4990, "EUR")  # EUR cents sent and read as minor units
    [(sent, _)] = gateway.seen
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    # the calls are logged (so the no-secret-in-logs check has something to look at)
    assert any("/v1/payment_intents" in r.getMessage() for r in caplog.records)


def test_requires_capture_is_authorized_then_captured(stripe, gateway):
    gateway.expect("POST", "/v1/payment_intents", "payment_intent_requires_capture",
                   form=create_form(capture_method="manual"), key="cart-1:idem-2")
    result = stripe.niaga_payment_authorize("stripe", request(key="cart-1:idem-2",
                                                              capture=False))
    assert (result.status, result.reference, result.amount) == (
        "authorized", INTENT, Money(4990, "EUR"))

    gateway.expect("POST", f"/v1/payment_intents/{INTENT}/capture", "payment_intent_captured",
                   form={"amount_to_capture": "4990"}, key="ord-1:cap-1")
    captured = stripe.niaga_payment_capture("stripe", operation("ord-1:cap-1"))
    assert captured.ok and captured.amount == Money(4990, "EUR") and captured.reference == INTENT


def test_a_partial_capture_reports_the_amount_received(stripe, gateway):
    gateway.expect("POST", f"/v1/payment_intents/{INTENT}/capture",
                   "payment_intent_partially_captured",
                   form={"amount_to_capture": "3000"}, key="ord-1:cap-2")
    captured = stripe.niaga_payment_capture("stripe", operation("ord-1:cap-2", amount=3000))
    assert captured.ok and captured.amount == Money(3000, "EUR")


def test_void_cancels_the_payment_intent(stripe, gateway):
    gateway.expect("POST", f"/v1/payment_intents/{INTENT}/cancel", "payment_intent_canceled",
                   form={}, key="cart-1:idem-2:undo")
    result = stripe.niaga_payment_void("stripe", operation("cart-1:idem-2:undo"))
    assert result.ok and result.reference == INTENT and result.amount == Money(4990, "EUR")


@pytest.mark.parametrize(("answer", "amount", "refund_id"), [
    ("refund_full", 4990, "re_3PzNiagaRefund01"),
    ("refund_partial", 1000, "re_3PzNiagaRefund02"),
])
def test_refunds_full_and_partial(stripe, gateway, answer, amount, refund_id):
    gateway.expect("POST", "/v1/refunds", answer,
                   form={"payment_intent": INTENT, "amount": str(amount)}, key="ord-1:ret-1")
    result = stripe.niaga_payment_refund("stripe", operation("ord-1:ret-1", amount=amount))
    assert result.ok
    assert (result.amount, result.reference) == (Money(amount, "EUR"), refund_id)


def test_a_card_decline_is_a_declined_result(stripe, gateway):
    gateway.expect("POST", "/v1/payment_intents", "error_card_declined", form=create_form())
    result = stripe.niaga_payment_authorize("stripe", request())
    assert result.status == "declined"
    assert result.message == "Your card was declined."
    assert result.reference == INTENT
    assert result.amount == Money(4990, "EUR")


def test_a_server_error_is_a_gateway_error_naming_stripe(stripe, gateway):
    gateway.expect("POST", "/v1/payment_intents", "error_api_500")
    with pytest.raises(GatewayError) as err:
        stripe.niaga_payment_authorize("stripe", request())
    text = str(err.value)
    assert text.startswith("stripe: authorize failed")
    assert "HTTP 500" in text and "req_Aa11error" in text
    assert KEY not in text and err.value.status == 502


@pytest.mark.parametrize(("failure", "needle"), [
    (httpx.ReadTimeout, "timed out after 10s"),
    (httpx.ConnectError, "network error"),
])
def test_timeouts_and_network_errors_are_gateway_errors(stripe, gateway, failure, needle):
    gateway.expect("POST", "/v1/payment_intents", failure)
    with pytest.raises(GatewayError, match=needle) as err:
        stripe.niaga_payment_authorize("stripe", request())
    assert str(err.value).startswith("stripe: ")
    assert KEY not in str(err.value) and KEY not in repr(err.value)


def test_a_bad_key_never_echoes_even_the_masked_key(stripe, gateway):
    gateway.expect("POST", "/v1/payment_intents", "error_authentication")
    with pytest.raises(GatewayError, match="authentication failed; check the api_key") as err:
        stripe.niaga_payment_authorize("stripe", request())
    assert "sk_test" not in str(err.value)


def test_a_reused_idempotency_key_with_other_parameters_says_so(stripe, gateway):
    gateway.expect("POST", "/v1/payment_intents", "error_idempotency")
    with pytest.raises(GatewayError, match="Idempotency-Key was used before"):
        stripe.niaga_payment_authorize("stripe", request())


def test_stripe_refusing_an_operation_is_not_ok(stripe, gateway):
    gateway.expect("POST", f"/v1/payment_intents/{INTENT}/capture", "error_unexpected_state")
    result = stripe.niaga_payment_capture("stripe", operation("ord-1:cap-9"))
    assert not result.ok
    assert "could not be captured because it has a status of canceled" in result.message


def test_operations_without_a_payment_intent_id_are_refused_locally(stripe, gateway):
    for hook in (stripe.niaga_payment_capture, stripe.niaga_payment_void,
                 stripe.niaga_payment_refund):
        result = hook("stripe", operation("k", reference="../v1/customers"))
        assert not result.ok and "no PaymentIntent id" in result.message
    assert gateway.seen == []


def test_the_idempotency_key_is_passed_through_on_every_retry(stripe, gateway):
    for _ in range(2):
        gateway.expect("POST", "/v1/payment_intents", "payment_intent_succeeded",
                       key="cart-1:Idem Key/7")
    first = stripe.niaga_payment_authorize("stripe", request(key="cart-1:Idem Key/7"))
    again = stripe.niaga_payment_authorize("stripe", request(key="cart-1:Idem Key/7"))
    assert first == again


def test_a_key_stripe_cannot_take_is_replaced_by_a_stable_digest(stripe, gateway):
    long_key = "cart-1:" + "k" * 300
    for _ in range(2):
        gateway.expect("POST", "/v1/payment_intents", "payment_intent_succeeded")
    stripe.niaga_payment_authorize("stripe", request(key=long_key))
    stripe.niaga_payment_authorize("stripe", request(key=long_key))
    sent = [r.headers["Idempotency-Key"] for r, _ in gateway.seen]
    assert sent[0] == sent[1] and sent[0].startswith("niaga-") and len(sent[0]) <= 255


def test_jpy_is_zero_decimal_and_sent_as_is(build, gateway, env):
    plugin = make(build, gateway, code="JP", currency="JPY")
    gateway.expect("POST", "/v1/payment_intents", "payment_intent_jpy_succeeded", form=create_form(
        amount="1500", currency="jpy", **{"metadata[order_id]": "ord-jp",
                                         "metadata[order_number]": "JP-1001",
                                         "metadata[market]": "JP"}))
    result = plugin.niaga_payment_authorize("stripe", request(
        amount=Money(1500, "JPY"), market="JP", order_id="ord-jp", number="JP-1001"))
    assert result.status == "captured" and result.amount == Money(1500, "JPY")


@pytest.mark.parametrize(("money", "sent"), [
    (Money(4990, "EUR"), 4990),
    (Money(1500, "JPY"), 1500),              # zero-decimal
    (Money(15_000_000, "IDR"), 15_000_000),  # IDR is two-decimal on Stripe, as in ISO 4217
    (Money(5, "ISK"), 500),                  # special case: whole krónur "with two decimals"
    (Money(5, "UGX"), 500),                  # special case, likewise
    (Money(5120, "KWD"), 5120),              # three-decimal, last digit 0
])
def test_amounts_convert_exactly_both_ways(money, sent):
    assert to_stripe_amount(money) == sent
    assert from_stripe_amount(sent, money.currency.lower()) == money


@pytest.mark.parametrize("money", [Money(5124, "KWD"), Money(0, "EUR"), Money(-100, "EUR")])
def test_amounts_stripe_cannot_take_exactly_are_refused(money):
    with pytest.raises(GatewayError, match=r"^stripe: "):
        to_stripe_amount(money)


def test_requires_action_with_a_return_url_is_pending_with_the_redirect(build, gateway, env):
    plugin = make(build, gateway, return_url="https://shop.example/checkout/return")
    gateway.expect("POST", "/v1/payment_intents", "payment_intent_requires_action_redirect",
                   form=create_form(return_url="https://shop.example/checkout/return"))
    result = plugin.niaga_payment_authorize("stripe", request())
    assert result.status == "pending" and result.reference == INTENT
    assert result.instructions["next_action"] == "redirect_to_url"
    assert result.instructions["redirect_url"].startswith("https://hooks.stripe.com/3d_secure_2/")
    assert "redirect_url" in result.message


def test_requires_action_for_stripe_js_never_exposes_the_client_secret(stripe, gateway):
    gateway.expect("POST", "/v1/payment_intents", "payment_intent_requires_action_sdk")
    result = stripe.niaga_payment_authorize("stripe", request())
    assert result.status == "pending"
    assert result.instructions == {"payment_intent": INTENT, "next_action": "use_stripe_sdk"}
    assert "Stripe.js" in result.message
    secret = recording("payment_intent_requires_action_sdk")["body"]["client_secret"]
    assert secret not in repr(result)


@pytest.mark.parametrize("payment_method", [None, "", 42, "pm card"])
def test_a_missing_payment_method_names_the_field_and_calls_nobody(stripe, gateway,
                                                                   payment_method):
    with pytest.raises(ValidationError) as err:
        stripe.niaga_payment_authorize("stripe", request(payment_method=payment_method))
    assert err.value.errors[0]["field"] == "payment.payment_method"
    assert gateway.seen == []


# -- settings -----------------------------------------------------------------------------


def test_a_missing_key_fails_at_load_naming_the_setting(build, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    market = build.market("DE", "EUR", plugins={"stripe": {}})
    with pytest.raises(ConfigError) as err:
        build.plugin(Stripe, market)
    assert str(err.value).startswith("markets.DE.plugins.stripe: api_key")
    assert "STRIPE_API_KEY" in str(err.value)


@pytest.mark.parametrize(("settings", "needle"), [
    ({"api_key": "pk_test_51Niaga"}, "api_key: expected a secret"),
    ({"api_key": KEY, "apikey": "x"}, "apikey"),
    ({"api_key": KEY, "timeout_seconds": 0}, "timeout_seconds"),
    ({"api_key": KEY, "tolerance_seconds": -1}, "tolerance_seconds"),
    ({"api_key": KEY, "api_base": "api.stripe.com"}, "api_base"),
])
def test_bad_settings_fail_at_load(build, monkeypatch, settings, needle):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    market = build.market("DE", "EUR", plugins={"stripe": settings})
    with pytest.raises(ConfigError) as err:
        build.plugin(Stripe, market)
    assert needle in str(err.value)
    assert KEY not in str(err.value) and "pk_test_51Niaga" not in str(err.value)


def test_the_key_can_come_from_a_named_variable_and_never_shows_in_reprs(build, gateway,
                                                                         monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    monkeypatch.setenv("SHOP_STRIPE_KEY", KEY)
    plugin = make(build, gateway, api_key_env="SHOP_STRIPE_KEY",
                  webhook_secret=WEBHOOK_SECRET)
    gateway.expect("POST", "/v1/payment_intents", "payment_intent_succeeded")
    assert plugin.niaga_payment_authorize("stripe", request()).status == "captured"
    inline = make(build, gateway, api_key=KEY, webhook_secret=WEBHOOK_SECRET)
    for shown in (repr(plugin), str(plugin), repr(inline), repr(inline.config),
                  str(inline.config)):
        assert KEY not in shown and WEBHOOK_SECRET not in shown


# -- webhooks -----------------------------------------------------------------------------


def event(name: str) -> bytes:
    return json.dumps(recording(name)).encode()


def signed(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> dict:
    return {"stripe-signature": sign(body, secret, timestamp)}


def test_payment_intent_succeeded_is_payment_captured(stripe):
    body = event("event_payment_intent_succeeded")
    parsed = stripe.niaga_webhook_parse("stripe", signed(body), body)
    assert (parsed.id, parsed.kind, parsed.order_id, parsed.reference) == (
        "evt_3PzNiagaEvt0001", "payment.captured", "ord-1", INTENT)
    assert parsed.amount == Money(4990, "EUR")


def test_payment_failed_and_refunded_events(stripe):
    body = event("event_payment_intent_payment_failed")
    failed = stripe.niaga_webhook_parse("stripe", signed(body), body)
    assert (failed.kind, failed.order_id, failed.reference) == ("payment.failed", "ord-1", INTENT)
    assert failed.detail["message"] == "Your card was declined."
    body = event("event_charge_refunded")
    refunded = stripe.niaga_webhook_parse("stripe", signed(body), body)
    assert (refunded.kind, refunded.order_id, refunded.reference) == (
        "payment.refunded", "ord-1", INTENT)
    assert refunded.amount == Money(1000, "EUR")  # the charge's amount_refunded


def test_a_replay_gives_the_same_event_id(stripe):
    body = event("event_payment_intent_succeeded")
    headers = {"Stripe-Signature": sign(body, WEBHOOK_SECRET)}
    assert stripe.niaga_webhook_parse("stripe", headers, body) == stripe.niaga_webhook_parse(
        "stripe", headers, body)


def test_any_matching_v1_signature_verifies(stripe):
    """During a secret roll Stripe signs with the old and the new secret."""
    body = event("event_payment_intent_succeeded")
    now = int(time.time())
    old = sign(body, "whsec_old", now).partition(",v1=")[2]
    header = f"t={now},v1={old},{sign(body, WEBHOOK_SECRET, now).split(',')[1]},v0=ignored"
    assert stripe.niaga_webhook_parse("stripe", {"Stripe-Signature": header}, body).kind == (
        "payment.captured")


@pytest.mark.parametrize(("make_headers", "reason"), [
    (lambda body: {}, "missing"),
    (lambda body: {"Stripe-Signature": "v1=abc"}, "malformed"),
    (lambda body: {"Stripe-Signature": "t=soon,v1=abc"}, "malformed"),
    (lambda body: signed(body, "whsec_wrong"), "signature"),
    (lambda body: signed(body + b" "), "signature"),
    (lambda body: {"Stripe-Signature": sign(body, WEBHOOK_SECRET).replace("v1=", "v1=é")},
     "signature"),
    (lambda body: signed(body, timestamp=int(time.time()) - 301), "tolerance"),
    (lambda body: signed(body, timestamp=int(time.time()) + 301), "tolerance"),
])
def test_webhooks_that_do_not_verify_are_rejected(stripe, make_headers, reason):
    body = event("event_payment_intent_succeeded")
    with pytest.raises(WebhookRejected, match=reason) as err:
        stripe.niaga_webhook_parse("stripe", make_headers(body), body)
    assert str(err.value).startswith("stripe: ")


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"id": "evt_1", "type": "x"}',
                                  b'{"id": 1, "type": "x", "data": {"object": {}}}'])
def test_signed_but_malformed_bodies_are_rejected(stripe, body):
    with pytest.raises(WebhookRejected, match="bad webhook body"):
        stripe.niaga_webhook_parse("stripe", signed(body), body)


def test_without_a_signing_secret_every_webhook_is_rejected(build, gateway, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    plugin = make(build, gateway)
    body = event("event_payment_intent_succeeded")
    with pytest.raises(WebhookRejected, match="no webhook signing secret"):
        plugin.niaga_webhook_parse("stripe", signed(body), body)


def test_verified_events_of_other_types_change_nothing(stripe):
    body = event("event_customer_created")
    # acknowledged as "ignored": a 2xx for Stripe, no change for the kernel
    parsed = stripe.niaga_webhook_parse("stripe", signed(body), body)
    assert (parsed.id, parsed.kind, parsed.order_id) == ("evt_3PzNiagaEvt0004", "ignored", None)
    assert parsed.detail["type"] == "customer.created"
