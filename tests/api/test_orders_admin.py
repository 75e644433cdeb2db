"""Admin operations: orders (capture, fulfil, cancel, return, expiry), catalog and inventory."""

from __future__ import annotations

import time

from kernel.money import Money
from kernel.services.orders import sweep
from plugins.payments.testpay import TestPay

from .helpers import (
    add_line,
    assert_cart,
    assert_order,
    assert_problem,
    availability,
    available_at,
    checkout,
    idem,
    markets_toml,
    minor,
    new_cart,
    niaga_of,
    place_order,
    ready_cart,
    stock_level,
)

WH = "id-jkt-wh"


def _post(client, path, admin_headers, json=None, key=None):
    headers = dict(admin_headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(path, json=json, headers=headers)


# -- capture -------------------------------------------------------------------------


def _force_authorized(client, order_id: str) -> None:
    """Checkout over HTTP always captures (testpay tok_ok), so no route yields an authorized
    order; turn a fresh paid order back into an authorized one in the store."""
    niaga = niaga_of(client)

    async def run() -> None:
        order = await niaga.store.get_order(order_id)
        version = order.version
        order.status = "authorized"
        order.payment.status = "authorized"
        order.payment.captured = Money.zero(order.currency)
        order.version += 1
        await niaga.store.save_order(order, version, [])

    client.blocking_portal.call(run)


def test_capture_needs_a_key_and_an_authorized_order(client, admin_headers):
    order = place_order(client, "DE", {"TEA-JAVA-BLACK": 2})
    path = f"/admin/orders/{order['id']}/capture"
    assert_problem(_post(client, path, admin_headers, {}), (400, 422), "Idempotency-Key")
    # a paid order cannot be captured again
    assert_problem(_post(client, path, admin_headers, {}, key="cap-paid"), 409)

    _force_authorized(client, order["id"])
    too_much = {"amount": {"amount": "9999.00", "currency": "EUR"}}
    assert_problem(_post(client, path, admin_headers, too_much, key="cap-x"), 422, "amount")
    r = _post(client, path, admin_headers, {}, key="cap-1")
    assert r.status_code == 200, r.text
    captured = assert_order(r.json())
    assert captured["status"] == "paid"
    assert captured["payment"]["status"] == "captured"
    assert minor(captured["payment"]["captured"]) == minor(order["total"])
    assert len(TestPay.calls_of("capture")) == 1
    # replay: same answer, no second capture; another body with the key is 422
    r = _post(client, path, admin_headers, {}, key="cap-1")
    assert r.status_code == 200
    assert r.json()["id"] == order["id"] and r.json()["status"] == "paid"
    assert len(TestPay.calls_of("capture")) == 1
    other = {"amount": {"amount": "1.00", "currency": "EUR"}}
    assert_problem(_post(client, path, admin_headers, other, key="cap-1"), 422,
                   "Idempotency-Key")
    assert client.get(f"/orders/{order['id']}").json()["history"] == captured["history"]


# -- fulfilment ----------------------------------------------------------------------


def test_partial_then_full_fulfilment_moves_stock_out(client, admin_headers):
    shirt0 = stock_level(client, admin_headers, "BATIK-SHIRT-M", WH)
    tea0 = stock_level(client, admin_headers, "TEA-JAVA-BLACK", WH)
    order = place_order(client, "ID", {"BATIK-SHIRT-M": 3, "TEA-JAVA-BLACK": 2})
    shirt1 = stock_level(client, admin_headers, "BATIK-SHIRT-M", WH)
    assert shirt1["on_hand"] == shirt0["on_hand"]
    assert shirt1["reserved"] == shirt0["reserved"] + 3
    lines = {li["sku"]: li for li in order["lines"]}
    path = f"/admin/orders/{order['id']}/fulfillments"

    # over-fulfilling a line is refused and changes nothing, also split over two entries
    r = _post(client, path, admin_headers,
              {"lines": [{"line_id": lines["BATIK-SHIRT-M"]["id"], "quantity": 4}]})
    assert_problem(r, 422, "lines")
    r = _post(client, path, admin_headers,
              {"lines": [{"line_id": lines["BATIK-SHIRT-M"]["id"], "quantity": 2},
                         {"line_id": lines["BATIK-SHIRT-M"]["id"], "quantity": 2}]})
    assert_problem(r, 422, "lines")
    assert client.get(f"/orders/{order['id']}").json()["status"] == "paid"

    r = _post(client, path, admin_headers,
              {"lines": [{"line_id": lines["BATIK-SHIRT-M"]["id"], "quantity": 1}]})
    assert r.status_code == 200, r.text
    part = assert_order(r.json())
    assert part["status"] == "partially_fulfilled"
    assert len(part["fulfillments"]) == 1
    f = part["fulfillments"][0]
    assert set(f) >= {"id", "location_id", "lines", "tracking_number"}
    assert f["location_id"] == WH
    assert f["tracking_number"]  # booked with the carrier
    assert f["lines"] == [{"line_id": lines["BATIK-SHIRT-M"]["id"], "quantity": 1}]
    shirt2 = stock_level(client, admin_headers, "BATIK-SHIRT-M", WH)
    assert shirt2["on_hand"] == shirt0["on_hand"] - 1
    assert shirt2["reserved"] == shirt0["reserved"] + 2
    assert shirt2["available"] == shirt1["available"]  # shipping held stock frees nothing

    r = _post(client, path, admin_headers, {"tracking_number": "TRK-2"})  # the rest
    assert r.status_code == 200, r.text
    full = assert_order(r.json())
    assert full["status"] == "fulfilled"
    assert full["fulfillments"][-1]["tracking_number"] == "TRK-2"
    assert {li["sku"]: li["fulfilled"] for li in full["lines"]} == {"BATIK-SHIRT-M": 3,
                                                                    "TEA-JAVA-BLACK": 2}
    shirt3 = stock_level(client, admin_headers, "BATIK-SHIRT-M", WH)
    tea3 = stock_level(client, admin_headers, "TEA-JAVA-BLACK", WH)
    assert (shirt3["on_hand"], shirt3["reserved"]) == (shirt0["on_hand"] - 3, shirt0["reserved"])
    assert (tea3["on_hand"], tea3["reserved"]) == (tea0["on_hand"] - 2, tea0["reserved"])
    # nothing left to ship; a fulfilled order cannot be cancelled
    assert_problem(_post(client, path, admin_headers, {}), (409, 422))
    assert_problem(_post(client, f"/admin/orders/{order['id']}/cancel", admin_headers, {}), 409)
    assert len(full["history"]) == len(order["history"]) + 2  # one entry per shipment
    assert full["history"][0]["event"] == "placed"


def test_an_unpaid_order_does_not_ship(client, admin_headers):
    order = place_order(client, "ID", {"TEA-JAVA-BLACK": 1}, method="bank-transfer")
    r = _post(client, f"/admin/orders/{order['id']}/fulfillments", admin_headers, {})
    assert_problem(r, 409)
    assert_problem(_post(client, "/admin/orders/no-such-order/fulfillments", admin_headers, {}),
                   404)


# -- cancel --------------------------------------------------------------------------


def test_cancel_refunds_a_paid_order_and_releases_stock(client, admin_headers):
    before = availability(client, "SANDAL-LEATHER-42", "DE")
    order = place_order(client, "DE", {"SANDAL-LEATHER-42": 2})
    assert availability(client, "SANDAL-LEATHER-42", "DE")["available"] == (
        before["available"] - 2)
    r = _post(client, f"/admin/orders/{order['id']}/cancel", admin_headers,
              {"reason": "customer changed their mind"})
    assert r.status_code == 200, r.text
    cancelled = assert_order(r.json())
    assert cancelled["status"] == "cancelled"
    pay = cancelled["payment"]
    assert minor(pay["refunded"]) == minor(pay["captured"]) == minor(order["total"])
    assert pay["status"] == "refunded"
    assert availability(client, "SANDAL-LEATHER-42", "DE") == before
    refunds = TestPay.calls_of("refund")
    assert len(refunds) == 1 and refunds[0][2] == minor(order["total"])
    # cancelling again changes nothing
    r = _post(client, f"/admin/orders/{order['id']}/cancel", admin_headers, {})
    assert r.status_code == 200
    assert r.json()["history"] == cancelled["history"]
    assert len(TestPay.calls_of("refund")) == 1
    # a cancelled order cannot be paid or shipped
    assert_problem(_post(client, f"/admin/orders/{order['id']}/mark-paid", admin_headers, {}),
                   409)


def test_cancel_an_unpaid_bank_transfer_releases_stock_without_refund(client, admin_headers):
    before = availability(client, "COBEK-STONE", "ID")
    order = place_order(client, "ID", {"COBEK-STONE": 3}, method="bank-transfer")
    assert availability(client, "COBEK-STONE", "ID")["available"] == before["available"] - 3
    r = _post(client, f"/admin/orders/{order['id']}/cancel", admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert minor(r.json()["payment"]["refunded"]) == 0
    assert availability(client, "COBEK-STONE", "ID") == before


# -- returns -------------------------------------------------------------------------


def test_returns_refund_pro_rata_restock_and_replay(client, admin_headers):
    wh0 = stock_level(client, admin_headers, "TEA-JAVA-BLACK", WH)
    order = place_order(client, "ID", {"TEA-JAVA-BLACK": 3, "COFFEE-GAYO-250": 1})
    oid = order["id"]
    lines = {li["sku"]: li for li in order["lines"]}
    path = f"/admin/orders/{oid}/returns"
    tea = {"line_id": lines["TEA-JAVA-BLACK"]["id"], "quantity": 1}
    # nothing shipped yet: nothing to return
    assert_problem(_post(client, path, admin_headers, {"lines": [tea], "restock": True},
                         key="ret-early"), 409)
    r = _post(client, f"/admin/orders/{oid}/fulfillments", admin_headers, {})
    assert r.json()["status"] == "fulfilled"
    wh1 = stock_level(client, admin_headers, "TEA-JAVA-BLACK", WH)
    assert wh1["on_hand"] == wh0["on_hand"] - 3
    assert minor(order["shipping_total"]) > 0  # the last return refunds shipping too

    body = {"lines": [tea], "restock": True}
    assert_problem(_post(client, path, admin_headers, body), (400, 422), "Idempotency-Key")
    r = _post(client, path, admin_headers, body, key="ret-1")
    assert r.status_code == 200, r.text
    first = assert_order(r.json())
    assert first["status"] == "partially_returned"
    tea_line = lines["TEA-JAVA-BLACK"]
    unit_paid = minor(tea_line["total"]) // tea_line["quantity"]  # no discounts: even split
    assert minor(tea_line["total"]) == unit_paid * tea_line["quantity"]
    assert minor(first["payment"]["refunded"]) == unit_paid
    assert stock_level(client, admin_headers, "TEA-JAVA-BLACK", WH)["on_hand"] == (
        wh1["on_hand"] + 1)
    returned = {li["sku"]: li["returned"] for li in first["lines"]}
    assert returned == {"TEA-JAVA-BLACK": 1, "COFFEE-GAYO-250": 0}

    # replay: same response, no second refund, no second restock
    r = _post(client, path, admin_headers, body, key="ret-1")
    assert r.status_code == 200
    assert r.json() == first
    assert client.get(f"/orders/{oid}").json() == first
    assert stock_level(client, admin_headers, "TEA-JAVA-BLACK", WH)["on_hand"] == (
        wh1["on_hand"] + 1)
    assert len(TestPay.calls_of("refund")) == 1
    # the key with another body is 422
    assert_problem(_post(client, path, admin_headers, {"lines": [tea], "restock": False},
                         key="ret-1"), 422, "Idempotency-Key")
    # returning more than shipped-and-not-returned is refused, also split over two entries
    too_many = {"lines": [{**tea, "quantity": 3}], "restock": True}
    assert_problem(_post(client, path, admin_headers, too_many, key="ret-x"), 422, "lines")
    split = {"lines": [{**tea, "quantity": 2}, {**tea, "quantity": 1}], "restock": True}
    assert_problem(_post(client, path, admin_headers, split, key="ret-y"), 422, "lines")
    assert client.get(f"/orders/{oid}").json() == first
    assert stock_level(client, admin_headers, "TEA-JAVA-BLACK", WH)["on_hand"] == (
        wh1["on_hand"] + 1)

    # the rest, without restock: everything back -> returned, the whole payment refunded
    rest = {"lines": [{**tea, "quantity": 2},
                      {"line_id": lines["COFFEE-GAYO-250"]["id"], "quantity": 1}],
            "restock": False}
    r = _post(client, path, admin_headers, rest, key="ret-2")
    assert r.status_code == 200, r.text
    last = assert_order(r.json())
    assert last["status"] == "returned"
    assert minor(last["payment"]["refunded"]) == minor(last["payment"]["captured"])
    assert minor(last["payment"]["captured"]) == minor(order["total"])
    assert stock_level(client, admin_headers, "TEA-JAVA-BLACK", WH)["on_hand"] == (
        wh1["on_hand"] + 1)
    assert sum(c[2] for c in TestPay.calls_of("refund")) == minor(order["total"])


# -- expiry of unpaid orders -----------------------------------------------------------


def test_an_unpaid_bank_transfer_expires_after_its_window(client, admin_headers):
    """``sweep`` has no route; run it in the app's loop with the clock moved past the window."""
    niaga = niaga_of(client)
    before = availability(client, "SARONG-TENUN", "ID")
    order = place_order(client, "ID", {"SARONG-TENUN": 2}, method="bank-transfer")
    paid = place_order(client, "ID", {"SARONG-TENUN": 1}, method="bank-transfer")
    r = client.post(f"/admin/orders/{paid['id']}/mark-paid", headers=admin_headers)
    assert r.status_code == 200, r.text
    window = markets_toml()["ID"]["payment_window_hours"] * 3600
    assert order["payment_due_at"] <= order["created_at"] + window + 1

    # not yet due: nothing happens
    assert client.blocking_portal.call(sweep, niaga)["orders_expired"] == 0
    real_clock = niaga.clock
    niaga.clock = lambda: real_clock() + window + 60
    try:
        result = client.blocking_portal.call(sweep, niaga)
    finally:
        niaga.clock = real_clock
    assert result["orders_expired"] == 1
    expired = assert_order(client.get(f"/orders/{order['id']}").json())
    assert expired["status"] == "cancelled"
    assert expired["history"][-1]["event"] == "expired"
    assert client.get(f"/orders/{paid['id']}").json()["status"] == "paid"
    assert availability(client, "SARONG-TENUN", "ID")["available"] == before["available"] - 1


# -- catalog ---------------------------------------------------------------------------


def _product(prices: dict[str, tuple[str, str]], names: dict[str, str] | None = None,
             **extra) -> dict:
    return {"names": names or {"en-US": "Rattan Basket", "id-ID": "Keranjang Rotan"},
            "prices": {m: {"amount": a, "currency": c} for m, (a, c) in prices.items()},
            "tax_class": "standard", "weight_grams": 500, **extra}


def test_put_product_creates_and_replaces(client, admin_headers):
    body = _product({"ID": ("75000.00", "IDR"), "JP": ("1200", "JPY")},
                    attributes={"material": "rattan"})
    r = client.put("/admin/products/RATTAN-BASKET", json=body, headers=admin_headers)
    assert r.status_code in (200, 201), r.text
    created = r.json()
    assert created["sku"] == "RATTAN-BASKET"
    assert created["tax_class"] == "standard" and created["attributes"] == {"material": "rattan"}
    listed = {p["sku"]: p for p in client.get("/products",
                                              params={"market": "ID", "locale": "id-ID"}).json()}
    assert listed["RATTAN-BASKET"]["name"] == "Keranjang Rotan"
    assert listed["RATTAN-BASKET"]["price"]["amount"] == "75000.00"
    jp = client.get("/products/RATTAN-BASKET", params={"market": "JP"}).json()
    assert jp["price"] == {**jp["price"], "amount": "1200", "currency": "JPY"}
    assert_problem(client.get("/products/RATTAN-BASKET", params={"market": "DE"}), 404)
    # no stock yet: adding it to a cart is out of stock
    cart = new_cart(client, "ID")
    r = client.post(f"/carts/{cart['id']}/lines", json={"sku": "RATTAN-BASKET", "quantity": 1})
    assert assert_problem(r, 409)["available"] == 0
    r = client.put(f"/admin/inventory/RATTAN-BASKET/{WH}", json={"on_hand": 5},
                   headers=admin_headers)
    assert r.status_code == 200, r.text
    assert availability(client, "RATTAN-BASKET", "ID")["available"] == 5
    add_line(client, cart["id"], "RATTAN-BASKET", 1)

    # replace: new name and price; carts re-price on the next read
    body2 = _product({"ID": ("80000.00", "IDR")},
                     names={"en-US": "Rattan Basket (L)", "id-ID": "Keranjang Rotan (L)"})
    r = client.put("/admin/products/RATTAN-BASKET", json=body2, headers=admin_headers)
    assert r.status_code in (200, 201), r.text
    got = client.get("/products/RATTAN-BASKET", params={"market": "ID", "locale": "id-ID"})
    assert got.json()["name"] == "Keranjang Rotan (L)"
    assert got.json()["price"]["amount"] == "80000.00"
    assert_problem(client.get("/products/RATTAN-BASKET", params={"market": "JP"}), 404)
    cart = assert_cart(client.get(f"/carts/{cart['id']}").json())
    assert cart["lines"][0]["unit_price"]["amount"] == "80000.00"


def test_put_product_rejects_bad_prices(client, admin_headers):
    count = len(client.get("/products", params={"market": "DE"}).json())
    bad_currency = _product({"DE": ("10.00", "USD")})
    r = client.put("/admin/products/BAD-ONE", json=bad_currency, headers=admin_headers)
    assert_problem(r, 422, "prices.DE.currency")
    unknown_market = _product({"XX": ("10.00", "EUR")})
    r = client.put("/admin/products/BAD-ONE", json=unknown_market, headers=admin_headers)
    assert_problem(r, 422, "prices.XX")
    too_precise = _product({"DE": ("10.999", "EUR")})
    r = client.put("/admin/products/BAD-ONE", json=too_precise, headers=admin_headers)
    assert_problem(r, 422, "prices.DE")
    negative = _product({"DE": ("-1.00", "EUR")})
    assert_problem(client.put("/admin/products/BAD-ONE", json=negative, headers=admin_headers),
                   422, "prices.DE")
    no_names = {**_product({"DE": ("10.00", "EUR")}), "names": {}}
    assert_problem(client.put("/admin/products/BAD-ONE", json=no_names, headers=admin_headers),
                   (400, 422), "names")
    assert_problem(client.put("/admin/products/bad%20sku!", json=_product({}),
                              headers=admin_headers), (400, 404, 422))
    assert len(client.get("/products", params={"market": "DE"}).json()) == count
    assert_problem(client.get("/products/BAD-ONE", params={"market": "DE"}), 404)


def test_delete_product_drops_cart_lines_and_orders_keep_it(client, admin_headers):
    order = place_order(client, "ID", {"TOTE-CANVAS": 1})
    cart = new_cart(client, "ID")
    add_line(client, cart["id"], "TOTE-CANVAS", 2)
    add_line(client, cart["id"], "TEA-JAVA-BLACK", 1)
    r = client.delete("/admin/products/TOTE-CANVAS", headers=admin_headers)
    assert r.status_code == 204
    assert r.content == b""
    cart = assert_cart(client.get(f"/carts/{cart['id']}").json())
    assert [li["sku"] for li in cart["lines"]] == ["TEA-JAVA-BLACK"]
    assert_problem(client.get("/products/TOTE-CANVAS", params={"market": "ID"}), 404)
    assert "TOTE-CANVAS" not in {p["sku"] for p in
                                 client.get("/products", params={"market": "ID"}).json()}
    kept = client.get(f"/orders/{order['id']}").json()
    assert [li["sku"] for li in kept["lines"]] == ["TOTE-CANVAS"]
    assert_problem(client.delete("/admin/products/TOTE-CANVAS", headers=admin_headers), 404)
    r = client.post(f"/carts/{cart['id']}/lines", json={"sku": "TOTE-CANVAS", "quantity": 1})
    assert_problem(r, 422, "sku")


# -- inventory -------------------------------------------------------------------------


def test_inventory_put_and_adjust(client, admin_headers):
    path = f"/admin/inventory/BATIK-SHIRT-L/{WH}"
    r = client.put(path, json={"on_hand": 7}, headers=admin_headers)
    assert r.status_code == 200, r.text
    level = r.json()
    assert level == {**level, "sku": "BATIK-SHIRT-L", "location_id": WH, "on_hand": 7,
                     "reserved": 0, "available": 7}
    assert available_at(client, "BATIK-SHIRT-L", "ID", WH) == 7

    r = client.post(f"{path}/adjust", json={"delta": -1, "reason": "pos_sale"},
                    headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["on_hand"] == 6 and r.json()["available"] == 6
    r = client.post(f"{path}/adjust", json={"delta": 4, "reason": "receipt"},
                    headers=admin_headers)
    assert r.json()["on_hand"] == 10
    assert available_at(client, "BATIK-SHIRT-L", "ID", WH) == 10

    assert_problem(client.post(f"{path}/adjust", json={"delta": -1, "reason": "stolen?"},
                               headers=admin_headers), 422, "reason")
    assert_problem(client.post(f"{path}/adjust", json={"delta": 0, "reason": "count"},
                               headers=admin_headers), 422, "delta")
    assert_problem(client.put(path, json={"on_hand": -3}, headers=admin_headers),
                   (400, 422), "on_hand")
    assert_problem(client.put("/admin/inventory/BATIK-SHIRT-L/no-such-place",
                              json={"on_hand": 1}, headers=admin_headers), (404, 422))
    assert_problem(client.put(f"/admin/inventory/NO-SUCH-SKU/{WH}", json={"on_hand": 1},
                              headers=admin_headers), (404, 422))
    assert available_at(client, "BATIK-SHIRT-L", "ID", WH) == 10


def test_stock_cannot_go_below_what_orders_hold(client, admin_headers):
    order = place_order(client, "ID", {"COBEK-STONE": 3})  # all at the Jakarta warehouse
    level = stock_level(client, admin_headers, "COBEK-STONE", WH)
    assert level["reserved"] == 3
    path = f"/admin/inventory/COBEK-STONE/{WH}"
    r = client.post(f"{path}/adjust", json={"delta": -(level["on_hand"] - 2),
                                            "reason": "write_off"}, headers=admin_headers)
    assert_problem(r, 409)
    assert_problem(client.put(path, json={"on_hand": 2}, headers=admin_headers), 409)
    assert stock_level(client, admin_headers, "COBEK-STONE", WH) == level
    # down to exactly the reserved units is fine
    r = client.put(path, json={"on_hand": 3}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["available"] == 0
    assert client.get(f"/orders/{order['id']}").json()["status"] == "paid"


# -- plugins and reports ---------------------------------------------------------------


def test_plugins_and_sales_report(client, admin_headers):
    r = client.get("/admin/plugins", headers=admin_headers)
    assert r.status_code == 200
    plugins = {p["name"]: p for p in r.json()}
    for p in plugins.values():
        assert set(p) >= {"name", "version", "hooks", "markets"}
    for code, conf in markets_toml().items():
        for name in conf["plugins"]:
            assert code in plugins[name]["markets"]

    web = [place_order(client, "ID", {"TEA-JAVA-BLACK": 1}),
           place_order(client, "ID", {"COFFEE-GAYO-250": 2})]
    pos = [place_order(client, "ID", {"BATIK-SHIRT-L": 1}, channel="pos")]
    place_order(client, "ID", {"SARONG-TENUN": 1}, method="bank-transfer")  # unpaid: not counted
    r = client.get("/admin/reports/sales", params={"group_by": "channel"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    groups = {g["group"]: g for g in r.json()["groups"]}
    for name, orders in (("web", web), ("pos", pos)):
        revenue = sum(minor(o["total"]) for o in orders)
        assert groups[name]["orders"] == len(orders)
        assert minor(groups[name]["revenue"]) == revenue
        # AOV rounds half-up to the minor unit: floor((2 * revenue + n) / (2 * n))
        assert minor(groups[name]["aov"]) == (2 * revenue + len(orders)) // (2 * len(orders))
    r = client.get("/admin/reports/sales", params={"group_by": "market"}, headers=admin_headers)
    assert {g["group"]: g["orders"] for g in r.json()["groups"]} == {"ID": 3}
    later = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 86400)) + "+00:00"
    r = client.get("/admin/reports/sales", params={"from": later}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["groups"] == []
    assert_problem(client.get("/admin/reports/sales", params={"from": "yesterday"},
                              headers=admin_headers), (400, 422), "from")
    assert_problem(client.get("/admin/reports/sales", params={"group_by": "colour"},
                              headers=admin_headers), (400, 422), "group_by")


def test_mark_paid_on_unknown_order_is_404(client, admin_headers):
    assert_problem(client.post("/admin/orders/nope/mark-paid", headers=admin_headers), 404)
    cart = ready_cart(client, "ID", {"TEA-JAVA-BLACK": 1})
    order = checkout(client, cart["id"]).json()
    assert_problem(client.post(f"/admin/orders/{order['id']}/returns", json={"lines": []},
                               headers={**admin_headers, **idem()}), (400, 422), "lines")
