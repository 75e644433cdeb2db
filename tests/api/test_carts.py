"""Carts: lines, address, delivery, payment methods, and the money on every Cart response."""

from __future__ import annotations

from decimal import Decimal

from .helpers import (
    ADDRESSES,
    add_line,
    assert_cart,
    assert_problem,
    availability,
    delivery_options,
    markets_toml,
    minor,
    new_cart,
    set_address,
    set_delivery,
    tax_on,
    us_state_rates,
    vat_rate,
)


def _price(client, sku: str, market: str) -> dict:
    r = client.get(f"/products/{sku}", params={"market": market})
    assert r.status_code == 200, r.text
    return r.json()


def _tax_class(client, sku: str) -> str:
    return _price(client, sku, "ID")["tax_class"]


def _flat_rate(market: str) -> dict[str, int]:
    """option id -> price in minor units, from the market's flat-rate settings."""
    conf = markets_toml()[market]
    digits = 0 if conf["currency"] == "JPY" else 2
    return {f"flat-rate:{o['id']}": int(Decimal(o["price"]).scaleb(digits))
            for o in conf["plugins"]["flat-rate"]["options"]}


def _free_above(market: str) -> int:
    conf = markets_toml()[market]
    digits = 0 if conf["currency"] == "JPY" else 2
    return int(Decimal(conf["plugins"]["flat-rate"]["free_above"]).scaleb(digits))


def test_create_cart_returns_201_and_the_cart_shape(client):
    r = client.post("/carts", json={"market": "ID", "channel": "web"})
    assert r.status_code == 201
    cart = assert_cart(r.json())
    assert cart["market"] == "ID" and cart["channel"] == "web"
    assert cart["currency"] == "IDR"
    assert cart["customer_id"] is None
    assert cart["status"] == "open"
    assert isinstance(cart["version"], int)
    assert cart["lines"] == [] and cart["adjustments"] == []
    assert cart["address"] is None and cart["delivery"] is None and cart["loyalty"] is None
    assert cart["prices_include_tax"] is True
    assert minor(cart["total"]) == 0
    # ids are unguessable: 128 random bits are at least 22 url-safe characters
    other = new_cart(client, "ID")
    assert len(cart["id"]) >= 22 and other["id"] != cart["id"]
    assert client.get(f"/carts/{cart['id']}").json() == cart
    # the channel defaults to web; US prices exclude tax
    r = client.post("/carts", json={"market": "US"})
    assert r.status_code == 201
    assert r.json()["channel"] == "web" and r.json()["prices_include_tax"] is False


def test_lines_add_update_remove(client):
    cart = new_cart(client, "ID")
    cid = cart["id"]
    shirt = _price(client, "BATIK-SHIRT-M", "ID")["price"]
    tea = _price(client, "TEA-JAVA-BLACK", "ID")["price"]

    cart = add_line(client, cid, "BATIK-SHIRT-M", 1)
    cart = add_line(client, cid, "BATIK-SHIRT-M", 2)  # the same SKU adds to its line
    assert len(cart["lines"]) == 1
    line = cart["lines"][0]
    assert line["sku"] == "BATIK-SHIRT-M" and line["quantity"] == 3
    assert line["unit_price"]["amount"] == shirt["amount"]
    assert minor(line["subtotal"]) == 3 * minor(shirt)
    assert line["name"]  # localised name from the catalog

    cart = add_line(client, cid, "TEA-JAVA-BLACK", 2)
    assert [li["sku"] for li in cart["lines"]] == ["BATIK-SHIRT-M", "TEA-JAVA-BLACK"]
    assert minor(cart["subtotal"]) == 3 * minor(shirt) + 2 * minor(tea)
    shirt_id, tea_id = (li["id"] for li in cart["lines"])

    r = client.patch(f"/carts/{cid}/lines/{shirt_id}", json={"quantity": 5})
    assert r.status_code == 200
    cart = assert_cart(r.json())
    assert {li["sku"]: li["quantity"] for li in cart["lines"]} == {"BATIK-SHIRT-M": 5,
                                                                  "TEA-JAVA-BLACK": 2}
    assert minor(cart["subtotal"]) == 5 * minor(shirt) + 2 * minor(tea)

    r = client.patch(f"/carts/{cid}/lines/{tea_id}", json={"quantity": 0})  # 0 removes
    assert r.status_code == 200
    cart = assert_cart(r.json())
    assert [li["id"] for li in cart["lines"]] == [shirt_id]

    r = client.delete(f"/carts/{cid}/lines/{shirt_id}")
    assert r.status_code == 200
    cart = assert_cart(r.json())
    assert cart["lines"] == [] and minor(cart["total"]) == 0
    assert client.get(f"/carts/{cid}").json() == cart

    assert_problem(client.patch(f"/carts/{cid}/lines/{shirt_id}", json={"quantity": 1}), 404)
    assert_problem(client.delete(f"/carts/{cid}/lines/no-such-line"), 404)


