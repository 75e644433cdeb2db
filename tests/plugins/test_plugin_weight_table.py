"""The ``weight-table`` carrier plugin: brackets by weight, prices by zone."""

from __future__ import annotations

import copy
import re
from types import SimpleNamespace

import pytest

from kernel.cart import Address, Line, empty_cart
from kernel.delivery import DeliveryContext
from kernel.errors import ConfigError
from kernel.money import Money
from kernel.testing import check_plugin_conformance, make_market, make_plugins
from plugins.carriers.weight_table import WeightTable

ID_TABLE = {
    "label": "Reguler",
    "zones": {
        "jawa": ["DKI Jakarta", "Jawa Barat", "1*"],
        "bali": ["Bali", "80*"],
        "*": [],
    },
    "brackets": [
        {"up_to_grams": 1000, "prices": {"jawa": "10000", "bali": "18000", "*": "25000"}},
        {"up_to_grams": 5000, "prices": {"jawa": "20000", "bali": "35000", "*": "50000"}},
    ],
    "free_above": "500000",
}
# IDR has 2 digits: Rp 10.000 is 1,000,000 minor units
JAWA_1KG, BALI_1KG, ANY_1KG = 1_000_000, 1_800_000, 2_500_000
JAWA_5KG, BALI_5KG, ANY_5KG = 2_000_000, 3_500_000, 5_000_000


def without_anywhere(table: dict) -> dict:
    table = copy.deepcopy(table)
    del table["zones"]["*"]
    for bracket in table["brackets"]:
        del bracket["prices"]["*"]
    return table


@pytest.fixture
def idr(build):
    return build.market("ID", "IDR", plugins={"weight-table": ID_TABLE})


@pytest.fixture
def table(build, idr):
    return build.plugin(WeightTable, idr)


def cart_of(build, market, lines, *, address=None, discount="0"):
    """``lines`` as (sku, quantity, unit price, grams per unit)."""
    cart = build.cart(market, [(sku, qty, price, "standard") for sku, qty, price, _ in lines],
                      address=address, discount=discount)
    for line, (_, _, _, grams) in zip(cart.lines, lines, strict=True):
        line.weight_grams = grams
    return cart


def offer(plugin, market, cart):
    return plugin.niaga_delivery_options(DeliveryContext(cart=cart, locations=[], stock={}),
                                         market)


def price(plugin, market, cart) -> int | None:
    options = offer(plugin, market, cart)
    assert len(options) <= 1
    return options[0].price.amount if options else None


JAKARTA = Address(country="ID", region="DKI Jakarta", city="Jakarta Selatan",
                  postal_code="12190")


def test_weight_table_conforms():
    assert check_plugin_conformance(WeightTable) == []


# -- brackets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([("KOPI", 1, "50000", 0)], JAWA_1KG),                         # 0 g: first bracket
        ([("KOPI", 1, "50000", 1000)], JAWA_1KG),                      # 1000 g == up_to 1000
        ([("KOPI", 2, "50000", 300), ("TEH", 1, "20000", 400)], JAWA_1KG),  # 2×300+400 = 1000
        ([("KOPI", 1, "50000", 1001)], JAWA_5KG),                      # 1 g over: next bracket
        ([("KOPI", 5, "50000", 1000)], JAWA_5KG),                      # 5×1000 == up_to 5000
        ([("KOPI", 5, "50000", 1000), ("TEH", 1, "1", 1)], None),      # 5001 g: too heavy
    ],
)
def test_the_first_bracket_that_holds_the_weight_prices_it(build, idr, table, lines, expected):
    cart = cart_of(build, idr, lines, address=JAKARTA)  # goods stay below free_above
    assert price(table, idr, cart) == expected


def test_the_option_names_itself(build, idr, table):
    cart = cart_of(build, idr, [("KOPI", 1, "50000", 250)], address=JAKARTA)
    [option] = offer(table, idr, cart)
    assert (option.id, option.kind, option.carrier, option.label, option.location_id) == (
        "weight-table:standard", "ship", "weight-table", "Reguler", None)
    assert option.price == Money(1_000_000, "IDR")


def test_an_empty_cart_gets_no_option(build, idr, table):
    assert offer(table, idr, cart_of(build, idr, [], address=JAKARTA)) == []


# -- zones -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (Address(country="ID", region="Bali"), BALI_1KG),
        (Address(country="ID", region="  bali "), BALI_1KG),                # case, spaces
        (Address(country="ID", region="BALI", postal_code="12190"), JAWA_1KG),  # jawa is first
        (Address(country="ID", postal_code="80361"), BALI_1KG),             # prefix 80*
        (Address(country="ID", postal_code="12 190"), JAWA_1KG),            # prefix 1*
        (Address(country="ID", region="Jawa Barat", postal_code="40111"), JAWA_1KG),
        (Address(country="ID", region="Papua", postal_code="99111"), ANY_1KG),  # only "*"
        (Address(country="ID", region="Papua", postal_code="081"), ANY_1KG),  # 0 is not 80
        (Address(country="ID"), ANY_1KG),
    ],
)
def test_zones_match_by_region_or_postal_prefix(build, idr, table, address, expected):
    cart = cart_of(build, idr, [("KOPI", 1, "50000", 900)], address=address)
    assert price(table, idr, cart) == expected


