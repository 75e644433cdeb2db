"""Exchanges: a return plus a new order for the replacement items, linked both ways, and
nothing half done when the new order cannot be placed.

Expectations come from the catalog (prices), the order's line totals and the stock
read before the exchange, never from the exchange's own answer.
"""

from __future__ import annotations

from decimal import Decimal

from kernel.errors import GatewayError
from kernel.services import returns
from plugins.payments.testpay import TestPay

from .helpers import (
    DIGITS,
    assert_order,
    assert_problem,
    availability,
    catalog_product,
    idem,
    minor,
    place_order,
)

NEW_SKU = "SARONG-TENUN"


def _customer(client, admin_headers, email):
    r = client.post("/admin/customers", json={"email": email}, headers=admin_headers)
    assert r.status_code in (200, 201), r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _shipped_order(client, admin_headers, auth):
    order = place_order(client, "DE", {"SANDAL-LEATHER-42": 1, "TEA-JAVA-BLACK": 2},
                        headers=auth)
    r = client.post(f"/admin/orders/{order['id']}/fulfillments", json={},
                    headers=admin_headers)
    assert r.status_code == 200, r.text
    return r.json()


def _tea(order):
    return next(li for li in order["lines"] if li["sku"] == "TEA-JAVA-BLACK")


def _body(order, *, quantity=1, token="tok_ok", items=None, **extra):
    return {"lines": [{"line_id": _tea(order)["id"], "quantity": 1}],
            "items": items or [{"sku": NEW_SKU, "quantity": quantity}],
            "payment": {"method": "testpay", "token": token}, **extra}


def _exchange(client, admin_headers, order_id, body, key):
    return client.post(f"/admin/orders/{order_id}/exchanges", json=body,
                       headers={**admin_headers, **idem(key)})


