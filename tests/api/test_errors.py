"""Bad input: every error is problem+json naming the field, and changes nothing."""

from __future__ import annotations

from kernel.api.app import MAX_BODY_BYTES

from .helpers import (
    ADDRESSES,
    add_line,
    assert_problem,
    availability,
    new_cart,
    ready_cart,
)


def _cart_with_a_line(client) -> tuple[dict, str]:
    cart = new_cart(client, "ID")
    cart = add_line(client, cart["id"], "BATIK-SHIRT-M", 2)
    return cart, cart["lines"][0]["id"]


def test_unknown_ids_and_routes_are_404_problems(client):
    assert_problem(client.get("/carts/no-such-cart"), 404)
    assert_problem(client.post("/carts/no-such-cart/lines",
                               json={"sku": "BATIK-SHIRT-M", "quantity": 1}), 404)
    assert_problem(client.get("/carts/no-such-cart/delivery-options"), 404)
    assert_problem(client.put("/carts/no-such-cart/address", json=ADDRESSES["ID"]), 404)
    assert_problem(client.get("/no/such/route"), 404)
    assert_problem(client.delete("/markets"), 405)


def test_quantity_must_be_a_whole_number_in_range(client):
    cart, line_id = _cart_with_a_line(client)
    cid = cart["id"]
    for bad in ("two", 0, -1, 10000, 1.5, None, True):
        r = client.post(f"/carts/{cid}/lines", json={"sku": "TEA-JAVA-BLACK", "quantity": bad})
        assert_problem(r, (400, 422), "quantity")
    for bad in ("two", -1, 10000, 2.5):
        r = client.patch(f"/carts/{cid}/lines/{line_id}", json={"quantity": bad})
        assert_problem(r, (400, 422), "quantity")
    assert_problem(client.patch(f"/carts/{cid}/lines/{line_id}", json={}), (400, 422),
                   "quantity")
    assert client.get(f"/carts/{cid}").json() == cart


def test_a_bad_request_changes_nothing(client):
    cart = ready_cart(client, "ID", {"BATIK-SHIRT-M": 2, "TEA-JAVA-BLACK": 1})
    cid = cart["id"]
    line_id = cart["lines"][0]["id"]
    stock = availability(client, "BATIK-SHIRT-M", "ID")
    bad = [
        ("POST", f"/carts/{cid}/lines", {"content": b"{not json"}, None),
        ("POST", f"/carts/{cid}/lines", {"json": {"sku": "NO-SUCH-SKU", "quantity": 1}}, "sku"),
        ("POST", f"/carts/{cid}/lines", {"json": {"sku": "bad sku!", "quantity": 1}}, "sku"),
        ("POST", f"/carts/{cid}/lines", {"json": {"quantity": 1}}, "sku"),
        ("POST", f"/carts/{cid}/lines",
         {"json": {"sku": "TEA-JAVA-BLACK", "quantity": 1, "colour": "red"}}, None),
        ("POST", f"/carts/{cid}/lines", {"json": ["BATIK-SHIRT-M", 1]}, None),
        ("POST", f"/carts/{cid}/lines", {"json": {"sku": "BATIK-SHIRT-M", "quantity": 999}},
         "quantity"),
        ("PATCH", f"/carts/{cid}/lines/{line_id}", {"json": {"quantity": "many"}}, "quantity"),
        ("PATCH", f"/carts/{cid}/lines/{line_id}", {"json": {"quantity": 500}}, "quantity"),
        ("PATCH", f"/carts/{cid}/lines/nope", {"json": {"quantity": 1}}, None),
        ("DELETE", f"/carts/{cid}/lines/nope", {}, None),
        ("PUT", f"/carts/{cid}/address", {"json": {**ADDRESSES["ID"], "country": "id"}},
         "country"),
        ("PUT", f"/carts/{cid}/address", {"json": {**ADDRESSES["ID"], "country": "US"}},
         "country"),
        ("PUT", f"/carts/{cid}/address", {"json": {**ADDRESSES["ID"], "email": "nope"}},
         "email"),
        ("PUT", f"/carts/{cid}/address", {"json": {**ADDRESSES["ID"], "planet": "Mars"}}, None),
        ("PUT", f"/carts/{cid}/address", {"json": {"city": "Jakarta"}}, "country"),
        ("PUT", f"/carts/{cid}/delivery", {"json": {"option_id": "flat-rate:teleport"}},
         "option_id"),
        ("PUT", f"/carts/{cid}/delivery", {"json": {"option_id": 7}}, "option_id"),
        ("POST", f"/carts/{cid}/checkout",
         {"json": {"payment": {"method": "testpay", "token": "tok_ok"}}}, "Idempotency-Key"),
        ("POST", f"/carts/{cid}/checkout",
         {"json": {"payment": {"method": "nope"}}, "headers": {"Idempotency-Key": "k1"}},
         "payment.method"),
        ("POST", f"/carts/{cid}/checkout", {"json": {}, "headers": {"Idempotency-Key": "k2"}},
         "payment"),
        ("POST", f"/carts/{cid}/checkout",
         {"json": {"payment": {"method": "testpay", "token": "tok_bogus"}},
          "headers": {"Idempotency-Key": "k3"}}, "payment.token"),
    ]
    for method, path, kwargs, field in bad:
        r = client.request(method, path, **kwargs)
        body = assert_problem(r, (400, 404, 409, 422), field)
        assert 400 <= body["status"] < 500, (method, path, kwargs, body)
        got = client.get(f"/carts/{cid}").json()
        assert got == cart, (method, path, kwargs)
    assert availability(client, "BATIK-SHIRT-M", "ID") == stock


