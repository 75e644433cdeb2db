"""Checkout: idempotency, payment outcomes, stock reservation, and what a cart needs first."""

from __future__ import annotations

import pytest

from plugins.payments.testpay import TestPay

from .helpers import (
    ADDRESSES,
    add_line,
    assert_order,
    assert_problem,
    availability,
    checkout,
    delivery_options,
    idem,
    markets_toml,
    minor,
    new_cart,
    ready_cart,
    set_address,
    set_delivery,
)

BODY = {"payment": {"method": "testpay", "token": "tok_ok"}}
TOTALS = ("subtotal", "discount_total", "shipping_total", "tax_total", "total")


def _sales_orders(client, admin_headers) -> int:
    r = client.get("/admin/reports/sales", headers=admin_headers)
    assert r.status_code == 200, r.text
    return sum(g["orders"] for g in r.json()["groups"])


def _avail(client, skus, market="ID") -> dict[str, dict]:
    return {sku: availability(client, sku, market) for sku in skus}


def test_checkout_requires_an_idempotency_key(client):
    cart = ready_cart(client, "ID", {"TEA-JAVA-BLACK": 1})
    r = client.post(f"/carts/{cart['id']}/checkout", json=BODY)
    assert_problem(r, (400, 422), "Idempotency-Key")
    assert client.get(f"/carts/{cart['id']}").json()["status"] == "open"
    assert TestPay.calls == []


def test_card_checkout_places_a_paid_order_and_replays_idempotently(client, admin_headers):
    cart = ready_cart(client, "ID", {"BATIK-SHIRT-M": 1, "TEA-JAVA-BLACK": 2})
    before = _avail(client, ["BATIK-SHIRT-M", "TEA-JAVA-BLACK"])
    headers = idem("checkout-1")
    r = client.post(f"/carts/{cart['id']}/checkout", json=BODY, headers=headers)
    assert r.status_code == 201, r.text
    order = assert_order(r.json())
    assert order["status"] == "paid"
    assert order["cart_id"] == cart["id"]
    assert order["market"] == "ID" and order["channel"] == "web" and order["currency"] == "IDR"
    assert len(order["id"]) >= 22 and order["number"]
    for key in TOTALS:
        assert order[key] == cart[key]
    assert [(li["sku"], li["quantity"]) for li in order["lines"]] == [
        (li["sku"], li["quantity"]) for li in cart["lines"]]
    pay = order["payment"]
    assert pay["method"] == "testpay"
    assert minor(pay["captured"]) == minor(order["total"])
    assert pay["captured"]["currency"] == "IDR"
    assert minor(pay["refunded"]) == 0
    assert [h["event"] for h in order["history"]][:1] == ["placed"]
    assert TestPay.calls_of("authorize") and TestPay.calls_of("authorize")[0][2] == minor(
        order["total"])

    # the stock is held for the order
    after = _avail(client, ["BATIK-SHIRT-M", "TEA-JAVA-BLACK"])
    for li in cart["lines"]:
        assert after[li["sku"]]["available"] == before[li["sku"]]["available"] - li["quantity"]

    # the cart is closed; the order reads back by id
    assert client.get(f"/carts/{cart['id']}").json()["status"] == "checked_out"
    got = client.get(f"/orders/{order['id']}")
    assert got.status_code == 200
    assert got.json() == order

    # replay: same key and body -> 200 and the same order, charged once
    r2 = client.post(f"/carts/{cart['id']}/checkout", json=BODY, headers=headers)
    assert r2.status_code == 200, r2.text
    assert r2.json()["id"] == order["id"]
    assert len(TestPay.calls_of("authorize")) == 1
    assert _avail(client, ["BATIK-SHIRT-M", "TEA-JAVA-BLACK"]) == after

    # same key, different body -> 422
    other = {"payment": {"method": "testpay", "token": "tok_decline"}}
    r3 = client.post(f"/carts/{cart['id']}/checkout", json=other, headers=headers)
    assert_problem(r3, 422, "Idempotency-Key")
    assert _sales_orders(client, admin_headers) == 1

    # a new key on a checked-out cart does not place a second order
    r4 = client.post(f"/carts/{cart['id']}/checkout", json=BODY, headers=idem())
    assert_problem(r4, 409)
    assert _sales_orders(client, admin_headers) == 1
    assert len(TestPay.calls_of("authorize")) == 1


@pytest.mark.parametrize("token,status", [("tok_decline", 402), ("tok_fail", 502)])
def test_a_failed_payment_places_nothing_and_releases_the_stock_at_once(
        client, admin_headers, token, status):
    skus = ["BATIK-SHIRT-M", "COBEK-STONE"]
    cart = ready_cart(client, "ID", {"BATIK-SHIRT-M": 2, "COBEK-STONE": 1})
    before = _avail(client, skus)
    cart_before = client.get(f"/carts/{cart['id']}").json()
    r = checkout(client, cart["id"], token=token)
    assert_problem(r, status)
    after_cart = client.get(f"/carts/{cart['id']}").json()
    assert after_cart["status"] == "open"
    assert after_cart == cart_before
    assert _avail(client, skus) == before  # nothing stays reserved
    assert _sales_orders(client, admin_headers) == 0
    # the customer can try again with another card on the same cart
    r = checkout(client, cart["id"], token="tok_ok")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "paid"


