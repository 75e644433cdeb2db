"""Customers: tokens, /me, carts across channels, merging, orders, export and erasure."""

from __future__ import annotations

import pytest

from .helpers import (
    ADDRESSES,
    add_line,
    assert_cart,
    assert_order,
    assert_problem,
    availability,
    new_cart,
    place_order,
)


def _customer(client, admin_headers, email: str, name: str | None = None) -> dict:
    body = {"email": email} | ({"name": name} if name else {})
    r = client.post("/admin/customers", json=body, headers=admin_headers)
    assert r.status_code in (200, 201), r.text
    c = r.json()
    assert set(c) >= {"id", "token"} and c["id"] and c["token"]
    return c


def _auth(customer: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer['token']}"}


def test_create_customer_and_me(client, admin_headers):
    c = _customer(client, admin_headers, "Siti@Example.com", "Siti Nurhaliza")
    r = client.get("/me", headers=_auth(c))
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["id"] == c["id"]
    assert me["email"] == "siti@example.com"
    assert me["name"] == "Siti Nurhaliza"
    assert "loyalty" in me
    assert_problem(client.get("/me"), 401)
    assert_problem(client.get("/me", headers={"Authorization": "Bearer ct_forged"}), 401)
    assert_problem(client.get("/me", headers={"Authorization": f"Basic {c['token']}"}), 401)
    # the admin token is not a customer token
    assert_problem(client.get("/me", headers=admin_headers), 401)
    # bad input
    assert_problem(client.post("/admin/customers", json={"email": "not-an-email"},
                               headers=admin_headers), (400, 422), "email")
    assert_problem(client.post("/admin/customers", json={"email": "siti@example.com"},
                               headers=admin_headers), 409)


def test_customer_carts_across_channels(client, admin_headers):
    c = _customer(client, admin_headers, "andi@example.com")
    assert_problem(client.get("/me/cart", params={"market": "ID"}, headers=_auth(c)), 404)
    cart = new_cart(client, "ID", "app", headers=_auth(c))
    assert cart["customer_id"] == c["id"]
    add_line(client, cart["id"], "TEA-JAVA-BLACK", 1)
    r = client.get("/me/cart", params={"market": "ID"}, headers=_auth(c))
    assert r.status_code == 200, r.text
    found = assert_cart(r.json())
    assert found["id"] == cart["id"] and found["channel"] == "app"
    assert [li["sku"] for li in found["lines"]] == ["TEA-JAVA-BLACK"]
    # the cart id alone still reads it, without the token
    assert client.get(f"/carts/{cart['id']}").json()["customer_id"] == c["id"]
    # no cart in another market; an unknown market is 422
    assert_problem(client.get("/me/cart", params={"market": "DE"}, headers=_auth(c)), 404)
    assert_problem(client.get("/me/cart", params={"market": "XX"}, headers=_auth(c)),
                   422, "market")
    # a forged token cannot create a customer cart
    r = client.post("/carts", json={"market": "ID"}, headers={"Authorization": "Bearer nope"})
    assert_problem(r, 401)


def test_merge_a_guest_cart_adds_quantities_capped_by_stock(client, admin_headers):
    c = _customer(client, admin_headers, "dewi@example.com")
    mine = new_cart(client, "ID", headers=_auth(c))
    add_line(client, mine["id"], "BATIK-SHIRT-M", 1)
    stock = availability(client, "COBEK-STONE", "ID")["available"]
    add_line(client, mine["id"], "COBEK-STONE", stock - 2)

    guest = new_cart(client, "ID", "social")
    add_line(client, guest["id"], "BATIK-SHIRT-M", 2)
    add_line(client, guest["id"], "TEA-JAVA-BLACK", 1)
    add_line(client, guest["id"], "COBEK-STONE", 5)
    r = client.post("/me/cart/merge", json={"cart_id": guest["id"]}, headers=_auth(c))
    assert r.status_code == 200, r.text
    merged = assert_cart(r.json())
    assert merged["id"] == mine["id"]
    assert {li["sku"]: li["quantity"] for li in merged["lines"]} == {
        "BATIK-SHIRT-M": 3, "TEA-JAVA-BLACK": 1, "COBEK-STONE": stock}
    assert client.get("/me/cart", params={"market": "ID"},
                      headers=_auth(c)).json()["id"] == mine["id"]
    # the guest cart's lines now live in the customer's cart; the guest cart says where
    closed = client.get(f"/carts/{guest['id']}").json()
    assert (closed["status"], closed["merged_into"]) == ("merged", mine["id"])


