"""Gateway webhooks: verified once, applied once; a bad signature changes nothing."""

from __future__ import annotations

import json
import time
import uuid

from plugins.payments.testpay import TestPay

from .helpers import assert_order, assert_problem, availability, minor, place_order


def _event(order_id: str, type_: str = "payment.captured", event_id: str | None = None,
           **extra) -> bytes:
    body = {"id": event_id or f"evt_{uuid.uuid4().hex}", "type": type_, "order_id": order_id,
            **extra}
    return json.dumps(body).encode()


def _post(client, body: bytes, signature: str | None = None, plugin: str = "testpay"):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Testpay-Signature"] = signature
    return client.post(f"/webhooks/{plugin}", content=body, headers=headers)


def test_a_signed_capture_pays_a_pending_order_once(client):
    order = place_order(client, "ID", {"SARONG-TENUN": 1}, token="tok_pending")
    assert order["status"] == "pending_payment"
    body = _event(order["id"], event_id="evt_1", amount=order["total"]["amount"])
    r = _post(client, body, TestPay.sign(body))
    assert 200 <= r.status_code < 300, r.text
    # the card confirmed later: the pending testpay order becomes paid
    paid = assert_order(client.get(f"/orders/{order['id']}").json())
    assert paid["status"] == "paid"
    assert minor(paid["payment"]["captured"]) == minor(order["total"])
    assert len(paid["history"]) == len(order["history"]) + 1

    # a replay of the same event id (even re-signed later) changes nothing
    r = _post(client, body, TestPay.sign(body))
    assert 200 <= r.status_code < 300, r.text
    assert client.get(f"/orders/{order['id']}").json() == paid


def test_a_gateway_speaks_only_for_its_own_payments(client):
    order = place_order(client, "ID", {"SARONG-TENUN": 1}, method="bank-transfer")
    body = _event(order["id"], amount=order["total"]["amount"])
    r = _post(client, body, TestPay.sign(body))
    assert r.status_code == 200 and r.json()["applied"] is False, r.text
    assert client.get(f"/orders/{order['id']}").json() == order


def test_a_capture_for_another_amount_never_marks_the_order_paid(client):
    order = place_order(client, "ID", {"SARONG-TENUN": 1}, token="tok_pending")
    body = _event(order["id"], amount="1.00")
    r = _post(client, body, TestPay.sign(body))
    assert r.status_code == 200, r.text
    after = client.get(f"/orders/{order['id']}").json()
    assert after["status"] == "pending_payment"
    assert after["history"][-1]["event"] == "webhook:amount_mismatch"


def test_bad_signatures_are_400_and_change_nothing(client):
    order = place_order(client, "ID", {"SARONG-TENUN": 1}, token="tok_pending")
    before = client.get(f"/orders/{order['id']}").json()
    stock = availability(client, "SARONG-TENUN", "ID")
    body = _event(order["id"])
    now = int(time.time())
    for signature in (
        None,  # missing
        "garbage",
        TestPay.sign(body, secret="whsec_wrong"),
        TestPay.sign(body + b" "),  # signed another body
        TestPay.sign(body, timestamp=now - 3600),  # too old: a replay
        f"t={now},v1=" + "0" * 64,
    ):
        r = _post(client, body, signature)
        assert_problem(r, 400)
        assert client.get(f"/orders/{order['id']}").json() == before
    # a body that is signed but not a testpay event
    junk = b'{"hello": "world"}'
    assert_problem(_post(client, junk, TestPay.sign(junk)), 400)
    assert client.get(f"/orders/{order['id']}").json() == before
    assert availability(client, "SARONG-TENUN", "ID") == stock
    # the rejected event id was not burnt: the genuine event still applies
    r = _post(client, body, TestPay.sign(body))
    assert 200 <= r.status_code < 300, r.text
    assert client.get(f"/orders/{order['id']}").json()["status"] == "paid"


def test_a_failed_payment_cancels_the_pending_order_and_releases_stock(client):
    before = availability(client, "COBEK-STONE", "ID")
    order = place_order(client, "ID", {"COBEK-STONE": 2}, token="tok_pending")
    body = _event(order["id"], "payment.failed")
    r = _post(client, body, TestPay.sign(body))
    assert 200 <= r.status_code < 300, r.text
    got = assert_order(client.get(f"/orders/{order['id']}").json())
    assert got["status"] == "cancelled"
    assert availability(client, "COBEK-STONE", "ID") == before


def test_a_capture_for_a_paid_order_changes_no_money(client):
    order = place_order(client, "ID", {"TEA-JAVA-BLACK": 1})
    body = _event(order["id"], amount="1.00")
    r = _post(client, body, TestPay.sign(body))
    assert 200 <= r.status_code < 300, r.text
    got = client.get(f"/orders/{order['id']}").json()
    assert got["status"] == "paid"
    assert got["payment"] == order["payment"]


def test_unknown_plugin_is_404(client):
    body = _event("whatever")
    assert_problem(_post(client, body, TestPay.sign(body), plugin="no-such-gateway"), 404)


def test_a_banks_signed_notice_pays_a_bank_transfer_order_once(client, monkeypatch):
    from plugins.payments._signed import sign

    monkeypatch.setenv("NIAGA_BANK_TRANSFER_WEBHOOK_SECRET", "bank-secret")
    order = place_order(client, "ID", {"SARONG-TENUN": 1}, method="bank-transfer")
    assert order["status"] == "pending_payment"
    body = json.dumps({"id": "bca-credit-7781", "type": "payment.captured",
                       "order_id": order["id"], "amount": order["total"]["amount"]}).encode()
    headers = {"Content-Type": "application/json", "Niaga-Signature": sign(body, "bank-secret")}
    forged = {**headers, "Niaga-Signature": sign(body, "not-the-secret")}
    assert client.post("/webhooks/bank-transfer", content=body, headers=forged
                       ).status_code == 400
    assert client.get(f"/orders/{order['id']}").json()["status"] == "pending_payment"
    r = client.post("/webhooks/bank-transfer", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["applied"] is True, r.text
    paid = client.get(f"/orders/{order['id']}").json()
    assert paid["status"] == "paid" and minor(paid["payment"]["captured"]) == minor(
        order["total"])
    again = client.post("/webhooks/bank-transfer", content=body, headers=headers)
    assert again.status_code == 200 and again.json()["applied"] is False
    assert client.get(f"/orders/{order['id']}").json() == paid
