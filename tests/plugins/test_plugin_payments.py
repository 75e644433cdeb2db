"""The ``testpay`` and ``bank-transfer`` payment plugins."""

from __future__ import annotations

import json
import threading
import time

import pytest

from kernel.errors import ConfigError, GatewayError, ValidationError
from kernel.money import Money
from kernel.payments import PaymentOperation, PaymentRequest, WebhookRejected
from plugins.payments.bank_transfer import BankTransfer
from plugins.payments.testpay import TestPay, derived_id


@pytest.fixture(autouse=True)
def fresh_gateway():
    TestPay.reset()
    yield
    TestPay.reset()


@pytest.fixture
def de(build):
    return build.market("DE", "EUR", plugins={
        "testpay": {},
        "bank-transfer": {"bank": "Demo Bank AG", "account_name": "Niaga Demo GmbH",
                          "account_number": "123456", "iban": "DE00 1234", "bic": "DEMODEFF"},
    })


@pytest.fixture
def testpay(build, de):
    return build.plugin(TestPay, de)


def request(token: str | None, key: str = "idem-1", *, capture: bool = True,
            amount: int = 4990) -> PaymentRequest:
    return PaymentRequest(
        order_id="ord-1", order_number="DE-1001", market="DE",
        amount=Money(amount, "EUR"), data={} if token is None else {"token": token},
        idempotency_key=key, capture=capture,
    )


def operation(key: str, amount: int = 4990, reference: str | None = "tp_ref") -> PaymentOperation:
    return PaymentOperation(order_id="ord-1", reference=reference, amount=Money(amount, "EUR"),
                            idempotency_key=key)


# -- testpay: authorize ---------------------------------------------------------


def test_testpay_offers_a_card_method(build, de, testpay):
    cart = build.cart(de, [("TEE", 1, "10.00", "standard")])
    [method] = testpay.niaga_payment_methods(cart, de)
    assert (method.id, method.gateway, method.kind, method.label) == (
        "testpay", "testpay", "card", "Test card")


def test_tok_ok_captures_with_a_reference_derived_from_the_key(testpay):
    result = testpay.niaga_payment_authorize("testpay", request("tok_ok"))
    assert result.status == "captured"
    assert result.amount == Money(4990, "EUR")
    assert result.reference == derived_id("tp_", "idem-1")
    assert result.reference.startswith("tp_") and len(result.reference) == 3 + 24
    assert TestPay.calls == [("authorize", result.reference, 4990, "idem-1")]


@pytest.mark.parametrize("token", ["tok_ok", "tok_timeout_after_auth"])
def test_authorize_only_when_the_kernel_does_not_capture(testpay, token):
    if token == "tok_timeout_after_auth":  # the first answer is lost; a repeat gets it
        with pytest.raises(TimeoutError):
            testpay.niaga_payment_authorize("testpay", request(token, capture=False))
    result = testpay.niaga_payment_authorize("testpay", request(token, capture=False))
    assert result.status == "authorized"
    assert len(TestPay.calls_of("authorize")) == 1


def test_tok_decline_is_a_declined_result(testpay):
    result = testpay.niaga_payment_authorize("testpay", request("tok_decline"))
    assert result.status == "declined"
    assert result.message == "card declined"


def test_tok_fail_raises_a_gateway_error_and_records_nothing(testpay):
    with pytest.raises(GatewayError, match="testpay: gateway unavailable"):
        testpay.niaga_payment_authorize("testpay", request("tok_fail"))
    assert TestPay.calls == []


@pytest.mark.parametrize("token", [None, "tok_nope", 42])
def test_a_missing_or_unknown_token_names_the_field(testpay, token):
    with pytest.raises(ValidationError) as err:
        testpay.niaga_payment_authorize("testpay", request(token))
    assert err.value.errors[0]["field"] == "payment.token"


def test_other_gateways_are_not_answered(testpay):
    assert testpay.niaga_payment_authorize("stripe", request("tok_ok")) is None
    assert testpay.niaga_payment_void("stripe", operation("k")) is None
    assert testpay.niaga_webhook_parse("stripe", {}, b"{}") is None


def test_a_retried_key_gets_the_first_answer_and_is_recorded_once(testpay):
    first = testpay.niaga_payment_authorize("testpay", request("tok_ok", "idem-7"))
    again = testpay.niaga_payment_authorize("testpay", request("tok_ok", "idem-7"))
    other = testpay.niaga_payment_authorize("testpay", request("tok_ok", "idem-8"))
    assert again == first
    assert other.reference != first.reference
    assert [c[3] for c in TestPay.calls_of("authorize")] == ["idem-7", "idem-8"]