def test_without_an_address_the_anywhere_zone_prices_the_option(build, idr, table):
    cart = cart_of(build, idr, [("KOPI", 1, "50000", 1200)])
    assert price(table, idr, cart) == ANY_5KG


def test_without_an_anywhere_zone_only_listed_addresses_are_served(build):
    market = build.market("ID", "IDR", plugins={"weight-table": without_anywhere(ID_TABLE)})
    plugin = build.plugin(WeightTable, market)
    lines = [("KOPI", 1, "50000", 900)]
    assert price(plugin, market, cart_of(build, market, lines)) is None  # no address yet
    papua = Address(country="ID", region="Papua", postal_code="99111")
    assert price(plugin, market, cart_of(build, market, lines, address=papua)) is None
    bali = Address(country="ID", region="Bali")
    assert price(plugin, market, cart_of(build, market, lines, address=bali)) == BALI_1KG


def test_narrower_prefixes_listed_first_win(build):
    settings = {
        "zones": {"city": ["100*"], "country": ["1*"]},
        "brackets": [{"up_to_grams": 2000, "prices": {"city": "9000", "country": "15000"}}],
    }
    market = build.market("ID", "IDR", plugins={"weight-table": settings})
    plugin = build.plugin(WeightTable, market)
    for postal, expected in (("10010", 900_000), ("10110", 1_500_000)):
        cart = cart_of(build, market, [("KOPI", 1, "50000", 500)],
                       address=Address(country="ID", postal_code=postal))
        assert price(plugin, market, cart) == expected


# -- free shipping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "discount", "expected"),
    [
        ([("KOPI", 10, "50000", 100)], "0", 0),                 # 500,000 == free_above
        ([("KOPI", 10, "50000", 100)], "0.01", JAWA_1KG),       # 499,999.99 after discount
        ([("KOPI", 1, "499999.99", 100)], "0", JAWA_1KG),        # one sen short
        ([("KOPI", 12, "50000", 400)], "100000", 0),            # 600,000 − 100,000 = 500,000
        ([("KOPI", 12, "50000", 500)], "0", None),              # 6000 g: too heavy even free
    ],
)
def test_free_above_counts_goods_after_discounts(build, idr, table, lines, discount, expected):
    cart = cart_of(build, idr, lines, address=JAKARTA, discount=discount)
    assert price(table, idr, cart) == expected


# -- yen --------------------------------------------------------------------------------------


def test_yen_prices_have_no_minor_unit(build):
    settings = {
        "label": "宅急便",
        "zones": {"kanto": ["Tokyo", "Kanagawa", "1*", "2*"], "*": []},
        "brackets": [
            {"up_to_grams": 2000, "prices": {"kanto": "800", "*": "1100"}},
            {"up_to_grams": 10000, "prices": {"kanto": "1300", "*": "1700"}},
        ],
        "free_above": "10000",
    }
    market = build.market("JP", "JPY", plugins={"weight-table": settings})
    plugin = build.plugin(WeightTable, market)
    tokyo = Address(country="JP", region="tokyo", postal_code="150-0001")
    osaka = Address(country="JP", region="Osaka", postal_code="530-0001")
    light = [("TEA", 2, "1200", 1000)]            # 2000 g, ¥2,400
    heavy = [("TEA", 3, "1200", 1000)]            # 3000 g, ¥3,600
    assert price(plugin, market, cart_of(build, market, light, address=tokyo)) == 800
    assert price(plugin, market, cart_of(build, market, light, address=osaka)) == 1100
    assert price(plugin, market, cart_of(build, market, heavy, address=osaka)) == 1700
    rich = [("TEA", 5, "2000", 1000)]             # ¥10,000 == free_above
    assert price(plugin, market, cart_of(build, market, rich, address=osaka)) == 0


def test_the_kernel_collects_the_option():
    market = make_market("ID", currency="IDR", locales=["id-ID"],
                         plugins={"weight-table": ID_TABLE})
    manager = make_plugins(market, extra={"weight-table": WeightTable}, discover=False)
    cart = empty_cart("c", "ID", "web", "IDR", include_tax=True, customer_id=None, now=0.0)
    unit = Money(5_000_000, "IDR")
    cart.lines.append(Line(id="l1", sku="KOPI", name="Kopi", quantity=2, unit_price=unit,
                           subtotal=unit * 2, discount=Money(0, "IDR"), tax=Money(0, "IDR"),
                           total=unit * 2, weight_grams=600))  # 1200 g
    cart.subtotal = unit * 2
    cart.address = Address(country="ID", region="Bali")
    options = manager.collect("niaga_delivery_options",
                              context=DeliveryContext(cart=cart, locations=[], stock={}),
                              market=market)
    assert [(o.id, o.price.amount) for o in options] == [("weight-table:standard", BALI_5KG)]


