"""The ``us-sales-tax`` plugin: destination state rates from the shipped CSV."""

from __future__ import annotations

from fractions import Fraction

import pytest

from kernel.cart import Address
from kernel.errors import ConfigError, ValidationError
from kernel.tax import SHIPPING
from plugins.tax.us_sales_tax import UsSalesTax, parse_state_rates, state_rates

# 2 x 19.99 = 39.98 of goods, 5.99 shipping, prices exclude tax, line rounding, half-up
GOODS = [("HOODIE", 2, "19.99", "standard")]


def taxes(result) -> dict[str, int]:
    return {t.line_id: t.tax.amount for t in result.lines}


def us(build, **settings):
    market = build.market("US", "USD", include_tax=False, plugins={"us-sales-tax": settings})
    return market, build.plugin(UsSalesTax, market)


def ship_to(region: str | None, country: str = "US") -> Address:
    return Address(country=country, region=region, city="Somewhere", postal_code="00000")


def test_the_shipped_csv_has_every_state_and_dc():
    rates = state_rates()
    assert len(rates) == 51
    assert rates["CA"].rate == Fraction(29, 4)  # 7.25
    assert rates["CA"].shipping_taxable is False
    assert rates["NY"].rate_text == "4"
    assert rates["NY"].shipping_taxable is True
    assert rates["DC"].name == "District of Columbia"
    assert all(0 <= s.rate <= 10 for s in rates.values())


def test_california_taxes_goods_but_not_shipping(build):
    market, plugin = us(build)
    cart = build.cart(market, GOODS, address=ship_to("CA"))
    result = plugin.niaga_calculate_taxes(build.tax_request(market, cart, shipping="5.99"))
    # 3998 * 7.25% = 289.855 -> 290; CA does not tax separately stated shipping
    assert taxes(result) == {"l1": 290}
    assert result.lines[0].label == "CA sales tax 7.25%"
    assert result.lines[0].rate == "7.25"
    assert not result.estimated


def test_new_york_taxes_shipping(build):
    market, plugin = us(build)
    cart = build.cart(market, GOODS, address=ship_to("US-NY"))
    result = plugin.niaga_calculate_taxes(build.tax_request(market, cart, shipping="5.99"))
    # 3998 * 4% = 159.92 -> 160; shipping 599 * 4% = 23.96 -> 24
    assert taxes(result) == {"l1": 160, SHIPPING: 24}
    assert {t.label for t in result.lines} == {"NY sales tax 4%"}


@pytest.mark.parametrize("region", ["california", "California", " ca ", "US-CA"])
def test_state_names_and_codes_are_accepted(build, region):
    market, plugin = us(build)
    cart = build.cart(market, GOODS, address=ship_to(region))
    result = plugin.niaga_calculate_taxes(build.tax_request(market, cart))
    assert taxes(result) == {"l1": 290}


@pytest.mark.parametrize("address", [None, ship_to(None)])
def test_no_state_yet_gives_an_estimated_zero(build, address):
    market, plugin = us(build)
    cart = build.cart(market, [*GOODS, ("CAP", 1, "9.99", "standard")], address=address)
    result = plugin.niaga_calculate_taxes(
        build.tax_request(market, cart, shipping="5.99", delivery_kind=None)
    )
    assert result.estimated is True
    assert taxes(result) == {"l1": 0, "l2": 0}


def test_an_unknown_state_is_an_error_naming_it(build):
    market, plugin = us(build)
    cart = build.cart(market, GOODS, address=ship_to("Narnia"))
    # the customer's own address: bad input naming the field, not a tax outage
    with pytest.raises(ValidationError) as err:
        plugin.niaga_calculate_taxes(build.tax_request(market, cart))
    assert "'Narnia'" in str(err.value)
    assert err.value.errors == [{"field": "region", "message": err.value.errors[0]["message"]}]


def test_pickup_is_taxed_at_the_store(build):
    market, plugin = us(build)
    cart = build.cart(market, GOODS, address=ship_to("CA"))
    store = Address(country="US", region="TX", city="Austin")
    result = plugin.niaga_calculate_taxes(
        build.tax_request(market, cart, delivery_kind="pickup", pickup_address=store)
    )
    # Texas 6.25%: 3998 * 0.0625 = 249.875 -> 250, whatever the customer's address
    assert taxes(result) == {"l1": 250}


def test_pickup_without_store_state_uses_the_origin_state(build):
    market, plugin = us(build, origin_state="Oregon")
    cart = build.cart(market, GOODS)
    result = plugin.niaga_calculate_taxes(build.tax_request(market, cart, delivery_kind="pickup"))
    assert taxes(result) == {"l1": 0}  # Oregon has no sales tax
    assert result.lines[0].label == "OR sales tax 0%"
    assert not result.estimated


def test_overrides_exemptions_and_shipping_flags(build):
    market, plugin = us(build, overrides={"CA": "8.75"}, shipping_taxable={"california": True},
                        exempt_tax_classes=["grocery"])
    cart = build.cart(market, [*GOODS, ("BREAD", 1, "4.00", "grocery")], address=ship_to("CA"))
    result = plugin.niaga_calculate_taxes(build.tax_request(market, cart, shipping="5.99"))
    # goods 3998 * 8.75% = 349.825 -> 350; bread exempt -> 0; shipping 599 * 8.75% = 52.41 -> 52
    assert taxes(result) == {"l1": 350, "l2": 0, SHIPPING: 52}
    assert result.lines[1].rate == "0"


def test_shipping_outside_the_us_carries_no_sales_tax(build):
    market, plugin = us(build)
    cart = build.cart(market, GOODS, address=ship_to("ON", country="CA"))
    result = plugin.niaga_calculate_taxes(build.tax_request(market, cart, shipping="5.99"))
    assert taxes(result) == {"l1": 0}
    assert not result.estimated


def test_other_markets_are_not_answered(build):
    _, plugin = us(build)
    other = build.market("CA", "CAD", include_tax=False, plugins={})
    cart = build.cart(other, GOODS, address=ship_to("ON", country="CA"))
    assert plugin.niaga_calculate_taxes(build.tax_request(other, cart)) is None


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"overrides": {"ZZ": "5"}}, "overrides.ZZ"),
        ({"overrides": {"CA": "lots"}}, "overrides.CA"),
        ({"shipping_taxable": {"Atlantis": True}}, "shipping_taxable.Atlantis"),
        ({"origin_state": "Narnia"}, "origin_state"),
        ({"exempt_tax_classes": "grocery"}, "exempt_tax_classes"),
        ({"nexus": ["CA"]}, "nexus"),
    ],
)
def test_bad_settings_fail_at_load(build, settings, needle):
    market = build.market("US", "USD", include_tax=False, plugins={"us-sales-tax": settings})
    with pytest.raises(ConfigError) as err:
        build.plugin(UsSalesTax, market)
    assert str(err.value).startswith("markets.US.plugins.us-sales-tax")
    assert needle in str(err.value)


def test_bad_rate_files_are_refused_with_the_line():
    good = "state,name,rate,shipping_taxable\nCA,California,7.25,false\n"
    assert parse_state_rates(good)["CA"].rate == Fraction(29, 4)
    with pytest.raises(ValueError, match="header"):
        parse_state_rates("code,rate\nCA,7.25\n")
    with pytest.raises(ValueError, match="line 3"):
        parse_state_rates(good + "NY,New York,four,true\n")
    with pytest.raises(ValueError, match="line 3"):
        parse_state_rates(good + "CA,California,7.25,false\n")
    with pytest.raises(ValueError, match="shipping_taxable"):
        parse_state_rates(good + "NY,New York,4,yes\n")
