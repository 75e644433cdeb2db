"""Storefront reads: markets, the localised catalog, availability per location."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from .helpers import (
    DIGITS,
    assert_money,
    assert_problem,
    availability,
    catalog_product,
    catalog_toml,
    fmt,
    markets_toml,
    seeded_stock,
)


def test_markets_list_every_configured_market_with_the_contract_fields(client):
    r = client.get("/markets")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    configured = markets_toml()
    assert {m["code"] for m in body} == set(configured)
    for m in body:
        assert set(m) >= {"code", "name", "currency", "locales", "prices_include_tax",
                          "channels", "plugins"}
        conf = configured[m["code"]]
        assert m["name"] == conf["name"]
        assert m["currency"] == conf["currency"]
        assert m["locales"] == conf["locales"]
        assert m["prices_include_tax"] is conf["prices_include_tax"]
        assert m["channels"] == conf["channels"]
        assert sorted(m["plugins"]) == sorted(conf["plugins"])


def _priced_in(market: str) -> dict[str, dict]:
    return {p["sku"]: p for p in catalog_toml()["products"] if market in p["prices"]}


def _expected_amount(text: str, currency: str) -> str:
    digits = DIGITS[currency]
    whole, _, frac = text.partition(".")
    return whole if digits == 0 else f"{whole}.{frac.ljust(digits, '0')}"


def test_products_in_indonesia_have_indonesian_names_and_idr_prices_with_two_decimals(client):
    r = client.get("/products", params={"market": "ID", "locale": "id-ID"})
    assert r.status_code == 200
    products = r.json()
    expected = _priced_in("ID")
    assert {p["sku"] for p in products} == set(expected)
    for p in products:
        assert set(p) >= {"sku", "name", "price", "tax_class", "attributes"}
        conf = expected[p["sku"]]
        assert p["name"] == conf["names"]["id-ID"]
        assert p["price"]["currency"] == "IDR"
        assert re.fullmatch(r"\d+\.\d{2}", p["price"]["amount"]), p["price"]
        assert p["price"]["amount"] == _expected_amount(conf["prices"]["ID"], "IDR")
        assert p["tax_class"] == conf["tax_class"]
        assert p["attributes"] == {k: str(v) for k, v in conf["attributes"].items()}


def test_one_product_localised_in_indonesian(client):
    r = client.get("/products/BATIK-SHIRT-M", params={"market": "ID", "locale": "id-ID"})
    assert r.status_code == 200
    p = r.json()
    conf = _priced_in("ID")["BATIK-SHIRT-M"]
    assert p["sku"] == "BATIK-SHIRT-M"
    assert p["name"] == conf["names"]["id-ID"]
    assert p["price"] == {**p["price"], "amount": _expected_amount(conf["prices"]["ID"], "IDR"),
                          "currency": "IDR"}


def test_japanese_yen_amounts_have_no_decimal_point(client):
    r = client.get("/products", params={"market": "JP", "locale": "ja-JP"})
    assert r.status_code == 200
    expected = _priced_in("JP")
    assert {p["sku"] for p in r.json()} == set(expected)
    for p in r.json():
        assert p["price"]["currency"] == "JPY"
        assert re.fullmatch(r"\d+", p["price"]["amount"]), p["price"]
        assert p["price"]["amount"] == expected[p["sku"]]["prices"]["JP"]
        assert p["name"] == expected[p["sku"]]["names"]["ja-JP"]


def _converted(market: str) -> dict[str, str]:
    """sku -> the amount the market's fx plugin converts an unpriced product to, computed
    here from the markets file (exact fractions, the market's rounding mode)."""
    conf = markets_toml()[market]
    fx = conf["plugins"].get("fx")
    if fx is None:
        return {}
    base_market = fx["base_market"]
    currency = conf["currency"]
    rate = Fraction(Decimal(fx["rates"][currency])) * (100 + Fraction(
        Decimal(fx.get("markup_percent", "0")))) / 100
    half_even = conf.get("money", {}).get("rounding_mode") == "half-even"
    out = {}
    for sku, p in _priced_in(base_market).items():
        if market in p["prices"]:
            continue
        base = Fraction(Decimal(p["prices"][base_market]))  # major units
        exact = base * rate * 10 ** DIGITS[currency]
        amount = round(exact) if half_even else int(exact + Fraction(1, 2))
        out[sku] = fmt(amount, currency)
    return out


def test_other_markets_price_in_their_currency(client):
    for market, locale in (("DE", "de-DE"), ("US", "en-US")):
        currency = markets_toml()[market]["currency"]
        r = client.get("/products", params={"market": market, "locale": locale})
        assert r.status_code == 200
        expected = _priced_in(market)
        converted = _converted(market)
        assert {p["sku"] for p in r.json()} == set(expected) | set(converted)
        for p in r.json():
            assert_money(p["price"], currency)
            assert p["name"] == catalog_product(p["sku"])["names"][locale]
            if p["sku"] in converted:
                assert p["price"]["amount"] == converted[p["sku"]]
            else:
                assert p["price"]["amount"] == _expected_amount(
                    expected[p["sku"]]["prices"][market], currency)


def test_a_product_without_a_us_price_is_sold_in_the_us_converted_from_its_id_price(
        client, admin_headers):
    unpriced = [p["sku"] for p in catalog_toml()["products"] if "US" not in p["prices"]]
    assert "SAMBAL-MATAH-JAR" in unpriced
    converted = _converted("US")
    assert set(unpriced) == set(converted)  # the demo's fx converts every one of them
    assert converted["SAMBAL-MATAH-JAR"] == "2.46"  # IDR 39,000 x 0.000063 = 2.457, half-up
    listed = {p["sku"]: p for p in client.get("/products", params={"market": "US"}).json()}
    for sku in unpriced:
        assert listed[sku]["price"] == {**listed[sku]["price"], "amount": converted[sku],
                                        "currency": "USD"}
        one = client.get(f"/products/{sku}", params={"market": "US"})
        assert one.status_code == 200 and one.json()["price"]["amount"] == converted[sku]
    # a product with neither a US price nor an ID (base) price is still not sold in the US
    r = client.put("/admin/products/ONLY-IN-DE", headers=admin_headers,
                   json={"names": {"en-US": "Only in Germany"},
                         "prices": {"DE": {"amount": "5.00", "currency": "EUR"}}})
    assert r.status_code in (200, 201), r.text
    assert "ONLY-IN-DE" not in {p["sku"] for p in
                                client.get("/products", params={"market": "US"}).json()}
    assert_problem(client.get("/products/ONLY-IN-DE", params={"market": "US"}), 404)
    assert_problem(client.get("/products/ONLY-IN-DE", params={"market": "ID"}), 404)
    assert client.get("/products/ONLY-IN-DE", params={"market": "DE"}).status_code == 200


def test_unknown_product_is_404(client):
    assert_problem(client.get("/products/NO-SUCH-SKU", params={"market": "ID"}), 404)
    assert_problem(client.get("/products/NO-SUCH-SKU/availability",
                              params={"market": "ID"}), 404)


CASES = [("BATIK-SHIRT-M", "ID"), ("COBEK-STONE", "ID"), ("SANDAL-LEATHER-42", "DE"),
         ("COFFEE-TORAJA-250", "ID"), ("TEA-JAVA-BLACK", "US"), ("CANDLE-SOY-PANDAN", "JP")]


def test_availability_per_location_matches_the_seeded_stock(client):
    kinds = {loc["id"]: loc["kind"] for loc in catalog_toml()["locations"]}
    names = {loc["id"]: loc["name"] for loc in catalog_toml()["locations"]}
    for sku, market in CASES:
        body = availability(client, sku, market)
        assert body["sku"] == sku
        expected = seeded_stock(sku, market)
        assert {loc["id"] for loc in body["locations"]} == set(expected)
        for loc in body["locations"]:
            assert set(loc) >= {"id", "name", "kind", "available"}
            assert loc["kind"] in ("warehouse", "store")
            assert loc["kind"] == kinds[loc["id"]]
            assert loc["name"] == names[loc["id"]]
            assert loc["available"] == expected[loc["id"]]
        assert body["available"] == sum(expected.values())
        assert body["available"] == sum(loc["available"] for loc in body["locations"])
    kinds_id = {loc["kind"] for loc in availability(client, "BATIK-SHIRT-M", "ID")["locations"]}
    assert kinds_id == {"warehouse", "store"}