def test_concurrent_retries_charge_once(testpay):
    results = []

    def pay():
        results.append(testpay.niaga_payment_authorize("testpay", request("tok_ok", "same")))

    threads = [threading.Thread(target=pay) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.reference for r in results}) == 1
    assert len(TestPay.calls_of("authorize")) == 1


# -- testpay: capture, void, refund --------------------------------------------------


def test_capture_void_and_refund_are_logged_once_per_key(testpay):
    capture = testpay.niaga_payment_capture("testpay", operation("cap-1"))
    void = testpay.niaga_payment_void("testpay", operation("void-1"))
    refund = testpay.niaga_payment_refund("testpay", operation("ref-1", amount=1000))
    testpay.niaga_payment_void("testpay", operation("void-1"))  # a retry
    assert capture.ok and void.ok and refund.ok
    assert refund.amount == Money(1000, "EUR")
    assert refund.reference == derived_id("tpr_", "ref-1")
    assert TestPay.calls == [
        ("capture", "tp_ref", 4990, "cap-1"),
        ("void", "tp_ref", 4990, "void-1"),
        ("refund", "tp_ref", 1000, "ref-1"),
    ]
    assert TestPay.calls_of("void") == [("void", "tp_ref", 4990, "void-1")]


def test_a_key_is_scoped_to_its_operation(testpay):
    """The same key on an authorize and then a void must still void."""
    auth = testpay.niaga_payment_authorize("testpay", request("tok_ok", "checkout-1"))
    void = testpay.niaga_payment_void("testpay", operation("checkout-1", reference=auth.reference))
    assert void.ok
    assert [c[0] for c in TestPay.calls] == ["authorize", "void"]


# -- testpay: webhooks --------------------------------------------------------------


def event_body(**fields) -> bytes:
    payload = {"id": "evt_1", "type": "payment.captured", "order_id": "ord-1", **fields}
    return json.dumps(payload).encode()


def test_a_signed_webhook_parses(testpay):
    body = event_body(amount="49.90", reference="tp_abc")
    event = testpay.niaga_webhook_parse("testpay", {"Testpay-Signature": TestPay.sign(body)}, body)
    assert (event.id, event.kind, event.order_id, event.reference) == (
        "evt_1", "payment.captured", "ord-1", "tp_abc")
    assert event.amount == Money(4990, "EUR")


def test_header_names_are_case_insensitive_and_a_replay_gives_the_same_event(testpay):
    body = event_body(type="payment.refunded")
    headers = {"testpay-signature": TestPay.sign(body)}
    first = testpay.niaga_webhook_parse("testpay", headers, body)
    replay = testpay.niaga_webhook_parse("testpay", headers, body)
    assert replay == first
    assert replay.id == "evt_1"  # the kernel de-duplicates on this id
    assert replay.kind == "payment.refunded"


@pytest.mark.parametrize(
    ("make_headers", "reason"),
    [
        (lambda body: {}, "missing"),
        (lambda body: {"Testpay-Signature": "v1=abc"}, "malformed"),
        (lambda body: {"Testpay-Signature": "t=soon,v1=abc"}, "malformed"),
        (lambda body: {"Testpay-Signature": TestPay.sign(body, "whsec_wrong")}, "signature"),
        (lambda body: {"Testpay-Signature": TestPay.sign(body + b" ")}, "signature"),
        (lambda body: {"Testpay-Signature": TestPay.sign(body).replace("v1=", "v1=é")},
         "signature"),
        (lambda body: {"Testpay-Signature": TestPay.sign(body, timestamp=int(time.time()) - 301)},
         "tolerance"),
        (lambda body: {"Testpay-Signature": TestPay.sign(body, timestamp=int(time.time()) + 301)},
         "tolerance"),
    ],
)
def test_webhooks_that_do_not_verify_are_rejected(testpay, make_headers, reason):
    body = event_body()
    with pytest.raises(WebhookRejected, match=reason):
        testpay.niaga_webhook_parse("testpay", make_headers(body), body)


@pytest.mark.parametrize(
    "body",
    [b"not json", event_body(type="payment.maybe"), b'{"type": "payment.failed"}',
     event_body(amount="49.999")],
)
def test_signed_but_malformed_bodies_are_rejected(testpay, body):
    with pytest.raises(WebhookRejected, match="bad webhook"):
        testpay.niaga_webhook_parse("testpay", {"Testpay-Signature": TestPay.sign(body)}, body)