def _my_orders(client, auth):
    r = client.get("/me/orders", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def _unit_price(sku, market="DE"):
    price = catalog_product(sku)["prices"][market]
    return int(Decimal(price).scaleb(DIGITS["EUR"]))


def test_an_exchange_returns_units_and_places_a_linked_order(client, admin_headers):
    auth = _customer(client, admin_headers, "tukar@example.com")
    order = _shipped_order(client, admin_headers, auth)
    stock0 = availability(client, NEW_SKU, "DE")["available"]
    body = _body(order, quantity=2)
    r = _exchange(client, admin_headers, order["id"], body, "ex-1")
    assert r.status_code == 201, r.text
    result = r.json()
    original, new = assert_order(result["original"]), assert_order(result["order"])

    # the return: one tea unit back, refunded pro rata through the original gateway
    tea = _tea(order)
    assert original["status"] == "partially_returned"
    assert _tea(original)["returned"] == 1
    assert minor(original["payment"]["refunded"]) == minor(tea["total"]) // tea["quantity"]
    assert [c[1] for c in TestPay.calls_of("refund")] == [order["payment"]["reference"]]
    # the new order: the same customer, market, channel, address and kind of delivery
    assert new["id"] != order["id"]
    for field in ("customer_id", "market", "channel", "address", "currency"):
        assert new[field] == order[field], field
    assert new["delivery"]["kind"] == order["delivery"]["kind"]
    assert [(li["sku"], li["quantity"]) for li in new["lines"]] == [(NEW_SKU, 2)]
    assert minor(new["subtotal"]) == 2 * _unit_price(NEW_SKU)
    assert new["payment"]["status"] == "captured"
    assert availability(client, NEW_SKU, "DE")["available"] == stock0 - 2
    # linked both ways
    assert new["exchange_of"] == order["id"]
    assert original["exchanged_for"] == [new["id"]]
    [entry] = [h for h in original["history"] if h["event"] == "exchanged"]
    assert entry["detail"]["order_id"] == new["id"]
    assert entry["detail"]["number"] == new["number"]
    assert client.get(f"/orders/{new['id']}").json()["exchange_of"] == order["id"]
    assert client.get(f"/orders/{order['id']}").json()["exchanged_for"] == [new["id"]]
    mine = {o["id"] for o in _my_orders(client, auth)}
    assert mine == {order["id"], new["id"]}

    # a replay: the same answer, nothing charged, refunded or placed again
    r = _exchange(client, admin_headers, order["id"], body, "ex-1")
    assert r.status_code == 200, r.text
    assert r.json() == result
    assert len(TestPay.calls_of("refund")) == 1
    assert len(TestPay.calls_of("authorize")) == 2  # the first order and the new one
    assert {o["id"] for o in _my_orders(client, auth)} == mine
    assert availability(client, NEW_SKU, "DE")["available"] == stock0 - 2
    # the same key with another body is refused
    assert_problem(_exchange(client, admin_headers, order["id"], _body(order, quantity=1),
                             "ex-1"), 422, "Idempotency-Key")


def _unchanged(client, auth, order, stock0, orders0):
    assert client.get(f"/orders/{order['id']}").json() == order
    assert TestPay.calls_of("refund") == []
    assert availability(client, NEW_SKU, "DE")["available"] == stock0
    assert {o["id"] for o in _my_orders(client, auth)} == orders0
    # no replacement cart is left to pose as the customer's cart
    assert client.get("/me/cart", params={"market": "DE"}, headers=auth).status_code == 404


def test_a_declined_payment_or_missing_stock_returns_nothing(client, admin_headers):
    auth = _customer(client, admin_headers, "tolak@example.com")
    order = _shipped_order(client, admin_headers, auth)
    stock0 = availability(client, NEW_SKU, "DE")["available"]
    orders0 = {order["id"]}

    r = _exchange(client, admin_headers, order["id"], _body(order, token="tok_decline"), "d")
    assert_problem(r, 402)
    _unchanged(client, auth, order, stock0, orders0)
    # the same key replays the refusal
    assert_problem(_exchange(client, admin_headers, order["id"],
                             _body(order, token="tok_decline"), "d"), 402)
    _unchanged(client, auth, order, stock0, orders0)

    r = _exchange(client, admin_headers, order["id"], _body(order, quantity=stock0 + 1), "s")
    assert_problem(r, 409, "items[0].quantity")
    _unchanged(client, auth, order, stock0, orders0)


def test_bad_exchange_input_names_the_field_and_changes_nothing(client, admin_headers):
    auth = _customer(client, admin_headers, "salah@example.com")
    order = _shipped_order(client, admin_headers, auth)
    stock0 = availability(client, NEW_SKU, "DE")["available"]
    tea = _tea(order)
    bad = [
        (_body(order, items=[{"sku": "NO-SUCH-SKU", "quantity": 1}]), "items[0].sku"),
        ({**_body(order), "lines": [{"line_id": tea["id"], "quantity": 3}]},
         "lines[0].quantity"),
        ({**_body(order), "lines": [{"line_id": tea["id"], "quantity": 1,
                                     "location_id": "us-nj-wh"}]}, "lines[0].location_id"),
        (_body(order, delivery_option_id="no-such-option"), "delivery_option_id"),
        ({**_body(order), "payment": {"method": "no-such-method"}}, "payment.method"),
        ({**_body(order), "payment": {}}, "payment.method"),
    ]
    for i, (body, field) in enumerate(bad):
        assert_problem(_exchange(client, admin_headers, order["id"], body, f"bad-{i}"),
                       (400, 422), field)
    r = client.post(f"/admin/orders/{order['id']}/exchanges", json=_body(order),
                    headers=admin_headers)  # no Idempotency-Key
    assert_problem(r, (400, 422), "Idempotency-Key")
    _unchanged(client, auth, order, stock0, {order["id"]})
    # an order not shipped yet has nothing to exchange
    fresh = place_order(client, "DE", {"TEA-JAVA-BLACK": 1}, headers=auth)
    assert_problem(_exchange(client, admin_headers, fresh["id"], _body(fresh), "early"), 409)
    assert availability(client, NEW_SKU, "DE")["available"] == stock0


def test_a_failed_refund_cancels_the_new_order(client, admin_headers, monkeypatch):
    auth = _customer(client, admin_headers, "batal@example.com")
    order = _shipped_order(client, admin_headers, auth)
    stock0 = availability(client, NEW_SKU, "DE")["available"]

    async def down(*args, **kwargs):
        raise GatewayError("testpay: refunds are down")

    monkeypatch.setattr(returns, "_gateway", down)
    r = _exchange(client, admin_headers, order["id"], _body(order), "f")
    assert_problem(r, 502)
    assert client.get(f"/orders/{order['id']}").json() == order
    [new] = [o for o in _my_orders(client, auth) if o["id"] != order["id"]]
    assert new["status"] == "cancelled"
    assert new["exchange_of"] == order["id"]
    assert minor(new["payment"]["refunded"]) == minor(new["payment"]["captured"])
    assert availability(client, NEW_SKU, "DE")["available"] == stock0