def test_merge_without_a_customer_cart_adopts_the_guest_cart(client, admin_headers):
    c = _customer(client, admin_headers, "rina@example.com")
    guest = new_cart(client, "DE")
    add_line(client, guest["id"], "TEA-JAVA-BLACK", 2)
    r = client.post("/me/cart/merge", json={"cart_id": guest["id"]}, headers=_auth(c))
    assert r.status_code == 200, r.text
    cart = assert_cart(r.json())
    assert cart["customer_id"] == c["id"]
    assert {li["sku"]: li["quantity"] for li in cart["lines"]} == {"TEA-JAVA-BLACK": 2}
    assert client.get("/me/cart", params={"market": "DE"},
                      headers=_auth(c)).json()["id"] == guest["id"]
    assert_problem(client.post("/me/cart/merge", json={"cart_id": "nope"}, headers=_auth(c)),
                   404)


def test_a_customer_cannot_take_another_customers_cart(client, admin_headers):
    a = _customer(client, admin_headers, "a@example.com")
    b = _customer(client, admin_headers, "b@example.com")
    b_cart = new_cart(client, "ID", headers=_auth(b))
    add_line(client, b_cart["id"], "TEA-JAVA-BLACK", 1)
    before = client.get(f"/carts/{b_cart['id']}").json()
    r = client.post("/me/cart/merge", json={"cart_id": b_cart["id"]}, headers=_auth(a))
    assert_problem(r, 403)
    assert client.get(f"/carts/{b_cart['id']}").json() == before
    assert_problem(client.get("/me/cart", params={"market": "ID"}, headers=_auth(a)), 404)
    # nor spend loyalty points on it
    r = client.put(f"/carts/{b_cart['id']}/loyalty", json={"points": 10}, headers=_auth(a))
    assert_problem(r, 403)
    assert client.get(f"/carts/{b_cart['id']}").json() == before


def test_loyalty_needs_a_customer_token_and_a_programme(client, admin_headers):
    c = _customer(client, admin_headers, "budi@example.com")
    cart = new_cart(client, "ID", headers=_auth(c))
    add_line(client, cart["id"], "TEA-JAVA-BLACK", 1)
    before = client.get(f"/carts/{cart['id']}").json()
    assert_problem(client.put(f"/carts/{cart['id']}/loyalty", json={"points": 10}), 401)
    # no points to spend yet (tests/api/test_loyalty.py has the rest): a 422 naming points
    r = client.put(f"/carts/{cart['id']}/loyalty", json={"points": 10}, headers=_auth(c))
    assert_problem(r, 422, "points")
    assert client.get(f"/carts/{cart['id']}").json() == before
    r = client.put(f"/carts/{cart['id']}/loyalty", json={"points": 0}, headers=_auth(c))
    assert r.status_code == 200
    assert assert_cart(r.json())["loyalty"] is None


def test_my_orders_newest_first_across_channels(client, admin_headers):
    c = _customer(client, admin_headers, "joko@example.com")
    other = _customer(client, admin_headers, "other@example.com")
    first = place_order(client, "ID", {"TEA-JAVA-BLACK": 1}, headers=_auth(c))
    second = place_order(client, "ID", {"COFFEE-GAYO-250": 1}, headers=_auth(c), channel="pos")
    third = place_order(client, "DE", {"TEA-JAVA-BLACK": 1}, headers=_auth(c), channel="app")
    place_order(client, "ID", {"TEA-JAVA-BLACK": 1}, headers=_auth(other))
    place_order(client, "ID", {"TEA-JAVA-BLACK": 1})  # a guest
    assert first["customer_id"] == c["id"]
    r = client.get("/me/orders", headers=_auth(c))
    assert r.status_code == 200, r.text
    orders = [assert_order(o) for o in r.json()]
    assert [o["id"] for o in orders] == [third["id"], second["id"], first["id"]]
    assert [o["channel"] for o in orders] == ["app", "pos", "web"]
    created = [o["created_at"] for o in orders]
    assert created == sorted(created, reverse=True)
    assert_problem(client.get("/me/orders"), 401)


