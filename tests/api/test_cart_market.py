"""The cart follows the customer: one open cart per customer and market, merged guest carts
closed as ``merged``, and ``PUT /carts/{id}/market`` (re-priced, re-taxed, choices cleared).

Expectations come from the demo files (catalog prices, VAT rates, fx settings, seeded
stock), never from a server answer."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from kernel.store.base import LedgerEntry

from .helpers import (
    ADDRESSES,
    DIGITS,
    add_line,
    assert_cart,
    assert_order,
    assert_problem,
    availability,
    catalog_product,
    checkout,
    fmt,
    markets_toml,
    minor,
    new_cart,
    niaga_of,
    ready_cart,
    seeded_stock,
    set_address,
    tax_on,
    vat_rate,
)

ONLY_ID = "KERUPUK-UDANG-ID"  # made by a test: priced in Indonesia only
SAMBAL = "SAMBAL-MATAH-JAR"  # no US price: the US sells it converted by fx


def _customer(client, admin_headers, email: str) -> dict[str, str]:
    r = client.post("/admin/customers", json={"email": email}, headers=admin_headers)
    assert r.status_code in (200, 201), r.text
    c = r.json()
    return {"id": c["id"], "Authorization": f"Bearer {c['token']}"}


def _auth(customer: dict[str, str]) -> dict[str, str]:
    return {"Authorization": customer["Authorization"]}


def _move(client, cart_id: str, market: str, channel: str | None = None):
    headers = {"Niaga-Channel": channel} if channel else None
    return client.put(f"/carts/{cart_id}/market", json={"market": market}, headers=headers)


def _quantities(cart: dict) -> dict[str, int]:
    return {li["sku"]: li["quantity"] for li in cart["lines"]}


def _warnings(cart: dict) -> set[tuple[str, str | None]]:
    return {(w["code"], w["sku"]) for w in cart["warnings"]}


def _catalog_price(sku: str, market: str) -> int:
    currency = markets_toml()[market]["currency"]
    return int(Decimal(catalog_product(sku)["prices"][market]).scaleb(DIGITS[currency]))


def _only_in_id(client, admin_headers) -> None:
    r = client.put(f"/admin/products/{ONLY_ID}", headers=admin_headers,
                   json={"names": {"id-ID": "Kerupuk Udang"}, "tax_class": "reduced",
                         "prices": {"ID": {"amount": "25000.00", "currency": "IDR"}}})
    assert r.status_code in (200, 201), r.text
    r = client.put(f"/admin/inventory/{ONLY_ID}/id-jkt-wh", json={"on_hand": 5},
                   headers=admin_headers)
    assert r.status_code == 200, r.text


# -- one open cart per customer and market -------------------------------------------------


def test_a_customer_asking_for_a_new_cart_gets_the_open_one(client, admin_headers):
    c = _customer(client, admin_headers, "satu@example.com")
    web = new_cart(client, "ID", "web", headers=_auth(c))
    add_line(client, web["id"], "TEA-JAVA-BLACK", 2)

    r = client.post("/carts", json={"market": "ID", "channel": "app"}, headers=_auth(c))
    assert r.status_code == 200, r.text  # not created: the customer's open cart
    app = assert_cart(r.json())
    assert app["id"] == web["id"] and _quantities(app) == {"TEA-JAVA-BLACK": 2}
    assert (app["channel"], app["channels"]) == ("web", ["web", "app"])
    r = client.post("/carts", json={"market": "ID", "channel": "app"}, headers=_auth(c))
    assert (r.status_code, r.json()["id"], r.json()["version"]) == (200, web["id"],
                                                                     app["version"])
    # another market, a guest, another customer: new carts
    assert new_cart(client, "DE", "app", headers=_auth(c))["id"] != web["id"]
    assert new_cart(client, "ID", "web")["customer_id"] is None
    other = _customer(client, admin_headers, "dua@example.com")
    assert new_cart(client, "ID", headers=_auth(other))["id"] != web["id"]
    # once it is checked out, the next one is new
    cart = set_address(client, web["id"], ADDRESSES["ID"])
    option = client.get(f"/carts/{cart['id']}/delivery-options").json()[0]
    client.put(f"/carts/{cart['id']}/delivery", json={"option_id": option["id"]})
    assert checkout(client, web["id"]).status_code == 201
    fresh = new_cart(client, "ID", "pos", headers=_auth(c))
    assert fresh["id"] != web["id"] and fresh["lines"] == []


def test_a_merged_guest_cart_is_closed_and_names_the_cart_it_went_into(client, admin_headers):
    c = _customer(client, admin_headers, "tiga@example.com")
    mine = new_cart(client, "ID", headers=_auth(c))
    add_line(client, mine["id"], "TEA-JAVA-BLACK", 1)
    guest = new_cart(client, "ID", "social")
    add_line(client, guest["id"], "TEA-JAVA-BLACK", 2)
    add_line(client, guest["id"], "COFFEE-GAYO-250", 1)

    r = client.post("/me/cart/merge", json={"cart_id": guest["id"]}, headers=_auth(c))
    assert r.status_code == 200, r.text
    merged = assert_cart(r.json())
    want = {"TEA-JAVA-BLACK": 3, "COFFEE-GAYO-250": 1}
    assert merged["id"] == mine["id"] and _quantities(merged) == want
    closed = assert_cart(client.get(f"/carts/{guest['id']}").json())
    assert (closed["status"], closed["merged_into"]) == ("merged", mine["id"])
    assert closed["customer_id"] == c["id"]

    # a merged cart takes no more changes, no checkout, no move: 409 naming where to go
    body = assert_problem(client.post(f"/carts/{guest['id']}/lines",
                                      json={"sku": "TEA-JAVA-BLACK", "quantity": 1}), 409)
    assert body["merged_into"] == mine["id"]
    assert_problem(checkout(client, guest["id"]), 409)
    assert_problem(_move(client, guest["id"], "DE"), 409)
    assert client.get(f"/carts/{guest['id']}").json() == closed
    # a replayed merge answers the same cart and adds nothing twice
    r = client.post("/me/cart/merge", json={"cart_id": guest["id"]}, headers=_auth(c))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == mine["id"] and _quantities(r.json()) == want
    # nobody else can claim it
    other = _customer(client, admin_headers, "empat@example.com")
    assert_problem(client.post("/me/cart/merge", json={"cart_id": guest["id"]},
                               headers=_auth(other)), 403)
    r = client.get("/me/cart", params={"market": "ID"}, headers=_auth(c))
    assert r.json()["id"] == mine["id"] and _quantities(r.json()) == want


# -- moving a cart to another market -----------------------------------------------------


def test_a_cart_moved_to_another_market_is_repriced_retaxed_and_its_choices_cleared(
        client, admin_headers):
    _only_in_id(client, admin_headers)
    cart = ready_cart(client, "ID", {"BATIK-SHIRT-M": 2, "TEA-JAVA-BLACK": 1, ONLY_ID: 1})
    assert cart["delivery"] is not None and cart["address"]["country"] == "ID"

    r = _move(client, cart["id"], "DE", channel="app")
    assert r.status_code == 200, r.text
    moved = assert_cart(r.json())
    de = markets_toml()["DE"]
    assert (moved["id"], moved["market"], moved["currency"]) == (cart["id"], "DE", "EUR")
    assert moved["prices_include_tax"] is de["prices_include_tax"]
    assert moved["version"] == cart["version"] + 1
    assert moved["channels"] == ["web", "app"]
    assert _quantities(moved) == {"BATIK-SHIRT-M": 2, "TEA-JAVA-BLACK": 1}
    for line in moved["lines"]:
        product = catalog_product(line["sku"])
        assert minor(line["unit_price"]) == _catalog_price(line["sku"], "DE")
        assert line["unit_price"]["currency"] == "EUR"
        assert line["name"] == product["names"]["de-DE"]
        assert minor(line["tax"]) == tax_on(minor(line["subtotal"]),
                                           vat_rate("DE", product["tax_class"]), included=True)
    assert minor(moved["tax_total"]) == sum(minor(li["tax"]) for li in moved["lines"])
    assert minor(moved["shipping_total"]) == 0
    assert (moved["delivery"], moved["address"], moved["loyalty"]) == (None, None, None)
    assert _warnings(moved) == {("not_sold", ONLY_ID), ("delivery_cleared", None),
                                ("address_cleared", None)}
    # stored so: a read shows the same, warnings included, until the next change
    assert client.get(f"/carts/{cart['id']}").json() == r.json()
    again = set_address(client, cart["id"], ADDRESSES["DE"])
    assert again["warnings"] == [] and again["currency"] == "EUR"
    options = client.get(f"/carts/{cart['id']}/delivery-options").json()
    assert options and {o["price"]["currency"] for o in options} == {"EUR"}
    client.put(f"/carts/{cart['id']}/delivery", json={"option_id": options[0]["id"]})
    r = checkout(client, cart["id"])
    assert r.status_code == 201, r.text
    order = assert_order(r.json())
    assert (order["market"], order["currency"]) == ("DE", "EUR")
    # a checked-out cart stays where it is
    before = client.get(f"/carts/{cart['id']}").json()
    assert_problem(_move(client, cart["id"], "ID"), 409)
    assert client.get(f"/carts/{cart['id']}").json() == before


def test_a_move_keeps_converted_prices_and_caps_quantities_by_the_new_markets_stock(
        client, admin_headers):
    us_sambal = sum(seeded_stock(SAMBAL, "US").values())
    assert 0 < us_sambal < availability(client, SAMBAL, "ID")["available"]
    # coffee is sold in the US but none is left there
    for loc in seeded_stock("COFFEE-GAYO-250", "US"):
        r = client.put(f"/admin/inventory/COFFEE-GAYO-250/{loc}", json={"on_hand": 0},
                       headers=admin_headers)
        assert r.status_code == 200, r.text
    cart = new_cart(client, "ID")
    add_line(client, cart["id"], SAMBAL, us_sambal + 1)
    cart = add_line(client, cart["id"], "COFFEE-GAYO-250", 1)

    r = _move(client, cart["id"], "US")
    assert r.status_code == 200, r.text
    moved = assert_cart(r.json())
    assert (moved["market"], moved["currency"], moved["prices_include_tax"]) == (
        "US", "USD", False)
    assert moved["tax_estimated"] is True  # US sales tax waits for an address
    assert _quantities(moved) == {SAMBAL: us_sambal}
    assert _warnings(moved) == {("quantity_reduced", SAMBAL),
                                ("out_of_stock", "COFFEE-GAYO-250")}
    fx = markets_toml()["US"]["plugins"]["fx"]
    exact = (Fraction(Decimal(catalog_product(SAMBAL)["prices"][fx["base_market"]]))
             * Fraction(Decimal(fx["rates"]["USD"])) * 10 ** DIGITS["USD"])
    [line] = moved["lines"]
    assert line["unit_price"] == {"amount": fmt(int(exact + Fraction(1, 2)), "USD"),
                                  "currency": "USD"}
    assert line["fx"]["base_currency"] == "IDR"


def test_bad_moves_are_refused_and_change_nothing(client):
    cart = new_cart(client, "ID", "social")
    cart = add_line(client, cart["id"], "TEA-JAVA-BLACK", 1)
    before = client.get(f"/carts/{cart['id']}").json()
    assert_problem(_move(client, cart["id"], "XX"), 422, "market")
    assert_problem(_move(client, cart["id"], "Indonesia"), (400, 422), "market")
    assert_problem(client.put(f"/carts/{cart['id']}/market", json={}), (400, 422), "market")
    # the channel must be one of the NEW market's: the US sells on no social channel
    assert "social" not in markets_toml()["US"]["channels"]
    assert_problem(_move(client, cart["id"], "US", channel="social"), 422, "Niaga-Channel")
    assert_problem(_move(client, cart["id"], "US", channel="fax"), 422, "Niaga-Channel")
    assert_problem(_move(client, "AAAAAAAAAAAAAAAAAAAAAA", "DE"), 404)
    assert client.get(f"/carts/{cart['id']}").json() == before
    # the same market: nothing to do
    r = _move(client, cart["id"], "ID")
    assert r.status_code == 200 and r.json()["version"] == before["version"]
    # checked against the new market, not the old one
    us = new_cart(client, "US")
    r = _move(client, us["id"], "ID", channel="social")
    assert r.status_code == 200, r.text
    assert r.json()["channels"] == ["web", "social"] and r.json()["currency"] == "IDR"


def test_points_on_a_moved_cart_are_cleared(client, admin_headers):
    c = _customer(client, admin_headers, "lima@example.com")

    async def grant() -> None:
        await niaga_of(client).store.loyalty_apply([LedgerEntry(
            id=f"grant:{c['id']}", customer_id=c["id"], points=1000, kind="adjust")])

    client.blocking_portal.call(grant)
    cart = new_cart(client, "DE", headers=_auth(c))
    add_line(client, cart["id"], "SANDAL-LEATHER-42", 1)
    points = markets_toml()["DE"]["plugins"]["points"]["min_points"]
    r = client.put(f"/carts/{cart['id']}/loyalty", json={"points": points}, headers=_auth(c))
    assert r.status_code == 200, r.text
    assert r.json()["loyalty"]["points"] == points and minor(r.json()["discount_total"]) > 0

    r = _move(client, cart["id"], "ID")
    assert r.status_code == 200, r.text
    moved = assert_cart(r.json())
    assert moved["loyalty"] is None and minor(moved["discount_total"]) == 0
    assert _warnings(moved) == {("loyalty_cleared", None)}
    assert minor(moved["lines"][0]["unit_price"]) == _catalog_price("SANDAL-LEATHER-42", "ID")
    # it is still the customer's one cart, now in Indonesia
    assert client.get("/me/cart", params={"market": "ID"},
                      headers=_auth(c)).json()["id"] == cart["id"]
    assert_problem(client.get("/me/cart", params={"market": "DE"}, headers=_auth(c)), 404)


def test_a_customer_cart_moved_where_the_customer_has_one_is_merged_into_it(
        client, admin_headers):
    c = _customer(client, admin_headers, "enam@example.com")
    _only_in_id(client, admin_headers)
    mine = new_cart(client, "ID", headers=_auth(c))
    add_line(client, mine["id"], "TEA-JAVA-BLACK", 1)
    add_line(client, mine["id"], ONLY_ID, 1)
    trip = new_cart(client, "DE", "app", headers=_auth(c))
    add_line(client, trip["id"], "TEA-JAVA-BLACK", 2)
    add_line(client, trip["id"], "BATIK-SHIRT-M", 1)
    assert markets_toml()["ID"].get("cart_merge", "add") == "add"

    r = _move(client, trip["id"], "ID", channel="app")
    assert r.status_code == 200, r.text
    merged = assert_cart(r.json())
    want = {"TEA-JAVA-BLACK": 3, ONLY_ID: 1, "BATIK-SHIRT-M": 1}  # quantities add
    assert (merged["id"], merged["currency"]) == (mine["id"], "IDR")
    assert _quantities(merged) == want
    assert set(merged["channels"]) == {"web", "app"}
    for line in merged["lines"]:
        if line["sku"] != ONLY_ID:
            assert minor(line["unit_price"]) == _catalog_price(line["sku"], "ID")
    closed = client.get(f"/carts/{trip['id']}").json()
    assert (closed["status"], closed["merged_into"], closed["market"]) == (
        "merged", mine["id"], "DE")
    assert_problem(client.get("/me/cart", params={"market": "DE"}, headers=_auth(c)), 404)
    assert client.get("/me/cart", params={"market": "ID"},
                      headers=_auth(c)).json()["id"] == mine["id"]
    # a replayed move answers the same cart without adding twice
    r = _move(client, trip["id"], "ID", channel="app")
    assert r.status_code == 200 and r.json()["id"] == mine["id"]
    assert _quantities(r.json()) == want
    # lines the target market does not sell are left out, and said so
    back = new_cart(client, "DE", headers=_auth(c))
    add_line(client, back["id"], "COFFEE-GAYO-250", 1)
    r = _move(client, mine["id"], "DE")
    assert r.status_code == 200, r.text
    de = assert_cart(r.json())
    assert de["id"] == back["id"] and de["currency"] == "EUR"
    assert _quantities(de) == {"COFFEE-GAYO-250": 1, "TEA-JAVA-BLACK": 3, "BATIK-SHIRT-M": 1}
    assert _warnings(de) == {("not_sold", ONLY_ID)}


def test_a_move_racing_a_line_from_another_channel_loses_neither(client):
    import asyncio

    from kernel.services import carts

    niaga = niaga_of(client)
    cart = new_cart(client, "ID")
    cart = add_line(client, cart["id"], "TEA-JAVA-BLACK", 1)

    async def race() -> list:
        return await asyncio.gather(
            carts.move_market(niaga, cart["id"], "DE", "app"),
            carts.add_line(niaga, cart["id"], "COFFEE-GAYO-250", 1, "pos"),
            return_exceptions=True)

    results = client.blocking_portal.call(race)
    assert not [r for r in results if isinstance(r, BaseException)], results
    final = assert_cart(client.get(f"/carts/{cart['id']}").json())
    # in either order: the coffee is in the cart, and the cart is in Germany
    assert (final["market"], final["currency"]) == ("DE", "EUR")
    assert _quantities(final) == {"TEA-JAVA-BLACK": 1, "COFFEE-GAYO-250": 1}
    assert final["version"] == cart["version"] + 2
    assert set(final["channels"]) == {"web", "app", "pos"}
    for line in final["lines"]:
        assert minor(line["unit_price"]) == _catalog_price(line["sku"], "DE")
