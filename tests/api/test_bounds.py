"""Bounds on quantities, prices, stock, points and line counts (issue 6, bad input).

Each out-of-range number is a 4xx problem naming the field and changes nothing; in
particular no number reaches a store column it would overflow (PostgreSQL INTEGER stops at
2**31 - 1, BIGINT at 2**63 - 1), which would be a 500.
"""

from __future__ import annotations

from kernel.api.app import MAX_BODY_BYTES
from kernel.cart import MAX_LINES, MAX_QUANTITY
from kernel.inventory import MAX_ON_HAND

from .helpers import add_line, assert_problem, new_cart, place_order, stock_level

HUGE = [2**31, 2**63, 10**30]


def _admin_product(client, admin, sku="BATIK-SHIRT-M"):
    r = client.put(f"/admin/products/{sku}", json={
        "names": {"id-ID": "Kemeja"}, "prices": {"ID": {"amount": "150000.00",
                                                        "currency": "IDR"}}}, headers=admin)
    assert r.status_code == 200, r.text
    return r.json()


def test_quantities_above_the_maximum_name_the_quantity(client):
    cart = add_line(client, new_cart(client, "ID")["id"], "TEA-JAVA-BLACK", 1)
    cid, line_id = cart["id"], cart["lines"][0]["id"]
    for bad in (MAX_QUANTITY + 1, *HUGE, -(2**63)):
        r = client.post(f"/carts/{cid}/lines", json={"sku": "TEA-JAVA-BLACK", "quantity": bad})
        assert_problem(r, (400, 422), "quantity")
        r = client.patch(f"/carts/{cid}/lines/{line_id}", json={"quantity": bad})
        assert_problem(r, (400, 422), "quantity")
    # adding to an existing line may not take it past the maximum either
    r = client.post(f"/carts/{cid}/lines", json={"sku": "TEA-JAVA-BLACK",
                                                 "quantity": MAX_QUANTITY})
    assert_problem(r, (409, 422), "quantity")
    assert client.get(f"/carts/{cid}").json() == cart


def test_a_cart_holds_at_most_max_lines(client, admin_headers):
    cart = new_cart(client, "ID")
    admin = admin_headers
    for i in range(MAX_LINES + 1):
        sku = f"FUZZ-{i:03d}"
        _admin_product(client, admin, sku)
        r = client.put(f"/admin/inventory/{sku}/id-jkt-wh", json={"on_hand": 5}, headers=admin)
        assert r.status_code == 200, r.text
        if i < MAX_LINES:
            cart = add_line(client, cart["id"], sku, 1)
    assert len(cart["lines"]) == MAX_LINES
    r = client.post(f"/carts/{cart['id']}/lines", json={"sku": f"FUZZ-{MAX_LINES:03d}",
                                                        "quantity": 1})
    assert_problem(r, 422, "sku")
    assert client.get(f"/carts/{cart['id']}").json() == cart


def test_product_prices_are_bounded_and_exact(client, admin_headers):
    before = _admin_product(client, admin_headers)
    for amount, currency in [("1" + "0" * 25, "IDR"), ("99999999999999999999.00", "IDR"),
                             ("-1.00", "IDR"), ("1.001", "IDR"), ("1e5", "IDR"),
                             ("NaN", "IDR"), ("Infinity", "IDR"), ("", "IDR"),
                             ("1.00", "EUR"), ("1.00", "XXQ"), ("1,00", "IDR")]:
        r = client.put("/admin/products/BATIK-SHIRT-M", json={
            "names": {"id-ID": "Kemeja"},
            "prices": {"ID": {"amount": amount, "currency": currency}}}, headers=admin_headers)
        body = assert_problem(r, (400, 422), "prices.ID")
        assert 400 <= body["status"] < 500
    price = client.get("/products/BATIK-SHIRT-M", params={"market": "ID"}).json()["price"]
    assert (price["amount"], price["currency"]) == ("150000.00", "IDR") == \
        tuple(before["prices"]["ID"].values())