def test_address_and_indonesian_delivery_options_ship_and_pickup(client):
    cart = new_cart(client, "ID")
    cid = cart["id"]
    add_line(client, cid, "BATIK-SHIRT-M", 3)
    cart = set_address(client, cid, ADDRESSES["ID"])
    assert {k: v for k, v in cart["address"].items() if v is not None} == ADDRESSES["ID"]

    options = delivery_options(client, cid)
    for o in options:
        assert set(o) >= {"id", "kind", "carrier", "label", "price"}
        assert o["kind"] in ("ship", "pickup")
        assert o["price"]["currency"] == "IDR"
    ship = {o["id"]: o for o in options if o["kind"] == "ship" and o["carrier"] == "flat-rate"}
    pickup = {o["location_id"]: o for o in options
              if o["kind"] == "pickup" and o["carrier"] == "store-pickup"}
    free = minor(cart["subtotal"]) >= _free_above("ID")
    assert free  # 3 shirts are above the free-shipping threshold
    assert {k: minor(o["price"]) for k, o in ship.items()} == dict.fromkeys(_flat_rate("ID"), 0)
    # pickup: exactly the stores whose own stock covers the cart (3 shirts)
    stores = {loc["id"]: loc["available"]
              for loc in availability(client, "BATIK-SHIRT-M", "ID")["locations"]
              if loc["kind"] == "store"}
    assert set(pickup) == {loc for loc, n in stores.items() if n >= 3}
    assert "id-jkt-store-gi" in stores and "id-jkt-store-gi" not in pickup  # only 2 there
    assert all(minor(o["price"]) == 0 for o in pickup.values())

    # with 2 shirts Grand Indonesia can fill the cart
    line_id = cart["lines"][0]["id"]
    client.patch(f"/carts/{cid}/lines/{line_id}", json={"quantity": 2})
    pickup2 = {o["location_id"] for o in delivery_options(client, cid)
               if o["carrier"] == "store-pickup"}
    assert pickup2 == {loc for loc, n in stores.items() if n >= 2}
    assert "id-jkt-store-gi" in pickup2

    # a mixed cart: every line must be in stock at the store
    add_line(client, cid, "CANDLE-SOY-PANDAN", 4)
    candles = {loc["id"]: loc["available"]
               for loc in availability(client, "CANDLE-SOY-PANDAN", "ID")["locations"]}
    pickup3 = {o["location_id"] for o in delivery_options(client, cid)
               if o["carrier"] == "store-pickup"}
    assert pickup3 == {loc for loc, n in stores.items() if n >= 2 and candles[loc] >= 4}
    assert "id-jkt-store-kokas" not in pickup3  # 3 candles there


def test_choosing_delivery_adds_shipping_and_tax_on_it(client):
    cart = new_cart(client, "ID")
    cid = cart["id"]
    add_line(client, cid, "TEA-JAVA-BLACK", 2)
    cart = add_line(client, cid, "COFFEE-GAYO-250", 1)
    set_address(client, cid, ADDRESSES["ID"])
    rate = vat_rate("ID", "standard")
    line_tax = sum(tax_on(minor(li["subtotal"]), vat_rate("ID", _tax_class(client, li["sku"])),
                          included=True) for li in cart["lines"])
    assert minor(cart["tax_total"]) == line_tax

    express = "flat-rate:express"
    cart = set_delivery(client, cid, express)
    ship = _flat_rate("ID")[express]
    assert cart["delivery"]["option_id"] == express
    assert cart["delivery"]["kind"] == "ship"
    assert minor(cart["shipping_total"]) == ship
    assert minor(cart["tax_total"]) == line_tax + tax_on(ship, rate, included=True)
    # prices include tax: the total is goods + shipping
    assert minor(cart["total"]) == minor(cart["subtotal"]) + ship
    sources = {(a["kind"], a["source"]) for a in cart["adjustments"]}
    assert ("shipping", "flat-rate") in sources and ("tax", "vat") in sources

    # pickup is free and untaxed delivery
    pickup = next(o for o in delivery_options(client, cid) if o["carrier"] == "store-pickup")
    cart = set_delivery(client, cid, pickup["id"])
    assert cart["delivery"]["kind"] == "pickup"
    assert cart["delivery"]["location_id"] == pickup["location_id"]
    assert minor(cart["shipping_total"]) == 0
    assert minor(cart["tax_total"]) == line_tax

    assert_problem(client.put(f"/carts/{cid}/delivery", json={"option_id": "flat-rate:nope"}),
                   422, "option_id")


