"""Localisation over HTTP: prices converted by fx with the rate snapshot kept on the order,
money displayed for the request's locale, and names through the translation fallback chain."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from .helpers import (
    assert_problem,
    catalog_product,
    catalog_toml,
    checkout,
    fmt,
    markets_toml,
    ready_cart,
)

SAMBAL = "SAMBAL-MATAH-JAR"


def _fx_expected(sku: str, market: str = "US") -> tuple[str, dict[str, str]]:
    """(amount, snapshot) the market's fx settings give ``sku``, computed from the files."""
    fx = markets_toml()[market]["plugins"]["fx"]
    base_market, currency = fx["base_market"], markets_toml()[market]["currency"]
    base_currency = markets_toml()[base_market]["currency"]
    base = catalog_product(sku)["prices"][base_market]
    rate = fx["rates"][currency]
    exact = Fraction(Decimal(base)) * Fraction(Decimal(rate)) * 100  # USD cents
    assert markets_toml()[market]["money"]["rounding_mode"] == "half-up"
    amount = int(exact + Fraction(1, 2))
    return fmt(amount, currency), {"base": f"{Decimal(base):.2f}",
                                   "base_currency": base_currency, "rate": rate,
                                   "source": "fx:markets-file"}


def test_an_order_of_a_converted_product_keeps_the_rate_snapshot_on_its_line(client):
    amount, snapshot = _fx_expected(SAMBAL)
    assert (amount, snapshot["base"], snapshot["rate"]) == ("2.46", "39000.00", "0.000063")
    cart = ready_cart(client, "US", {SAMBAL: 2, "COFFEE-GAYO-250": 1})
    lines = {li["sku"]: li for li in cart["lines"]}
    assert lines[SAMBAL]["unit_price"] == {"amount": amount, "currency": "USD"}
    assert lines[SAMBAL]["fx"] == snapshot
    assert lines["COFFEE-GAYO-250"]["fx"] is None  # a catalog price: no snapshot
    r = checkout(client, cart["id"])
    assert r.status_code == 201, r.text
    order = r.json()
    line = next(li for li in order["lines"] if li["sku"] == SAMBAL)
    assert line["fx"] == snapshot and line["unit_price"]["amount"] == amount
    assert line["subtotal"]["amount"] == fmt(2 * 246, "USD")
    stored = client.get(f"/orders/{order['id']}").json()
    assert next(li for li in stored["lines"] if li["sku"] == SAMBAL)["fx"] == snapshot


def test_a_market_without_fx_still_refuses_a_product_it_has_no_price_for(client,
                                                                          admin_headers):
    r = client.put("/admin/products/ONLY-IN-JP", headers=admin_headers,
                   json={"names": {"ja-JP": "日本だけ"},
                         "prices": {"JP": {"amount": "500", "currency": "JPY"}}})
    assert r.status_code in (200, 201), r.text
    cart = client.post("/carts", json={"market": "DE"}).json()
    assert_problem(client.post(f"/carts/{cart['id']}/lines",
                               json={"sku": "ONLY-IN-JP", "quantity": 1}), 422)


def _display(amount: str, *, thousands: str, decimal: str) -> str:
    whole, _, frac = amount.partition(".")
    groups = []
    while len(whole) > 3:
        whole, groups = whole[:-3], [whole[-3:], *groups]
    return thousands.join([whole, *groups]) + (decimal + frac if frac else "")


def test_german_storefront_has_german_names_and_euro_displays(client):
    r = client.get("/products", params={"market": "DE", "locale": "de-DE"})
    assert r.status_code == 200
    products = r.json()
    assert products
    for p in products:
        conf = catalog_product(p["sku"])
        assert p["locale"] == "de-DE"
        assert p["name"] == conf["names"]["de-DE"]
        assert p["description"] == conf["descriptions"]["de-DE"]
        # German: 1.234,56 € (a no-break space before the sign)
        expected = _display(p["price"]["amount"], thousands=".", decimal=",") + "\xa0€"
        assert p["price"]["display"] == expected, p["price"]