def test_stock_counts_and_adjustments_are_bounded(client, admin_headers):
    path = "/admin/inventory/BATIK-SHIRT-M/id-jkt-wh"
    before = stock_level(client, admin_headers, "BATIK-SHIRT-M", "id-jkt-wh")
    for bad in (-1, MAX_ON_HAND + 1, *HUGE):
        assert_problem(client.put(path, json={"on_hand": bad}, headers=admin_headers),
                       (400, 422), "on_hand")
        assert_problem(client.put(path, json={"low_threshold": bad}, headers=admin_headers),
                       (400, 422), "low_threshold")
    for bad in (MAX_ON_HAND + 1, *HUGE, *(-h for h in HUGE)):
        assert_problem(client.post(f"{path}/adjust", json={"delta": bad, "reason": "receipt"},
                                   headers=admin_headers), (400, 409, 422), "delta")
    assert stock_level(client, admin_headers, "BATIK-SHIRT-M", "id-jkt-wh") == before
    # each step in range, the sum not: refused before the store's INTEGER column overflows
    r = client.put(path, json={"on_hand": MAX_ON_HAND}, headers=admin_headers)
    assert r.status_code == 200, r.text
    full = r.json()
    r = client.post(f"{path}/adjust", json={"delta": MAX_ON_HAND, "reason": "receipt"},
                    headers=admin_headers)
    assert_problem(r, 422, "delta")
    r = client.post(f"{path}/adjust", json={"delta": 1, "reason": "receipt"},
                    headers=admin_headers)
    assert_problem(r, 422, "delta")
    levels = client.get("/admin/inventory/BATIK-SHIRT-M", headers=admin_headers).json()
    level = next(v for v in (levels if isinstance(levels, list) else levels["locations"])
                 if v["location_id"] == "id-jkt-wh")
    assert level["on_hand"] == full["on_hand"] == MAX_ON_HAND
    assert before["on_hand"] != MAX_ON_HAND


def test_loyalty_points_are_bounded(client, admin_headers):
    r = client.post("/admin/customers", json={"email": "bounds@example.com"},
                    headers=admin_headers)
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    cart = add_line(client, new_cart(client, "ID", headers=auth)["id"], "TEA-JAVA-BLACK", 1)
    for bad in (-1, *HUGE, "10", 1.5):
        r = client.put(f"/carts/{cart['id']}/loyalty", json={"points": bad}, headers=auth)
        assert_problem(r, (400, 422), "points")
    assert client.get(f"/carts/{cart['id']}").json() == cart


def test_return_and_capture_amounts_are_bounded(client, admin_headers):
    order = place_order(client, "ID", {"TEA-JAVA-BLACK": 2})
    oid, line_id = order["id"], order["lines"][0]["id"]
    r = client.post(f"/admin/orders/{oid}/fulfillments", json={}, headers=admin_headers)
    assert r.status_code == 200, r.text
    order = r.json()  # shipped, so its units can come back
    for bad in (0, 3, MAX_QUANTITY + 1, *HUGE):
        r = client.post(f"/admin/orders/{oid}/returns", headers={
            **admin_headers, "Idempotency-Key": f"ret-{bad}"},
            json={"lines": [{"line_id": line_id, "quantity": bad}]})
        assert_problem(r, (400, 409, 422), "lines[0].quantity")
    too_many = [{"line_id": line_id, "quantity": 1}] * (MAX_LINES + 1)
    r = client.post(f"/admin/orders/{oid}/returns", json={"lines": too_many},
                    headers={**admin_headers, "Idempotency-Key": "ret-many"})
    assert_problem(r, 400, "lines")
    for amount in ("1" + "0" * 25, "-1.00", "1.001"):
        r = client.post(f"/admin/orders/{oid}/capture",
                        json={"amount": {"amount": amount, "currency": "IDR"}},
                        headers={**admin_headers, "Idempotency-Key": f"cap-{amount}"})
        assert_problem(r, (400, 409, 422), "amount")
    assert client.get(f"/orders/{oid}").json() == order


def test_an_admin_body_over_the_size_limit_is_413_and_changes_nothing(client, admin_headers):
    before = _admin_product(client, admin_headers)
    big = {"names": {"id-ID": "x" * 100}, "prices": before["prices"],
           "descriptions": {f"l{i}": "y" * 4000 for i in range(MAX_BODY_BYTES // 4000 + 1)}}
    r = client.put("/admin/products/BATIK-SHIRT-M", json=big, headers=admin_headers)
    assert_problem(r, 413)
    r = client.get("/products/BATIK-SHIRT-M", params={"market": "ID"})
    assert r.json()["name"] == "Kemeja"