def test_free_shipping_above_the_threshold(client):
    cart = new_cart(client, "DE")
    cid = cart["id"]
    unit = minor(_price(client, "SARONG-TENUN", "DE")["price"])
    qty = _free_above("DE") // unit + 1
    add_line(client, cid, "SARONG-TENUN", qty)
    set_address(client, cid, ADDRESSES["DE"])
    options = [o for o in delivery_options(client, cid) if o["carrier"] == "flat-rate"]
    assert options and all(minor(o["price"]) == 0 for o in options)


def test_payment_methods_per_market(client, admin_headers):
    families = {p["name"]: p["family"]
                for p in client.get("/admin/plugins", headers=admin_headers).json()}
    for market, conf in markets_toml().items():
        cart = new_cart(client, market)
        r = client.get(f"/carts/{cart['id']}/payment-methods")
        assert r.status_code == 200
        for m in r.json():
            assert set(m) >= {"id", "gateway", "label", "kind"}
        kinds = {m["id"]: m["kind"] for m in r.json()}
        # one method per payment plugin the market runs
        assert set(kinds) == {n for n in conf["plugins"] if families.get(n) == "payment"}
        assert kinds["testpay"] == "card"
        assert kinds.get("bank-transfer", "bank_transfer") == "bank_transfer"
    us = {m["id"] for m in client.get(
        f"/carts/{new_cart(client, 'US')['id']}/payment-methods").json()}
    assert "bank-transfer" not in us  # the demo offers no transfers in the US


def test_us_tax_waits_for_a_state_and_is_added_on_top(client):
    cart = new_cart(client, "US")
    cid = cart["id"]
    add_line(client, cid, "BATIK-SHIRT-M", 1)
    cart = add_line(client, cid, "TEA-JAVA-BLACK", 2)
    assert cart["prices_include_tax"] is False
    assert cart["tax_estimated"] is True
    assert minor(cart["tax_total"]) == 0
    assert minor(cart["total"]) == minor(cart["subtotal"])

    # an address without a state: still estimated
    cart = set_address(client, cid, {"country": "US", "city": "Somewhere"})
    assert cart["tax_estimated"] is True and minor(cart["tax_total"]) == 0

    for state in ("CA", "NY"):
        cart = set_address(client, cid, {**ADDRESSES["US"], "region": state})
        rate, ship_taxable = us_state_rates()[state]
        assert cart["tax_estimated"] is False
        line_taxes = [tax_on(minor(li["subtotal"]), rate, included=False)
                      for li in cart["lines"]]
        assert [minor(li["tax"]) for li in cart["lines"]] == line_taxes
        assert minor(cart["tax_total"]) == sum(line_taxes)
        assert minor(cart["total"]) == minor(cart["subtotal"]) + sum(line_taxes)
        for li in cart["lines"]:
            assert minor(li["total"]) == minor(li["subtotal"]) + minor(li["tax"])
        assert {a["source"] for a in cart["adjustments"] if a["kind"] == "tax"} == {
            "us-sales-tax"}

        ground = "flat-rate:ground"
        cart = set_delivery(client, cid, ground)
        ship = _flat_rate("US")[ground]
        assert minor(cart["subtotal"]) < _free_above("US")
        ship_tax = tax_on(ship, rate, included=False) if ship_taxable else 0
        assert minor(cart["shipping_total"]) == ship
        assert minor(cart["tax_total"]) == sum(line_taxes) + ship_tax
        assert minor(cart["total"]) == minor(cart["subtotal"]) + ship + sum(line_taxes) + ship_tax


def test_japan_rounds_tax_once_per_rate_and_amounts_have_no_decimals(client):
    cart = new_cart(client, "JP")
    cid = cart["id"]
    add_line(client, cid, "COFFEE-GAYO-250", 1)
    add_line(client, cid, "TEA-JAVA-BLACK", 1)
    cart = add_line(client, cid, "BATIK-SHIRT-M", 1)
    set_address(client, cid, ADDRESSES["JP"])
    cart = set_delivery(client, cid, "flat-rate:yamato")
    for key in ("subtotal", "shipping_total", "tax_total", "total"):
        assert "." not in cart[key]["amount"]
    by_class: dict[str, int] = {}
    for li in cart["lines"]:
        tax_class = _tax_class(client, li["sku"])
        by_class[tax_class] = by_class.get(tax_class, 0) + minor(li["subtotal"])
    by_class["standard"] += minor(cart["shipping_total"])
    expected = sum(tax_on(amount, vat_rate("JP", c), included=True)
                   for c, amount in by_class.items())
    assert minor(cart["tax_total"]) == expected
    assert minor(cart["total"]) == minor(cart["subtotal"]) + minor(cart["shipping_total"])