def test_malformed_json_is_400(client):
    cart = new_cart(client, "ID")
    for raw in (b"{", b"not json", b'{"sku": "BATIK-SHIRT-M", "quantity": 1', b"\xff\xfe"):
        r = client.post(f"/carts/{cart['id']}/lines", content=raw,
                        headers={"Content-Type": "application/json"})
        assert_problem(r, 400)
    r = client.post("/carts", content=b"{market: ID}", headers={"Content-Type": "application/json"})
    assert_problem(r, 400)
    assert client.get(f"/carts/{cart['id']}").json() == cart


def test_unknown_market_and_channel(client):
    assert_problem(client.post("/carts", json={"market": "XX", "channel": "web"}), 422, "market")
    assert_problem(client.post("/carts", json={"market": "ID", "channel": "fax"}), 422,
                   "channel")
    assert_problem(client.post("/carts", json={"market": "US", "channel": "social"}), 422,
                   "channel")  # a real channel, but not in the US
    assert_problem(client.post("/carts", json={"market": "Indonesia"}), (400, 422), "market")
    assert_problem(client.post("/carts", json={"channel": "web"}), (400, 422), "market")
    assert_problem(client.post("/carts", json={"market": "ID", "color": "red"}), (400, 422))
    assert_problem(client.get("/products", params={"market": "XX"}), 422, "market")
    assert_problem(client.get("/products"), (400, 422), "market")
    assert_problem(client.get("/products/BATIK-SHIRT-M", params={"market": "XX"}), 422, "market")
    assert_problem(client.get("/products/BATIK-SHIRT-M/availability", params={"market": "XX"}),
                   422, "market")


def test_a_body_over_the_size_limit_is_413(client):
    cart = new_cart(client, "ID")
    big = b'{"sku": "BATIK-SHIRT-M", "quantity": 1, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    r = client.post(f"/carts/{cart['id']}/lines", content=big,
                    headers={"Content-Type": "application/json"})
    assert_problem(r, 413)
    r = client.post("/webhooks/testpay", content=b"x" * (MAX_BODY_BYTES + 1))
    assert_problem(r, 413)
    assert client.get(f"/carts/{cart['id']}").json() == cart


def test_a_closed_cart_refuses_changes(client):
    cart = ready_cart(client, "ID", {"TEA-JAVA-BLACK": 1})
    r = client.post(f"/carts/{cart['id']}/checkout",
                    json={"payment": {"method": "testpay", "token": "tok_ok"}},
                    headers={"Idempotency-Key": "close-it"})
    assert r.status_code == 201, r.text
    closed = client.get(f"/carts/{cart['id']}").json()
    line_id = closed["lines"][0]["id"]
    for method, path, body in [
        ("POST", f"/carts/{cart['id']}/lines", {"sku": "TEA-JAVA-BLACK", "quantity": 1}),
        ("PATCH", f"/carts/{cart['id']}/lines/{line_id}", {"quantity": 2}),
        ("DELETE", f"/carts/{cart['id']}/lines/{line_id}", None),
        ("PUT", f"/carts/{cart['id']}/address", ADDRESSES["ID"]),
    ]:
        assert_problem(client.request(method, path, json=body), 409)
    assert client.get(f"/carts/{cart['id']}").json() == closed


def test_an_unknown_us_state_is_a_4xx_naming_the_region(client):
    cart = new_cart(client, "US")
    cart = add_line(client, cart["id"], "TEA-JAVA-BLACK", 1)
    r = client.put(f"/carts/{cart['id']}/address", json={"country": "US", "region": "Narnia"})
    assert_problem(r, (400, 422), "region")
    assert client.get(f"/carts/{cart['id']}").json() == cart
