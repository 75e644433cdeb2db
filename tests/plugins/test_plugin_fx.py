"""The ``fx`` plugin: prices converted from a base market, exact, rounded with the market's
policy, with the rate snapshot the kernel keeps on the line."""

from __future__ import annotations

from fractions import Fraction

import pytest

from kernel.catalog import ConvertedPrice, Product
from kernel.errors import ConfigError
from kernel.money import Money
from kernel.pricing import unit_price
from kernel.testing import check_plugin_conformance, make_market, make_plugins
from plugins.localisation.fx import Fx


def product(**prices: Money) -> Product:
    return Product(sku="SAMBAL", names={"en-US": "Sambal"}, prices=prices)


def fx_in(build, code: str, currency: str, mode: str = "half-up", **settings):
    market = build.market(code, currency, mode=mode, plugins={"fx": settings})
    return market, build.plugin(Fx, market)


def test_fx_conforms_and_loads_from_entry_points():
    assert check_plugin_conformance(Fx) == []
    market = make_market("US", currency="USD",
                         plugins={"fx": {"base_market": "ID", "rates": {"USD": "0.000063"}}})
    plugins = make_plugins(market)
    assert plugins.implementers("niaga_convert_price") == ["fx"]


def test_conversion_is_exact_and_keeps_the_snapshot(build):
    market, fx = fx_in(build, "US", "USD", base_market="ID", rates={"USD": "0.000063"})
    base = Money.parse("39000", "IDR")
    converted = fx.niaga_convert_price(product(ID=base), market, {})
    # 39000 IDR x 0.000063 = 2.457 USD -> 2.46 (half-up); computed exactly, no float
    assert converted == ConvertedPrice(price=Money(246, "USD"), base=base, rate="0.000063",
                                       source="fx:markets-file")
    assert converted.snapshot() == {"base": "39000.00", "base_currency": "IDR",
                                    "rate": "0.000063", "source": "fx:markets-file"}
    # exact where floats are not: 0.1 + 0.2 style rates still land on the right cent
    market, fx = fx_in(build, "US", "USD", base_market="DE", rates={"USD": "1.1"})
    assert fx.niaga_convert_price(product(DE=Money(3, "EUR")), market, {}).price == Money(3, "USD")
    assert fx.niaga_convert_price(product(DE=Money(5, "EUR")), market, {}).price == Money(6, "USD")


def test_a_catalog_price_in_the_market_wins_and_the_kernel_keeps_the_snapshot(build):
    market = build.market("US", "USD", plugins={"fx": {"base_market": "ID",
                                                      "rates": {"USD": "0.000063"}}})
    plugins = make_plugins(market)
    from kernel.cart import Line

    zero = Money.zero("USD")
    line = Line(id="l1", sku="SAMBAL", name="", quantity=1, unit_price=zero, subtotal=zero,
                discount=zero, tax=zero, total=zero)
    only_id = product(ID=Money.parse("39000", "IDR"))
    assert unit_price(only_id, market, plugins, line) == Money(246, "USD")
    assert line.fx == {"base": "39000.00", "base_currency": "IDR", "rate": "0.000063",
                       "source": "fx:markets-file"}
    priced = product(ID=Money.parse("39000", "IDR"), US=Money(499, "USD"))
    assert unit_price(priced, market, plugins, line) == Money(499, "USD")
    assert line.fx is None  # a catalog price has no snapshot (and clears an old one)


@pytest.mark.parametrize("mode,expected", [("half-up", 235), ("half-even", 234)])
def test_a_tie_rounds_with_the_markets_rounding_mode(build, mode, expected):
    # 1.00 EUR x 2.345 = 2.345 USD: exactly half a cent
    market, fx = fx_in(build, "US", "USD", mode, base_market="DE", rates={"USD": "2.345"})
    assert fx.niaga_convert_price(product(DE=Money(100, "EUR")), market, {}).price == Money(
        expected, "USD")


@pytest.mark.parametrize("mode,tie", [("half-up", 3), ("half-even", 2)])
def test_yen_has_no_minor_unit(build, mode, tie):
    # 6.90 EUR x 162.5 = 1121.25 yen: whole yen, no tie, both modes agree
    market, fx = fx_in(build, "JP", "JPY", mode, base_market="DE", rates={"JPY": "162.5"})
    converted = fx.niaga_convert_price(product(DE=Money(690, "EUR")), market, {})
    assert converted.price == Money(1121, "JPY")
    assert converted.price.format_amount() == "1121"
    # 0.01 EUR x 250 = 2.5 yen: a tie, rounded per the market
    market, fx = fx_in(build, "JP", "JPY", mode, base_market="DE", rates={"JPY": "250"})
    assert fx.niaga_convert_price(product(DE=Money(1, "EUR")), market, {}).price == Money(
        tie, "JPY")


def test_markup_is_added_to_the_rate_and_shown_in_the_snapshot(build):
    market, fx = fx_in(build, "US", "USD", base_market="ID", rates={"USD": "0.000063"},
                       markup_percent="3")
    converted = fx.niaga_convert_price(product(ID=Money.parse("39000", "IDR")), market, {})
    assert converted.rate == "0.00006489"  # 0.000063 x 1.03
    exact = Fraction(39000) * Fraction("0.00006489") * 100  # 253.071 cents
    assert converted.price == Money(253, "USD") and int(exact) == 253