def test_every_cart_response_keeps_the_totals_invariant(client):
    """Walk a cart through every mutation; each Cart response is checked by assert_cart."""
    for market in ("ID", "DE", "US", "JP"):
        cart = new_cart(client, market)
        cid = cart["id"]
        add_line(client, cid, "BATIK-SHIRT-L", 2)
        cart = add_line(client, cid, "COOKBOOK-NUSANTARA", 1)
        r = client.patch(f"/carts/{cid}/lines/{cart['lines'][0]['id']}", json={"quantity": 1})
        assert_cart(r.json())
        set_address(client, cid, ADDRESSES[market])
        ship = next(o for o in delivery_options(client, cid) if o["kind"] == "ship")
        cart = set_delivery(client, cid, ship["id"])
        assert_cart(client.get(f"/carts/{cid}").json())
        r = client.delete(f"/carts/{cid}/lines/{cart['lines'][1]['id']}")
        assert_cart(r.json())


def test_the_chosen_delivery_is_priced_as_currently_offered(client):
    cart = new_cart(client, "ID")
    cid = cart["id"]
    unit = minor(_price(client, "BATIK-SHIRT-M", "ID")["price"])
    above = _free_above("ID") // unit + 1
    cart = add_line(client, cid, "BATIK-SHIRT-M", above)
    line_id = cart["lines"][0]["id"]
    set_address(client, cid, ADDRESSES["ID"])
    cart = set_delivery(client, cid, "flat-rate:regular")
    assert minor(cart["shipping_total"]) == 0  # free above the threshold

    def consistent(cart: dict) -> None:
        if cart["delivery"] is None:  # dropping the choice is a fine answer too
            return
        offered = {o["id"]: minor(o["price"]) for o in delivery_options(client, cid)}
        assert minor(cart["shipping_total"]) == offered[cart["delivery"]["option_id"]]

    # below the threshold now: shipping must cost what regular costs again
    r = client.patch(f"/carts/{cid}/lines/{line_id}", json={"quantity": 1})
    cart = assert_cart(r.json())
    assert minor(cart["subtotal"]) < _free_above("ID")
    consistent(cart)
    consistent(client.get(f"/carts/{cid}").json())


def test_every_channel_that_touches_a_cart_is_on_it_and_on_its_order(client):
    """Browse on the web, continue in the app, pay at the store's till: one cart, one order
    that names the channel that made it and every channel that touched it."""
    cart = new_cart(client, "ID", "web")
    sku = next(s for s in ("BATIK-SHIRT-M", "COFFEE-GAYO-250")
               if availability(client, s, "ID")["available"] > 0)
    app, pos = {"Niaga-Channel": "app"}, {"Niaga-Channel": "pos"}
    r = client.post(f"/carts/{cart['id']}/lines", json={"sku": sku, "quantity": 1},
                    headers=app)
    assert r.status_code == 200, r.text
    assert r.json()["channels"] == ["web", "app"] and r.json()["channel"] == "web"
    set_address(client, cart["id"], ADDRESSES["ID"])
    pickup = next(o for o in delivery_options(client, cart["id"]) if o["kind"] == "pickup")
    r = client.put(f"/carts/{cart['id']}/delivery", json={"option_id": pickup["id"]},
                   headers=app)
    assert r.status_code == 200 and r.json()["channels"] == ["web", "app"], r.text

    # a channel that is not one at all, and one the market does not sell through: 422
    # naming the header, and the cart is left as it was
    before = client.get(f"/carts/{cart['id']}").json()
    assert_problem(client.post(f"/carts/{cart['id']}/lines", json={"sku": sku, "quantity": 1},
                               headers={"Niaga-Channel": "fax"}), 422, "Niaga-Channel")
    us = new_cart(client, "US", "web")
    assert "social" not in markets_toml()["US"]["channels"]
    assert_problem(client.post(f"/carts/{us['id']}/lines", json={"sku": sku, "quantity": 1},
                               headers={"Niaga-Channel": "social"}), 422, "Niaga-Channel")
    assert client.get(f"/carts/{cart['id']}").json() == before

    r = client.post(f"/carts/{cart['id']}/checkout", headers={**pos, "Idempotency-Key": "till-1"},
                    json={"payment": {"method": "testpay", "token": "tok_ok"}})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["channel"] == "web" and order["channels"] == ["web", "app", "pos"]
    assert client.get(f"/carts/{cart['id']}").json()["channels"] == ["web", "app", "pos"]