# -- shipments --------------------------------------------------------------------------------


def test_tracking_numbers_are_stable(table):
    order, first, second = (SimpleNamespace(id="ord-1"), SimpleNamespace(id="ful-1"),
                            SimpleNamespace(id="ful-2"))
    shipment = table.niaga_create_shipment("weight-table", order, first)
    assert shipment.carrier == "weight-table"
    assert re.fullmatch(r"WT[0-9A-F]{10}", shipment.tracking_number)
    assert table.niaga_create_shipment("weight-table", order, first) == shipment
    assert table.niaga_create_shipment("weight-table", order, second) != shipment
    assert table.niaga_create_shipment("flat-rate", order, first) is None
    status = table.niaga_track_shipment("weight-table", shipment.tracking_number)
    assert (status.carrier, status.status) == ("weight-table", "label_created")
    assert table.niaga_track_shipment("flat-rate", "X") is None


# -- settings ---------------------------------------------------------------------------------


def changed(**patch) -> dict:
    table = copy.deepcopy(ID_TABLE)
    table.update(patch)
    return table


def with_bracket(i: int, **patch) -> dict:
    table = copy.deepcopy(ID_TABLE)
    table["brackets"][i].update(patch)
    return table


ONE_ZONE = {"zones": {"all": ["1*"]}}


@pytest.mark.parametrize(
    ("currency", "settings", "needle"),
    [
        ("IDR", {"brackets": ID_TABLE["brackets"]}, "zones"),  # required
        ("IDR", {"zones": ID_TABLE["zones"]}, "brackets"),     # required
        ("IDR", changed(zones={}), "zones"),
        ("IDR", changed(zones={"jawa": [], "*": []}), "zones.jawa"),
        ("IDR", changed(zones={"jawa": ["*"], "*": []}), "zones.jawa[0]"),
        ("IDR", changed(zones={"jawa": ["Bali", "1*"], "bali": ["bali "], "*": []}),
         "zones.bali[0]"),                                     # listed in two zones
        ("IDR", changed(zones={"jawa": ["1*"], "bali": ["1 *"], "*": []}), "zones.bali[0]"),
        ("IDR", changed(zones={"jawa": ["  "], "*": []}), "zones.jawa[0]"),
        # msgspec names a dict value by "[...]", not by its key
        ("IDR", changed(zones={"jawa": "DKI Jakarta"}), "zones[...]"),  # not a list
        ("IDR", with_bracket(0, prices={"jawa": 10000, "bali": "2", "*": "3"}),
         "brackets[0].prices[...]"),                           # a number, not a string
        ("IDR", changed(brackets=[]), "brackets"),
        ("IDR", with_bracket(1, up_to_grams=1000), "brackets[1].up_to_grams"),  # not ascending
        ("IDR", with_bracket(1, up_to_grams=999), "brackets[1].up_to_grams"),
        ("IDR", with_bracket(0, up_to_grams=0), "brackets[0].up_to_grams"),
        ("IDR", with_bracket(0, up_to_grams="1kg"), "brackets[0].up_to_grams"),
        ("IDR", with_bracket(1, prices={"jawa": "1", "bali": "2"}), "brackets[1].prices.*"),
        ("IDR", with_bracket(0, prices={"jawa": "1", "bali": "2", "*": "3", "papua": "4"}),
         "brackets[0].prices.papua"),                          # no such zone
        ("IDR", with_bracket(0, prices={"jawa": "1.001", "bali": "2", "*": "3"}),
         "brackets[0].prices.jawa"),                           # IDR has 2 digits
        ("IDR", with_bracket(0, prices={"jawa": "-1", "bali": "2", "*": "3"}),
         "brackets[0].prices.jawa"),
        ("IDR", with_bracket(0, weight=5), "weight"),          # unknown key in a bracket
        ("JPY", {**ONE_ZONE, "brackets": [{"up_to_grams": 1, "prices": {"all": "800.5"}}]},
         "brackets[0].prices.all"),                            # yen has no minor unit
        ("IDR", changed(free_above="free"), "free_above"),
        ("IDR", changed(free_above="-1"), "free_above"),
        ("IDR", changed(label=""), "label"),
        ("IDR", changed(id=" "), "id"),
        ("IDR", changed(countries=["ID"]), "countries"),       # unknown setting
    ],
)
def test_weight_table_bad_settings(build, currency, settings, needle):
    market = build.market("XX", currency, plugins={"weight-table": settings})
    with pytest.raises(ConfigError) as err:
        build.plugin(WeightTable, market)
    assert str(err.value).startswith("markets.XX.plugins.weight-table")
    assert needle in str(err.value)
