"""The ``flat-rate`` and ``store-pickup`` carrier plugins."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from kernel.cart import Address
from kernel.catalog import Location
from kernel.delivery import DeliveryContext
from kernel.errors import ConfigError
from kernel.inventory import StockLevel
from kernel.money import Money
from plugins.carriers.flat_rate import FlatRate
from plugins.carriers.store_pickup import StorePickup

FLAT = {
    "options": [
        {"id": "standard", "label": "DHL Paket", "price": "4.90"},
        {"id": "express", "label": "DHL Express", "price": "9.90"},
    ],
    "free_above": "50.00",
}


@pytest.fixture
def de(build):
    return build.market("DE", "EUR", plugins={"flat-rate": FLAT, "store-pickup": {}})


def prices(options) -> dict[str, int]:
    return {o.id: o.price.amount for o in options}


# -- flat rate ------------------------------------------------------------------------


def test_flat_rate_offers_every_option_below_the_threshold(build, de):
    plugin = build.plugin(FlatRate, de)
    cart = build.cart(de, [("TEE", 1, "49.99", "standard")])  # 49.99 < 50.00
    options = plugin.niaga_delivery_options(DeliveryContext(cart=cart, locations=[], stock={}), de)
    assert prices(options) == {"flat-rate:standard": 490, "flat-rate:express": 990}
    assert {(o.kind, o.carrier) for o in options} == {("ship", "flat-rate")}
    assert [o.label for o in options] == ["DHL Paket", "DHL Express"]
    assert all(o.location_id is None for o in options)


def test_flat_rate_is_free_from_the_threshold_on(build, de):
    plugin = build.plugin(FlatRate, de)
    cart = build.cart(de, [("TEE", 2, "25.00", "standard")])  # exactly 50.00
    options = plugin.niaga_delivery_options(DeliveryContext(cart=cart, locations=[], stock={}), de)
    assert prices(options) == {"flat-rate:standard": 0, "flat-rate:express": 0}
    assert {o.price.currency for o in options} == {"EUR"}


def test_discounts_count_against_the_threshold(build, de):
    plugin = build.plugin(FlatRate, de)
    # 55.00 of goods - 5.01 discount = 49.99: below 50.00, so shipping is charged
    cart = build.cart(de, [("TEE", 1, "55.00", "standard")], discount="5.01")
    options = plugin.niaga_delivery_options(DeliveryContext(cart=cart, locations=[], stock={}), de)
    assert prices(options) == {"flat-rate:standard": 490, "flat-rate:express": 990}


def test_without_free_above_shipping_is_always_charged(build):
    market = build.market("JP", "JPY", plugins={"flat-rate": {
        "options": [{"id": "yamato", "label": "Yamato", "price": "600"}]}})
    plugin = build.plugin(FlatRate, market)
    cart = build.cart(market, [("TEA", 10, "5000", "reduced")])
    options = plugin.niaga_delivery_options(
        DeliveryContext(cart=cart, locations=[], stock={}), market)
    assert prices(options) == {"flat-rate:yamato": 600}  # JPY has no minor unit


@pytest.mark.parametrize(
    ("country", "served"), [(None, True), ("DE", True), ("de", True), ("FR", False)]
)
def test_flat_rate_serves_the_markets_countries(build, de, country, served):
    plugin = build.plugin(FlatRate, de)
    address = Address(country=country, city="Berlin") if country else None
    cart = build.cart(de, [("TEE", 1, "10.00", "standard")], address=address)
    options = plugin.niaga_delivery_options(DeliveryContext(cart=cart, locations=[], stock={}), de)
    assert len(options) == (2 if served else 0)


def test_flat_rate_countries_setting_replaces_the_markets(build):
    market = build.market("DE", "EUR", plugins={"flat-rate": {**FLAT, "countries": ["AT"]}})
    plugin = build.plugin(FlatRate, market)
    for country, count in (("AT", 2), ("DE", 0)):
        cart = build.cart(market, [("TEE", 1, "10.00", "standard")],
                          address=Address(country=country))
        context = DeliveryContext(cart=cart, locations=[], stock={})
        assert len(plugin.niaga_delivery_options(context, market)) == count


def test_flat_rate_shipments_have_stable_tracking_numbers(build, de):
    plugin = build.plugin(FlatRate, de)
    order, first, second = (SimpleNamespace(id="ord-1"), SimpleNamespace(id="ful-1"),
                            SimpleNamespace(id="ful-2"))
    shipment = plugin.niaga_create_shipment("flat-rate", order, first)
    assert shipment.carrier == "flat-rate"
    assert re.fullmatch(r"FR[0-9A-F]{10}", shipment.tracking_number)
    assert plugin.niaga_create_shipment("flat-rate", order, first) == shipment
    assert plugin.niaga_create_shipment("flat-rate", order, second) != shipment
    assert plugin.niaga_create_shipment("dhl", order, first) is None
    status = plugin.niaga_track_shipment("flat-rate", shipment.tracking_number)
    assert (status.carrier, status.tracking_number, status.status) == (
        "flat-rate", shipment.tracking_number, "label_created")
    assert plugin.niaga_track_shipment("dhl", "X") is None


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"options": [{"id": "a", "label": "A", "price": "1.234"}]}, "options[0].price"),
        ({"options": [{"id": "a", "label": "A", "price": "cheap"}]}, "options[0].price"),
        ({"options": [{"id": "a", "label": "A", "price": "-1"}]}, "options[0].price"),
        ({"options": [{"id": "a", "label": "A"}]}, "price"),
        ({"options": [{"id": "a", "label": "A", "price": "1"},
                      {"id": "a", "label": "B", "price": "2"}]}, "options[1].id"),
        ({"options": []}, "options"),
        ({**FLAT, "free_above": "fifty"}, "free_above"),
        ({**FLAT, "free_shipping": "50"}, "free_shipping"),
    ],
)
def test_flat_rate_bad_settings(build, settings, needle):
    market = build.market("DE", "EUR", plugins={"flat-rate": settings})
    with pytest.raises(ConfigError) as err:
        build.plugin(FlatRate, market)
    assert str(err.value).startswith("markets.DE.plugins.flat-rate")
    assert needle in str(err.value)


# -- store pickup -----------------------------------------------------------------------

LOCATIONS = [
    Location(id="de-wh", name="Lager Halle", kind="warehouse", markets=["DE"], country="DE"),
    Location(id="de-ber", name="Berlin Mitte", kind="store", markets=["DE"], country="DE",
             city="Berlin"),
    Location(id="de-muc", name="München Zentrum", kind="store", markets=["DE"], country="DE",
             city="München"),
    Location(id="de-ham", name="Hamburg Hafen", kind="store", markets=["DE"], country="DE",
             city="Hamburg"),
]


def level(sku: str, loc: str, on_hand: int, reserved: int = 0):
    return (sku, loc), StockLevel(sku=sku, location_id=loc, on_hand=on_hand, reserved=reserved)


STOCK = dict([
    level("TEE", "de-wh", 100), level("MUG", "de-wh", 100),   # a warehouse is never a pickup
    level("TEE", "de-ber", 3), level("MUG", "de-ber", 5, reserved=4),  # 1 mug available
    level("TEE", "de-muc", 2), level("MUG", "de-muc", 1),     # only 2 tees
    # Hamburg has no stock rows at all
])


def test_pickup_only_at_stores_that_can_fill_every_line(build, de):
    plugin = build.plugin(StorePickup, de)
    cart = build.cart(de, [("TEE", 3, "19.99", "standard"), ("MUG", 1, "9.99", "standard")])
    options = plugin.niaga_delivery_options(
        DeliveryContext(cart=cart, locations=LOCATIONS, stock=STOCK), de)
    # Berlin: 3 tees >= 3 and 5 - 4 = 1 mug >= 1; Munich has 2 tees < 3; Hamburg nothing
    assert len(options) == 1
    [option] = options
    assert (option.id, option.kind, option.carrier, option.location_id) == (
        "store-pickup:de-ber", "pickup", "store-pickup", "de-ber")
    assert option.price == Money(0, "EUR")
    assert option.label == "Pick up in store: Berlin Mitte"


def test_pickup_adds_up_lines_of_the_same_sku(build, de):
    plugin = build.plugin(StorePickup, de)
    one_line = build.cart(de, [("TEE", 2, "19.99", "standard")])
    two_lines = build.cart(de, [("TEE", 2, "19.99", "standard"), ("TEE", 1, "19.99", "gift")])
    ids = [
        [o.location_id for o in plugin.niaga_delivery_options(
            DeliveryContext(cart=cart, locations=LOCATIONS, stock=STOCK), de)]
        for cart in (one_line, two_lines)
    ]
    assert ids == [["de-ber", "de-muc"], ["de-ber"]]  # Munich has 2 tees, not 3


def test_pickup_offers_nothing_for_an_empty_cart(build, de):
    plugin = build.plugin(StorePickup, de)
    cart = build.cart(de, [])
    context = DeliveryContext(cart=cart, locations=LOCATIONS, stock=STOCK)
    assert plugin.niaga_delivery_options(context, de) == []


def test_pickup_label_template(build):
    market = build.market("DE", "EUR", plugins={"store-pickup": {"label": "Abholung in {city}"}})
    plugin = build.plugin(StorePickup, market)
    cart = build.cart(market, [("TEE", 1, "19.99", "standard")])
    options = plugin.niaga_delivery_options(
        DeliveryContext(cart=cart, locations=LOCATIONS, stock=STOCK), market)
    assert [o.label for o in options] == ["Abholung in Berlin", "Abholung in München"]


@pytest.mark.parametrize("label", ["Pick up at {store}", "Pick up {0}", "Pick up {name"])
def test_pickup_bad_label_fails_at_load(build, label):
    market = build.market("DE", "EUR", plugins={"store-pickup": {"label": label}})
    with pytest.raises(ConfigError) as err:
        build.plugin(StorePickup, market)
    assert str(err.value).startswith("markets.DE.plugins.store-pickup: label")


def test_pickup_code_and_tracking(build, de):
    plugin = build.plugin(StorePickup, de)
    order, fulfillment = SimpleNamespace(id="ord-1"), SimpleNamespace(id="ful-1")
    shipment = plugin.niaga_create_shipment("store-pickup", order, fulfillment)
    assert re.fullmatch(r"PU-[0-9A-F]{6}", shipment.tracking_number)
    assert plugin.niaga_create_shipment("store-pickup", order, fulfillment) == shipment
    assert plugin.niaga_create_shipment("flat-rate", order, fulfillment) is None
    status = plugin.niaga_track_shipment("store-pickup", shipment.tracking_number)
    assert status.status == "ready_for_pickup"
    assert plugin.niaga_track_shipment("flat-rate", shipment.tracking_number) is None