def test_displays_follow_the_requested_locale_within_the_market(client):
    coffee = "COFFEE-GAYO-250"
    base = catalog_product(coffee)["prices"]["ID"]
    amount = fmt(int(base) * 100, "IDR")
    in_id = client.get(f"/products/{coffee}", params={"market": "ID", "locale": "id-ID"}).json()
    assert in_id["price"]["display"] == "Rp" + _display(amount, thousands=".", decimal=",")
    in_en = client.get(f"/products/{coffee}", params={"market": "ID", "locale": "en-US"}).json()
    assert in_en["price"]["display"] == "IDR" + _display(amount, thousands=",", decimal=".")
    assert in_en["name"] == catalog_product(coffee)["names"]["en-US"]
    us = client.get(f"/products/{SAMBAL}", params={"market": "US"}).json()
    assert us["price"]["display"] == "$" + _fx_expected(SAMBAL)[0]  # converted, displayed


def test_a_locale_the_market_does_not_speak_falls_back_to_the_markets_default(client):
    sku = catalog_toml()["products"][0]["sku"]
    for asked in ("ja-JP", "xx-YY", None):
        params = {"market": "DE"} | ({"locale": asked} if asked else {})
        p = client.get(f"/products/{sku}", params=params).json()
        assert p["locale"] == "de-DE", asked
        assert p["name"] == catalog_product(sku)["names"]["de-DE"]
        assert p["price"]["display"].endswith("\xa0€")
    # the same language in another region is spoken: de-AT is served as de-DE
    assert client.get(f"/products/{sku}", params={"market": "DE", "locale": "de-AT"}).json()[
        "locale"] == "de-DE"


def test_names_missing_in_a_locale_follow_the_fallback_chain(client, admin_headers):
    def put(sku: str, names: dict[str, str]) -> None:
        r = client.put(f"/admin/products/{sku}", headers=admin_headers,
                       json={"names": names, "descriptions": names,
                             "prices": {"JP": {"amount": "500", "currency": "JPY"}}})
        assert r.status_code in (200, 201), r.text

    def name(sku: str, locale: str) -> str:
        p = client.get(f"/products/{sku}", params={"market": "JP", "locale": locale}).json()
        assert p["description"] == p["name"]
        return p["name"]

    put("FB-REGION", {"ja-JP": "日本語", "en-GB": "British"})
    assert name("FB-REGION", "en-US") == "British"  # same language, another region
    put("FB-MARKET", {"en-US": "English", "de-DE": "Deutsch"})
    assert name("FB-MARKET", "ja-JP") == "English"  # the market's next locale (en-US)
    put("FB-ANY", {"id-ID": "Bahasa"})
    assert name("FB-ANY", "ja-JP") == "Bahasa"  # whatever there is, rather than nothing


def test_admin_set_rates_reprice_converted_products_and_mark_the_snapshot(client,
                                                                          admin_headers):
    r = client.put("/admin/fx/rates", json={"base": "IDR", "rates": {"USD": "0.0001"}},
                   headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["IDR"]["USD"] == "0.0001"
    base = Decimal(catalog_product(SAMBAL)["prices"]["ID"])
    expected = fmt(int(Fraction(base) * Fraction("0.0001") * 100 + Fraction(1, 2)), "USD")
    listed = client.get(f"/products/{SAMBAL}", params={"market": "US"}).json()
    assert listed["price"]["amount"] == expected  # the admin rate wins over the file's
    cart = ready_cart(client, "US", {SAMBAL: 1})
    order = checkout(client, cart["id"]).json()
    line = next(li for li in order["lines"] if li["sku"] == SAMBAL)
    assert line["unit_price"]["amount"] == expected
    assert line["fx"]["rate"] == "0.0001" and line["fx"]["source"] == "fx:admin"


def test_bad_admin_rates_are_422_naming_the_field_and_change_nothing(client, admin_headers):
    before = client.get("/admin/fx/rates", headers=admin_headers).json()
    for body, field in [({"base": "IDR", "rates": {"USD": "-1"}}, "rates.USD"),
                        ({"base": "IDR", "rates": {"XQZ": "1"}}, "rates.XQZ"),
                        ({"base": "IDR", "rates": {"IDR": "1"}}, "rates.IDR")]:
        r = client.put("/admin/fx/rates", json=body, headers=admin_headers)
        assert_problem(r, (400, 422), field)
    assert client.get("/admin/fx/rates", headers=admin_headers).json() == before
    assert client.put("/admin/fx/rates", json={"base": "IDR", "rates": {"USD": "1"}}
                      ).status_code == 401