def test_the_webhook_secret_and_tolerance_are_settings(build):
    market = build.market("DE", "EUR", plugins={
        "testpay": {"webhook_secret": "whsec_live_like", "tolerance_seconds": 30,
                    "label": "Karte (Test)"},
    })
    plugin = build.plugin(TestPay, market)
    body = event_body()
    ok = {"Testpay-Signature": TestPay.sign(body, "whsec_live_like")}
    assert plugin.niaga_webhook_parse("testpay", ok, body).id == "evt_1"
    stale = {"Testpay-Signature": TestPay.sign(body, "whsec_live_like", int(time.time()) - 60)}
    with pytest.raises(WebhookRejected, match="tolerance"):
        plugin.niaga_webhook_parse("testpay", stale, body)
    default = {"Testpay-Signature": TestPay.sign(body)}
    with pytest.raises(WebhookRejected, match="signature"):
        plugin.niaga_webhook_parse("testpay", default, body)


@pytest.mark.parametrize(
    ("settings", "needle"),
    [({"tolerance_seconds": 0}, "tolerance_seconds"), ({"webhook_secret": ""}, "webhook_secret"),
     ({"secret": "x"}, "secret")],
)
def test_testpay_bad_settings(build, settings, needle):
    market = build.market("DE", "EUR", plugins={"testpay": settings})
    with pytest.raises(ConfigError) as err:
        build.plugin(TestPay, market)
    assert str(err.value).startswith("markets.DE.plugins.testpay")
    assert needle in str(err.value)


# -- bank transfer ----------------------------------------------------------------------


def test_bank_transfer_is_pending_with_instructions(build):
    market = build.market("ID", "IDR", plugins={"bank-transfer": {
        "bank": "Bank Central Asia", "account_name": "PT Niaga Demo",
        "account_number": "0123456789"}})
    plugin = build.plugin(BankTransfer, market)
    req = PaymentRequest(order_id="ord-9", order_number="ID-1042", market="ID",
                         amount=Money(15_000_000, "IDR"), data={}, idempotency_key="k-9")
    result = plugin.niaga_payment_authorize("bank-transfer", req)
    assert result.status == "pending"
    assert result.amount == Money(15_000_000, "IDR")
    assert result.reference == derived_id("bt_", "k-9")
    assert result.instructions == {
        "bank": "Bank Central Asia",
        "account_name": "PT Niaga Demo",
        "account_number": "0123456789",
        "reference": "ID-1042",
        "amount": "150000.00 IDR",  # 15,000,000 minor units, IDR has 2 digits
    }
    again = plugin.niaga_payment_authorize("bank-transfer", req)
    assert again.reference == result.reference
    assert plugin.niaga_payment_authorize("testpay", req) is None


def test_bank_transfer_shows_iban_and_bic_and_its_method(build, de):
    plugin = build.plugin(BankTransfer, de)
    req = PaymentRequest(order_id="o", order_number="DE-7", market="DE",
                         amount=Money(1999, "EUR"), data={}, idempotency_key="k")
    result = plugin.niaga_payment_authorize("bank-transfer", req)
    assert result.instructions["iban"] == "DE00 1234"
    assert result.instructions["bic"] == "DEMODEFF"
    assert result.instructions["amount"] == "19.99 EUR"
    cart = build.cart(de, [("TEE", 1, "19.99", "standard")])
    [method] = plugin.niaga_payment_methods(cart, de)
    assert (method.id, method.kind, method.label) == (
        "bank-transfer", "bank_transfer", "Bank transfer")


def test_bank_transfer_operations_succeed_as_manual_steps(build, de):
    plugin = build.plugin(BankTransfer, de)
    op = operation("k", amount=1999, reference="bt_x")
    for hook in (plugin.niaga_payment_capture, plugin.niaga_payment_void,
                 plugin.niaga_payment_refund):
        result = hook("bank-transfer", op)
        assert result.ok and result.amount == Money(1999, "EUR") and result.reference == "bt_x"
        assert hook("testpay", op) is None
    assert "manually" in plugin.niaga_payment_refund("bank-transfer", op).message


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"bank": "B", "account_name": "N"}, "account_number"),
        ({"bank": "B", "account_name": "N", "account_number": " "}, "account_number"),
        ({"bank": "B", "account_name": "N", "account_number": "1", "swift": "X"}, "swift"),
    ],
)
def test_bank_transfer_bad_settings(build, settings, needle):
    market = build.market("DE", "EUR", plugins={"bank-transfer": settings})
    with pytest.raises(ConfigError) as err:
        build.plugin(BankTransfer, market)
    assert str(err.value).startswith("markets.DE.plugins.bank-transfer")
    assert needle in str(err.value)
