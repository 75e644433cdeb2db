"""Fault: the gateway times out after it authorized. The kernel asks again with the same
idempotency key (a gateway answers a repeat with the first outcome), voids what it holds,
releases the stock and places nothing: a 502, on SQLite, PostgreSQL and DynamoDB."""

from __future__ import annotations

from plugins.payments.testpay import TestPay
from tests.api.helpers import assert_problem, availability, checkout, minor, ready_cart


def test_an_authorization_whose_answer_timed_out_is_voided_and_nothing_is_held(client):
    skus = {"BATIK-SHIRT-M": 2, "COBEK-STONE": 1}
    cart = ready_cart(client, "ID", skus)
    before = {sku: availability(client, sku, "ID")["available"] for sku in skus}

    r = checkout(client, cart["id"], token="tok_timeout_after_auth", key="k-timeout")
    assert_problem(r, 502)

    [auth] = TestPay.calls_of("authorize")  # authorized once, never twice
    assert auth[2] == minor(cart["total"])
    # undone once, for the whole amount: voided (or refunded where the market captures)
    undone = TestPay.calls_of("void") + TestPay.calls_of("refund")
    assert [(u[1], u[2]) for u in undone] == [(auth[1], auth[2])], "the payment was undone"
    assert TestPay.calls_of("capture") == []
    assert {sku: availability(client, sku, "ID")["available"] for sku in skus} == before
    assert client.get(f"/carts/{cart['id']}").json()["status"] == "open"

    # the same key keeps its answer and charges nothing more; a new attempt goes through
    again = checkout(client, cart["id"], token="tok_timeout_after_auth", key="k-timeout")
    assert_problem(again, 502)
    assert len(TestPay.calls_of("authorize")) == 1
    ok = checkout(client, cart["id"], token="tok_ok", key="k-second")
    assert ok.status_code == 201, ok.text
    assert {sku: availability(client, sku, "ID")["available"] for sku in skus} == {
        sku: before[sku] - q for sku, q in skus.items()}
    assert len(TestPay.calls_of("void") + TestPay.calls_of("refund")) == 1