def test_export_then_erase(client, admin_headers):
    c = _customer(client, admin_headers, "maya@example.com", "Maya Putri")
    order = place_order(client, "ID", {"TEA-JAVA-BLACK": 1}, headers=_auth(c))
    assert order["address"]["email"] == ADDRESSES["ID"]["email"]
    open_cart = new_cart(client, "ID", headers=_auth(c))
    client.put(f"/carts/{open_cart['id']}/address", json=ADDRESSES["ID"])

    r = client.get(f"/admin/customers/{c['id']}/export", headers=admin_headers)
    assert r.status_code == 200, r.text
    export = r.json()
    text = r.text
    assert "maya@example.com" in text and "Maya Putri" in text
    assert order["id"] in text
    assert [o["id"] for o in export["orders"]] == [order["id"]]
    assert "token_hash" not in text  # no token, not even its hash
    assert c["token"] not in text

    r = client.delete(f"/admin/customers/{c['id']}", headers=admin_headers)
    assert r.status_code == 204
    assert_problem(client.get("/me", headers=_auth(c)), 401)
    r = client.get(f"/admin/customers/{c['id']}/export", headers=admin_headers)
    assert r.status_code == 200
    after = r.text
    for personal in ("maya@example.com", "Maya Putri", ADDRESSES["ID"]["name"],
                     ADDRESSES["ID"]["email"], ADDRESSES["ID"]["phone"],
                     ADDRESSES["ID"]["line1"]):
        assert personal not in after, personal
    # the order stays (for the books), anonymised
    kept = client.get(f"/orders/{order['id']}")
    assert kept.status_code == 200
    kept_text = kept.text
    assert kept.json()["total"] == order["total"]
    for personal in (ADDRESSES["ID"]["name"], ADDRESSES["ID"]["email"],
                     ADDRESSES["ID"]["phone"], ADDRESSES["ID"]["line1"]):
        assert personal not in kept_text, personal
    assert client.get(f"/carts/{open_cart['id']}").json()["address"] is None
    assert_problem(client.get("/admin/customers/nope/export", headers=admin_headers), 404)
    assert_problem(client.delete("/admin/customers/nope", headers=admin_headers), 404)


@pytest.fixture
def client_merging(seeded_url, open_store, admin_headers):
    """``client_merging(policy)``: the app over the seeded store with the ID market's
    ``cart_merge`` set to ``policy``."""
    import tomllib

    from litestar.testing import TestClient

    from kernel.api.app import create_app
    from kernel.markets import demo_markets_path, parse_markets
    from kernel.runtime import Niaga

    opened: list[TestClient] = []

    def make(policy: str) -> TestClient:
        raw = tomllib.loads(demo_markets_path().read_text(encoding="utf-8"))
        raw["markets"]["ID"]["cart_merge"] = policy
        app = create_app(Niaga(open_store(seeded_url), parse_markets(raw)),
                         admin_token=admin_headers["Authorization"].removeprefix("Bearer "))
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.mark.parametrize(("policy", "expected"), [
    ("replace", {"BATIK-SHIRT-M": 2, "TEA-JAVA-BLACK": 1}),
    ("keep-customer", {"BATIK-SHIRT-M": 1, "COBEK-STONE": 1}),
])
def test_merge_policies_replace_or_keep_the_customers_cart(client_merging, admin_headers,
                                                            policy, expected):
    client = client_merging(policy)
    c = _customer(client, admin_headers, f"{policy}@example.com")
    mine = new_cart(client, "ID", headers=_auth(c))
    add_line(client, mine["id"], "BATIK-SHIRT-M", 1)
    add_line(client, mine["id"], "COBEK-STONE", 1)
    guest = new_cart(client, "ID", "app")
    add_line(client, guest["id"], "BATIK-SHIRT-M", 2)
    add_line(client, guest["id"], "TEA-JAVA-BLACK", 1)

    r = client.post("/me/cart/merge", json={"cart_id": guest["id"]}, headers=_auth(c))
    assert r.status_code == 200, r.text
    merged = assert_cart(r.json())
    assert merged["id"] == mine["id"]
    assert {li["sku"]: li["quantity"] for li in merged["lines"]} == expected
    stored = client.get("/me/cart", params={"market": "ID"}, headers=_auth(c)).json()
    assert {li["sku"]: li["quantity"] for li in stored["lines"]} == expected
    closed = client.get(f"/carts/{guest['id']}").json()
    assert (closed["status"], closed["merged_into"]) == ("merged", mine["id"])


def test_an_unknown_merge_policy_is_refused_at_load():
    import tomllib

    from kernel.errors import ConfigError
    from kernel.markets import demo_markets_path, parse_markets

    raw = tomllib.loads(demo_markets_path().read_text(encoding="utf-8"))
    raw["markets"]["ID"]["cart_merge"] = "union"
    with pytest.raises(ConfigError) as error:
        parse_markets(raw)
    assert any("cart_merge" in p and "ID" in p for p in error.value.problems), error.value
