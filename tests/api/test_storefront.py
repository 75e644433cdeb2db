"""Storefront reads: markets, the localised catalog, availability per location."""

from __future__ import annotations

import re

from .helpers import (
    DIGITS,
    assert_money,
    assert_problem,
    availability,
    catalog_toml,
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


def test_other_markets_price_in_their_currency(client):
    for market, locale in (("DE", "de-DE"), ("US", "en-US")):
        currency = markets_toml()[market]["currency"]
        r = client.get("/products", params={"market": market, "locale": locale})
        assert r.status_code == 200
        expected = _priced_in(market)
        assert {p["sku"] for p in r.json()} == set(expected)
        for p in r.json():
            assert_money(p["price"], currency)
            assert p["price"]["amount"] == _expected_amount(
                expected[p["sku"]]["prices"][market], currency)
            assert p["name"] == expected[p["sku"]]["names"][locale]


def test_a_product_without_a_us_price_is_not_sold_in_the_us(client):
    unpriced = [p["sku"] for p in catalog_toml()["products"] if "US" not in p["prices"]]
    assert "SAMBAL-MATAH-JAR" in unpriced
    listed = {p["sku"] for p in client.get("/products", params={"market": "US"}).json()}
    for sku in unpriced:
        assert sku not in listed
        assert_problem(client.get(f"/products/{sku}", params={"market": "US"}), 404)
        # ...while it is sold where it has a price
        assert client.get(f"/products/{sku}", params={"market": "ID"}).status_code == 200


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