def test_bank_transfer_waits_for_payment_then_mark_paid(client, admin_headers):
    cart = ready_cart(client, "ID", {"SARONG-TENUN": 1})
    before = availability(client, "SARONG-TENUN", "ID")["available"]
    r = checkout(client, cart["id"], method="bank-transfer")
    assert r.status_code == 201, r.text
    order = assert_order(r.json())
    assert order["status"] == "pending_payment"
    pay = order["payment"]
    assert pay["method"] == "bank-transfer"
    assert minor(pay["captured"]) == 0
    bank = markets_toml()["ID"]["plugins"]["bank-transfer"]
    instructions = pay["instructions"]
    assert instructions["bank"] == bank["bank"]
    assert instructions["account_number"] == bank["account_number"]
    assert instructions["account_name"] == bank["account_name"]
    assert instructions["reference"] == order["number"]
    assert instructions["amount"] == f"{order['total']['amount']} {order['currency']}"
    assert order["payment_due_at"] is not None
    assert availability(client, "SARONG-TENUN", "ID")["available"] == before - 1  # held

    r = client.post(f"/admin/orders/{order['id']}/mark-paid", json={"reference": "BCA-123"},
                    headers=admin_headers)
    assert r.status_code == 200, r.text
    paid = assert_order(r.json())
    assert paid["status"] == "paid"
    assert minor(paid["payment"]["captured"]) == minor(order["total"])
    assert paid["history"][:1] == order["history"][:1]
    assert len(paid["history"]) == len(order["history"]) + 1
    assert client.get(f"/orders/{order['id']}").json() == paid
    # marking twice changes nothing
    r = client.post(f"/admin/orders/{order['id']}/mark-paid", headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["history"] == paid["history"]
    assert availability(client, "SARONG-TENUN", "ID")["available"] == before - 1


def test_stock_gone_at_checkout_is_409_naming_the_sku_with_nothing_reserved(client,
                                                                            admin_headers):
    cart = ready_cart(client, "ID", {"COBEK-STONE": 2, "TEA-JAVA-BLACK": 1})
    for loc in availability(client, "COBEK-STONE", "ID")["locations"]:
        r = client.put(f"/admin/inventory/COBEK-STONE/{loc['id']}", json={"on_hand": 0},
                       headers=admin_headers)
        assert r.status_code == 200, r.text
    tea_before = availability(client, "TEA-JAVA-BLACK", "ID")
    r = checkout(client, cart["id"])
    body = assert_problem(r, 409)
    assert "COBEK-STONE" in body["detail"]
    assert "TEA-JAVA-BLACK" not in body["detail"]
    assert body.get("code") == "out_of_stock"
    assert availability(client, "TEA-JAVA-BLACK", "ID") == tea_before
    assert availability(client, "COBEK-STONE", "ID")["available"] == 0
    assert TestPay.calls == []  # nothing charged
    assert client.get(f"/carts/{cart['id']}").json()["status"] == "open"
    assert _sales_orders(client, admin_headers) == 0


def test_adding_more_than_available_is_409_naming_sku_and_available(client):
    cart = new_cart(client, "ID")
    available = availability(client, "COBEK-STONE", "ID")["available"]
    r = client.post(f"/carts/{cart['id']}/lines",
                    json={"sku": "COBEK-STONE", "quantity": available + 1})
    body = assert_problem(r, 409)
    assert body["code"] == "out_of_stock"
    assert body["sku"] == "COBEK-STONE"
    assert body["available"] == available
    # what is already in the cart counts: the line cannot grow past the stock either
    add_line(client, cart["id"], "COBEK-STONE", available)
    r = client.post(f"/carts/{cart['id']}/lines", json={"sku": "COBEK-STONE", "quantity": 1})
    body = assert_problem(r, 409)
    assert body["sku"] == "COBEK-STONE" and body["available"] == available
    line = client.get(f"/carts/{cart['id']}").json()["lines"][0]
    assert line["quantity"] == available
    r = client.patch(f"/carts/{cart['id']}/lines/{line['id']}", json={"quantity": available + 1})
    assert assert_problem(r, 409)["sku"] == "COBEK-STONE"


def test_a_cart_that_is_not_ready_is_422_naming_the_field(client):
    # empty
    cart = new_cart(client, "ID")
    assert_problem(checkout(client, cart["id"]), 422, "lines")
    # lines but no delivery
    add_line(client, cart["id"], "TEA-JAVA-BLACK", 1)
    set_address(client, cart["id"], ADDRESSES["ID"])
    assert_problem(checkout(client, cart["id"]), 422, "delivery")
    # shipping chosen without an address
    cart2 = new_cart(client, "ID")
    add_line(client, cart2["id"], "TEA-JAVA-BLACK", 1)
    ship = next(o for o in delivery_options(client, cart2["id"]) if o["kind"] == "ship")
    set_delivery(client, cart2["id"], ship["id"])
    assert_problem(checkout(client, cart2["id"]), 422, "address")
    # an unknown payment method, and testpay without a token
    ready = ready_cart(client, "ID", {"TEA-JAVA-BLACK": 1})
    assert_problem(checkout(client, ready["id"], method="cash-in-a-bag"), 422, "payment.method")
    assert_problem(checkout(client, ready["id"], token=None), 422, "payment.token")
    # bank transfer is not offered in the US
    us = ready_cart(client, "US", {"TEA-JAVA-BLACK": 1})
    assert_problem(checkout(client, us["id"], method="bank-transfer"), 422, "payment.method")
    for c in (cart, cart2, ready, us):
        assert client.get(f"/carts/{c['id']}").json()["status"] == "open"
    assert TestPay.calls == []


def test_us_order_charges_tax_on_top_and_pickup_order_holds_store_stock(client):
    us = ready_cart(client, "US", {"SARONG-TENUN": 2})
    r = checkout(client, us["id"])
    assert r.status_code == 201, r.text
    order = assert_order(r.json())
    assert minor(order["tax_total"]) > 0
    assert minor(order["total"]) == (minor(order["subtotal"]) + minor(order["shipping_total"])
                                     + minor(order["tax_total"]))
    assert minor(order["payment"]["captured"]) == minor(order["total"])

    cart = ready_cart(client, "ID", {"CANDLE-SOY-PANDAN": 2}, delivery="pickup")
    store = cart["delivery"]["location_id"]
    before = {loc["id"]: loc["available"]
              for loc in availability(client, "CANDLE-SOY-PANDAN", "ID")["locations"]}
    r = checkout(client, cart["id"])
    assert r.status_code == 201, r.text
    assert r.json()["delivery"]["kind"] == "pickup"
    after = {loc["id"]: loc["available"]
             for loc in availability(client, "CANDLE-SOY-PANDAN", "ID")["locations"]}
    assert after == {**before, store: before[store] - 2}


def test_order_by_id_and_unknown_order(client):
    order = checkout(client, ready_cart(client, "JP", {"TEA-JAVA-BLACK": 1})["id"]).json()
    r = client.get(f"/orders/{order['id']}")
    assert r.status_code == 200
    got = assert_order(r.json())
    placed = [h for h in got["history"] if h["event"] == "placed"]
    assert len(placed) == 1 and set(placed[0]) >= {"at", "event", "detail"}
    assert "." not in got["total"]["amount"]
    assert_problem(client.get("/orders/no-such-order"), 404)


def test_reusing_a_failed_checkouts_key_with_another_body_is_422(client):
    cart = ready_cart(client, "ID", {"TEA-JAVA-BLACK": 1})
    headers = idem("retry-key")
    declined = {"payment": {"method": "testpay", "token": "tok_decline"}}
    assert_problem(client.post(f"/carts/{cart['id']}/checkout", json=declined,
                               headers=headers), 402)
    ok = {"payment": {"method": "testpay", "token": "tok_ok"}}
    r = client.post(f"/carts/{cart['id']}/checkout", json=ok, headers=headers)
    assert_problem(r, 422, "Idempotency-Key")


def test_a_cart_of_the_most_lines_checks_out_in_one_write_and_one_more_is_422(
        client, admin_headers):
    """MAX_LINES keeps a checkout inside one atomic write on every store (DynamoDB:
    TransactWriteItems takes at most 100 actions)."""
    from kernel.cart import MAX_LINES

    skus = [f"BULK-{i:03d}" for i in range(MAX_LINES + 1)]
    for sku in skus:
        body = {"names": {"en-US": f"Bulk item {sku}"}, "tax_class": "standard",
                "weight_grams": 10, "prices": {"DE": {"amount": "1.00", "currency": "EUR"}}}
        assert client.put(f"/admin/products/{sku}", json=body,
                          headers=admin_headers).status_code in (200, 201)
        r = client.put(f"/admin/inventory/{sku}/de-lej-wh", json={"on_hand": 5},
                       headers=admin_headers)
        assert r.status_code == 200, r.text
    cart = ready_cart(client, "DE", {sku: 1 for sku in skus[:MAX_LINES]})
    assert len(cart["lines"]) == MAX_LINES

    r = client.post(f"/carts/{cart['id']}/lines", json={"sku": skus[-1], "quantity": 1})
    problem = assert_problem(r, 422, "sku")
    assert str(MAX_LINES) in problem["detail"] or str(MAX_LINES) in str(problem["errors"])

    r = checkout(client, cart["id"])
    assert r.status_code == 201, r.text
    order = assert_order(r.json())
    assert len(order["lines"]) == MAX_LINES
    assert _avail(client, [skus[0]], market="DE")[skus[0]]["available"] == 4