def test_no_base_price_no_rate_or_a_price_below_one_minor_unit_is_none(build):
    market, fx = fx_in(build, "US", "USD", base_market="ID", rates={"USD": "0.000063"})
    assert fx.niaga_convert_price(product(DE=Money(690, "EUR")), market, {}) is None
    # a rate only for other currencies: nothing converts (the product is not sold here)
    market, fx = fx_in(build, "US", "USD", base_market="ID", rates={"EUR": "0.000058"})
    assert fx.niaga_convert_price(product(ID=Money.parse("39000", "IDR")), market, {}) is None
    # Rp 50 x 0.000063 = 0.00315 USD rounds to 0: never sold for nothing
    market, fx = fx_in(build, "US", "USD", base_market="ID", rates={"USD": "0.000063"})
    assert fx.niaga_convert_price(product(ID=Money.parse("50", "IDR")), market, {}) is None


def test_the_same_currency_needs_no_rate(build):
    market, fx = fx_in(build, "AT", "EUR", base_market="DE")
    converted = fx.niaga_convert_price(product(DE=Money(2990, "EUR")), market, {})
    assert converted.price == Money(2990, "EUR") and converted.rate == "1"
    assert converted.source == "fx:same-currency"


def test_rates_from_a_csv_or_toml_file_with_the_markets_file_overriding(build, tmp_path):
    csv_file = tmp_path / "rates.csv"
    csv_file.write_text("currency,rate\nUSD,0.00007\nEUR,0.000058\n", encoding="utf-8")
    market, fx = fx_in(build, "US", "USD", base_market="ID", rates_file=str(csv_file))
    converted = fx.niaga_convert_price(product(ID=Money.parse("10000", "IDR")), market, {})
    assert converted.price == Money(70, "USD") and converted.source == "fx:rates.csv"
    market, fx = fx_in(build, "US", "USD", base_market="ID", rates_file=str(csv_file),
                       rates={"USD": "0.0001"})
    assert fx.niaga_convert_price(product(ID=Money.parse("10000", "IDR")), market, {}).price == \
        Money(100, "USD")
    toml_file = tmp_path / "rates.toml"
    toml_file.write_text('as_of = "2025-01-31"\n[rates]\nUSD = "0.00007"\n', encoding="utf-8")
    market, fx = fx_in(build, "US", "USD", base_market="ID", rates_file=str(toml_file))
    converted = fx.niaga_convert_price(product(ID=Money.parse("10000", "IDR")), market, {})
    assert converted.source == "fx:rates.toml@2025-01-31"


@pytest.mark.parametrize("settings,problem", [
    ({}, "base_market"),
    ({"base_market": "Indonesia"}, "base_market: 'Indonesia' is not a market code"),
    ({"base_market": "US"}, "base_market: must be another market"),
    ({"base_market": "ID", "rates": {"USD": "abc"}}, "rates.USD: 'abc' is not a positive"),
    ({"base_market": "ID", "rates": {"USD": "-1"}}, "rates.USD: '-1' is not a positive"),
    ({"base_market": "ID", "rates": {"USD": "0"}}, "rates.USD: '0' is not a positive"),
    ({"base_market": "ID", "rates": {"USD": "NaN"}}, "rates.USD"),
    ({"base_market": "ID", "rates": {"DOLLAR": "1"}}, "rates: 'DOLLAR' is not an ISO 4217"),
    ({"base_market": "ID", "markup_percent": "many"}, "markup_percent"),
    ({"base_market": "ID", "rates_file": "/no/such/rates.csv"}, "rates_file (/no/such/rates"),
    ({"base_market": "ID", "rate": {"USD": "1"}}, "rate"),
])
def test_bad_settings_name_the_key(settings, problem):
    market = make_market("US", currency="USD", plugins={"fx": settings})
    with pytest.raises(ConfigError) as error:
        make_plugins(market)
    (text,) = error.value.problems
    assert text.startswith("markets.US.plugins.fx"), text
    assert problem in text, text


@pytest.mark.parametrize("name,content,problem", [
    ("r.csv", "code,value\nUSD,1\n", "needs the header currency,rate"),
    ("r.csv", "currency,rate\nUSD,zero\n", "line 2: 'zero' is not a positive"),
    ("r.csv", "currency,rate\nXX,1\n", "line 2: 'XX' is not an ISO 4217"),
    ("r.toml", "USD = 1\n", "needs a [rates] table"),
    ("r.toml", "[rates\n", "not valid TOML"),
])
def test_a_bad_rates_file_names_the_file_and_the_row(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    market = make_market("US", currency="USD",
                         plugins={"fx": {"base_market": "ID", "rates_file": str(path)}})
    with pytest.raises(ConfigError) as error:
        make_plugins(market)
    (text,) = error.value.problems
    assert f"rates_file ({path})" in text and problem in text, text


def test_an_admin_set_rate_wins_over_the_settings_and_says_so(build):
    market, fx = fx_in(build, "US", "USD", base_market="ID", rates={"USD": "0.000063"})
    base = Money.parse("39000", "IDR")
    converted = fx.niaga_convert_price(product(ID=base), market, {"IDR": {"USD": "0.0001"}})
    # 39000 IDR x 0.0001 = 3.90 USD, exact
    assert converted.price == Money(390, "USD")
    assert (converted.rate, converted.source) == ("0.0001", "fx:admin")
    # a rate from another base currency does not apply
    assert fx.niaga_convert_price(product(ID=base), market, {"EUR": {"USD": "9"}}).source \
        != "fx:admin"
