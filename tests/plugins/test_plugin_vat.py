"""The ``vat`` plugin: rates per tax class, included or excluded, every rounding rule."""

from __future__ import annotations

import pytest

from kernel.errors import ConfigError, GatewayError
from kernel.tax import SHIPPING
from plugins.tax.vat import VatTax

DE_VAT = {"rates": {"standard": "19", "reduced": "7"}}


def taxes(result) -> dict[str, int]:
    return {t.line_id: t.tax.amount for t in result.lines}


def test_prices_including_vat_extract_the_tax_per_line_and_on_shipping(build):
    market = build.market("DE", "EUR", plugins={"vat": DE_VAT}, include_tax=True)
    vat = build.plugin(VatTax, market)
    cart = build.cart(market, [("TEE", 2, "9.99", "standard"), ("BOOK", 1, "4.99", "reduced")])
    result = vat.niaga_calculate_taxes(build.tax_request(market, cart, shipping="4.90"))
    # l1: 1998 * 19/119 = 319.008 -> 319; l2: 499 * 7/107 = 32.645 -> 33;
    # shipping: 490 * 19/119 = 78.235 -> 78
    assert taxes(result) == {"l1": 319, "l2": 33, SHIPPING: 78}
    assert result.source == "vat"
    assert not result.estimated
    assert [(t.rate, t.label) for t in result.lines] == [
        ("19", "VAT 19%"), ("7", "VAT 7%"), ("19", "VAT 19%"),
    ]
    assert {t.tax.currency for t in result.lines} == {"EUR"}


def test_prices_excluding_vat_add_the_tax(build):
    market = build.market("DE", "EUR", plugins={"vat": DE_VAT}, include_tax=False)
    vat = build.plugin(VatTax, market)
    cart = build.cart(market, [("TEE", 2, "9.99", "standard"), ("BOOK", 1, "4.99", "reduced")])
    result = vat.niaga_calculate_taxes(build.tax_request(market, cart, shipping="4.90"))
    # l1: 1998 * 0.19 = 379.62 -> 380; l2: 499 * 0.07 = 34.93 -> 35; shipping 490 * 0.19 = 93.1
    assert taxes(result) == {"l1": 380, "l2": 35, SHIPPING: 93}


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        # unit: 3 * round(3 * 0.19 = 0.57 -> 1) = 3 on l1, round(0.57) = 1 on l2 -> 4
        ("unit", {"l1": 3, "l2": 1}),
        # line: round(9 * 0.19 = 1.71) = 2 on l1, round(0.57) = 1 on l2 -> 3
        ("line", {"l1": 2, "l2": 1}),
        # total: round(12 * 0.19 = 2.28) = 2, split 9:3 -> 1.5 / 0.5, the tie goes to l1 -> 2 + 0
        ("total", {"l1": 2, "l2": 0}),
    ],
)
def test_rounding_level_decides_and_the_parts_add_up(build, level, expected):
    market = build.market("DE", "EUR", plugins={"vat": {**DE_VAT, "shipping_tax_class": ""}},
                          include_tax=False, level=level)
    vat = build.plugin(VatTax, market)
    cart = build.cart(market, [("PIN", 3, "0.03", "standard"), ("PEG", 1, "0.03", "standard")])
    result = vat.niaga_calculate_taxes(build.tax_request(market, cart))
    assert taxes(result) == expected
    if level == "total":
        # one rounding per rate: the lines' taxes sum to the tax on the sum (12 * 0.19 -> 2)
        assert sum(expected.values()) == 2


def test_total_level_rounds_once_per_rate_with_several_rates(build):
    market = build.market("JP", "JPY", include_tax=True, level="total", plugins={
        "vat": {"rates": {"standard": "10", "reduced": "8"}, "label": "消費税"},
    })
    vat = build.plugin(VatTax, market)
    cart = build.cart(market, [("TEA", 1, "1080", "reduced"), ("RICE", 1, "1080", "reduced"),
                               ("MUG", 1, "1100", "standard")])
    result = vat.niaga_calculate_taxes(build.tax_request(market, cart, shipping="600"))
    # reduced: 2160 * 8/108 = 160 exactly, split evenly 80 + 80;
    # standard: (1100 + 600) * 10/110 = 154.55 -> 155, split 1100:600 -> 100.29 / 54.71 -> 100 + 55
    assert taxes(result) == {"l1": 80, "l2": 80, "l3": 100, SHIPPING: 55}
    assert result.lines[0].label == "消費税 8%"


@pytest.mark.parametrize(("mode", "expected"), [("half-up", 3), ("half-even", 2)])
def test_rounding_mode_on_a_tie(build, mode, expected):
    market = build.market("DE", "EUR", include_tax=False, mode=mode,
                          plugins={"vat": {"rates": {"standard": "10"}}})
    vat = build.plugin(VatTax, market)
    cart = build.cart(market, [("GUM", 1, "0.25", "standard")])
    result = vat.niaga_calculate_taxes(build.tax_request(market, cart))
    # 25 * 0.10 = 2.5 exactly: half-up -> 3, half-even -> 2 (the even neighbour)
    assert taxes(result) == {"l1": expected}


def test_shipping_untaxed_when_no_shipping_class(build):
    market = build.market("DE", "EUR", include_tax=False,
                          plugins={"vat": {**DE_VAT, "shipping_tax_class": ""}})
    vat = build.plugin(VatTax, market)
    cart = build.cart(market, [("TEE", 1, "10.00", "standard")])
    result = vat.niaga_calculate_taxes(build.tax_request(market, cart, shipping="4.90"))
    assert taxes(result) == {"l1": 190}  # 1000 * 0.19; no shipping line


def test_shipping_uses_the_configured_class(build):
    market = build.market("DE", "EUR", include_tax=False,
                          plugins={"vat": {**DE_VAT, "shipping_tax_class": "reduced"}})
    vat = build.plugin(VatTax, market)
    cart = build.cart(market, [("TEE", 1, "10.00", "standard")])
    result = vat.niaga_calculate_taxes(build.tax_request(market, cart, shipping="5.00"))
    assert taxes(result) == {"l1": 190, SHIPPING: 35}  # 500 * 0.07


def test_a_tax_class_without_a_rate_is_an_error_not_a_zero(build):
    market = build.market("DE", "EUR", plugins={"vat": DE_VAT})
    vat = build.plugin(VatTax, market)
    cart = build.cart(market, [("TEE", 1, "10.00", "standard"), ("GIN", 1, "20.00", "luxury")])
    with pytest.raises(GatewayError) as err:
        vat.niaga_calculate_taxes(build.tax_request(market, cart))
    assert "'luxury'" in str(err.value)
    assert "vat" in str(err.value)


def test_other_markets_are_not_answered(build):
    market = build.market("DE", "EUR", plugins={"vat": DE_VAT})
    other = build.market("AT", "EUR", plugins={"vat": DE_VAT})
    vat = build.plugin(VatTax, market)
    cart = build.cart(other, [("TEE", 1, "10.00", "standard")])
    assert vat.niaga_calculate_taxes(build.tax_request(other, cart)) is None


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"rates": {"standard": "abc"}}, "rates.standard"),
        ({"rates": {"standard": "19", "reduced": "150"}}, "rates.reduced"),
        ({"rates": {"standard": "Infinity"}}, "rates.standard"),
        ({"rates": {"standard": 19}}, "rates"),
        ({"rates": {}}, "rates"),
        ({"rates": {"reduced": "7"}}, "shipping_tax_class"),
        ({"rates": {"standard": "19"}, "rate": "7"}, "rate"),
    ],
)
def test_bad_settings_fail_at_load_naming_market_plugin_and_key(build, settings, needle):
    market = build.market("DE", "EUR", plugins={"vat": settings})
    with pytest.raises(ConfigError) as err:
        build.plugin(VatTax, market)
    message = str(err.value)
    assert message.startswith("markets.DE.plugins.vat")
    assert needle in message
