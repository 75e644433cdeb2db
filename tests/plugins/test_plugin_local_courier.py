"""The ``local-courier`` carrier plugin: same-day delivery from a store in the customer's city."""

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
from kernel.testing import check_plugin_conformance, make_market, make_plugins
from plugins.carriers.local_courier import LocalCourier


def store(id_: str, name: str, city: str | None, region: str | None,
          kind: str = "store", country: str = "ID") -> Location:
    return Location(id=id_, name=name, kind=kind, markets=["ID"], country=country, city=city,
                    region=region)


LOCATIONS = [
    store("id-wh", "Gudang Cikarang", "Jakarta", "DKI Jakarta", kind="warehouse"),
    store("id-jkt-gi", "Grand Indonesia", "Jakarta", "DKI Jakarta"),
    store("id-jkt-kota", "Kota Tua", "jakarta ", "DKI Jakarta"),  # typed differently
    store("id-jkt-pik", "PIK Avenue", "Jakarta", "DKI Jakarta"),
    store("id-bdg", "Paris Van Java", "Bandung", "Jawa Barat"),
    store("id-bks", "Summarecon Bekasi", "Bekasi", "Jawa Barat"),
    store("id-bgr", "Botani Square", "Bogor", None),
]


def level(sku: str, loc: str, on_hand: int, reserved: int = 0):
    return (sku, loc), StockLevel(sku=sku, location_id=loc, on_hand=on_hand, reserved=reserved)


STOCK = dict([
    level("KOPI", "id-wh", 500), level("TEH", "id-wh", 500),  # a warehouse never couriers
    level("KOPI", "id-jkt-gi", 5), level("TEH", "id-jkt-gi", 2),
    level("KOPI", "id-jkt-kota", 9), level("TEH", "id-jkt-kota", 3, reserved=2),  # 1 teh free
    level("KOPI", "id-jkt-pik", 1),                              # no teh at all
    level("KOPI", "id-bdg", 5), level("TEH", "id-bdg", 5),
    level("KOPI", "id-bks", 5), level("TEH", "id-bks", 5),
    level("KOPI", "id-bgr", 5), level("TEH", "id-bgr", 5),
])


@pytest.fixture
def idr(build):
    return build.market("ID", "IDR", plugins={"local-courier": {"price": "25000"}})


@pytest.fixture
def courier(build, idr):
    return build.plugin(LocalCourier, idr)


def offer(plugin, market, cart, locations=LOCATIONS, stock=STOCK):
    return plugin.niaga_delivery_options(
        DeliveryContext(cart=cart, locations=locations, stock=stock), market)


def at(city: str | None = None, region: str | None = None, country: str = "ID") -> Address:
    return Address(country=country, city=city, region=region)


def test_local_courier_conforms():
    assert check_plugin_conformance(LocalCourier) == []


def test_only_same_city_stores_that_can_fill_every_line(build, idr, courier):
    cart = build.cart(idr, [("KOPI", 1, "50000", "standard"), ("TEH", 1, "20000", "standard")],
                      address=at("Jakarta", "DKI Jakarta"))
    options = offer(courier, idr, cart)
    # Grand Indonesia: 5 kopi, 2 teh; Kota Tua: 9 kopi, 3 − 2 = 1 teh; PIK: no teh;
    # the warehouse is in Jakarta but is not a store; Bandung and Bekasi are other cities
    assert [o.location_id for o in options] == ["id-jkt-gi", "id-jkt-kota"]
    first = options[0]
    assert (first.id, first.kind, first.carrier, first.label) == (
        "local-courier:id-jkt-gi", "ship", "local-courier",
        "Same-day courier from Grand Indonesia")
    assert first.price == Money(2_500_000, "IDR")  # Rp 25.000, IDR has 2 digits


def test_lines_of_the_same_sku_add_up(build, idr, courier):
    cart = build.cart(idr, [("TEH", 1, "20000", "standard"), ("TEH", 1, "20000", "gift")],
                      address=at("Jakarta"))
    # 2 teh: Grand Indonesia has 2; Kota Tua has only 1 free
    assert [o.location_id for o in offer(courier, idr, cart)] == ["id-jkt-gi"]


@pytest.mark.parametrize("city", ["jakarta", "  JAKARTA ", "Jakarta"])
def test_city_match_ignores_case_and_spaces(build, idr, courier, city):
    cart = build.cart(idr, [("KOPI", 2, "50000", "standard")], address=at(city))
    # 2 kopi: PIK has only 1
    assert [o.location_id for o in offer(courier, idr, cart)] == ["id-jkt-gi", "id-jkt-kota"]


@pytest.mark.parametrize(
    "address", [None, at(city=None, region="DKI Jakarta"), at("  "), at("Surabaya")]
)
def test_no_option_without_a_matching_city(build, idr, courier, address):
    cart = build.cart(idr, [("KOPI", 1, "50000", "standard")], address=address)
    assert offer(courier, idr, cart) == []


def test_a_store_in_another_country_with_the_same_city_name_is_not_offered(build, idr, courier):
    twin = store("my-jkt", "Jakarta Corner", "Jakarta", None, country="MY")
    stock = {**STOCK, **dict([level("KOPI", "my-jkt", 10)])}
    cart = build.cart(idr, [("KOPI", 3, "50000", "standard")], address=at("Jakarta"))
    options = offer(courier, idr, cart, [*LOCATIONS, twin], stock)
    assert [o.location_id for o in options] == ["id-jkt-gi", "id-jkt-kota"]


def test_an_empty_cart_gets_no_option(build, idr, courier):
    assert offer(courier, idr, build.cart(idr, [], address=at("Jakarta"))) == []


def test_region_mode_matches_stores_in_the_same_region(build):
    market = build.market("ID", "IDR", plugins={"local-courier": {
        "price": "35000", "match": "region", "label": "Kurir {city} ({region})"}})
    plugin = build.plugin(LocalCourier, market)
    cart = build.cart(market, [("KOPI", 1, "50000", "standard"), ("TEH", 1, "20000", "gift")],
                      address=at("Cimahi", " jawa barat"))
    options = offer(plugin, market, cart)
    assert [(o.location_id, o.label) for o in options] == [
        ("id-bdg", "Kurir Bandung (Jawa Barat)"), ("id-bks", "Kurir Bekasi (Jawa Barat)")]
    assert {o.price.amount for o in options} == {3_500_000}  # Rp 35.000
    # a store without a region is never matched in region mode (Bogor), nor an address without
    assert offer(plugin, market, build.cart(market, [("KOPI", 1, "1", "standard")],
                                            address=at("Bogor"))) == []


def test_yen_price(build):
    market = build.market("JP", "JPY", plugins={"local-courier": {"price": "990"}})
    plugin = build.plugin(LocalCourier, market)
    shibuya = Location(id="jp-shibuya", name="Shibuya", kind="store", markets=["JP"],
                       country="JP", city="Tokyo", region="Tokyo")
    cart = build.cart(market, [("TEA", 1, "1200", "reduced")], address=at("tokyo", country="JP"))
    [option] = offer(plugin, market, cart, [shibuya], dict([level("TEA", "jp-shibuya", 1)]))
    assert option.price == Money(990, "JPY")  # ¥990, JPY has no minor unit
    assert option.label == "Same-day courier from Shibuya"


def test_the_kernel_collects_the_options(build):
    market = make_market("ID", currency="IDR", locales=["id-ID"],
                         plugins={"local-courier": {"price": "25000"}})
    manager = make_plugins(market, extra={"local-courier": LocalCourier}, discover=False)
    cart = build.cart(market, [("KOPI", 1, "50000", "standard")], address=at("Bandung"))
    options = manager.collect("niaga_delivery_options",
                              context=DeliveryContext(cart=cart, locations=LOCATIONS,
                                                      stock=STOCK), market=market)
    assert [o.id for o in options] == ["local-courier:id-bdg"]


def test_courier_reference_and_tracking(courier):
    order, first, second = (SimpleNamespace(id="ord-1"), SimpleNamespace(id="ful-1"),
                            SimpleNamespace(id="ful-2"))
    shipment = courier.niaga_create_shipment("local-courier", order, first)
    assert shipment.carrier == "local-courier"
    assert re.fullmatch(r"LC-[0-9A-F]{8}", shipment.tracking_number)
    assert courier.niaga_create_shipment("local-courier", order, first) == shipment
    assert courier.niaga_create_shipment("local-courier", order, second) != shipment
    assert courier.niaga_create_shipment("store-pickup", order, first) is None
    status = courier.niaga_track_shipment("local-courier", shipment.tracking_number)
    assert (status.carrier, status.status) == ("local-courier", "in_transit")
    assert courier.niaga_track_shipment("store-pickup", "X") is None


@pytest.mark.parametrize(
    ("currency", "settings", "needle"),
    [
        ("IDR", {}, "price"),                                   # required
        ("IDR", {"price": "murah"}, "price"),
        ("IDR", {"price": "-5000"}, "price"),
        ("IDR", {"price": 25000}, "price"),                     # a number, not a string
        ("JPY", {"price": "990.5"}, "price"),                   # yen has no minor unit
        ("IDR", {"price": "1", "match": "country"}, "match"),
        ("IDR", {"price": "1", "label": ""}, "label"),
        ("IDR", {"price": "1", "label": "Kurir dari {name}"}, "label"),
        ("IDR", {"price": "1", "label": "Kurir {0}"}, "label"),
        ("IDR", {"price": "1", "label": "Kurir {store"}, "label"),
        ("IDR", {"price": "1", "radius_km": 10}, "radius_km"),  # unknown setting
    ],
)
def test_local_courier_bad_settings(build, currency, settings, needle):
    market = build.market("XX", currency, plugins={"local-courier": settings})
    with pytest.raises(ConfigError) as err:
        build.plugin(LocalCourier, market)
    assert str(err.value).startswith("markets.XX.plugins.local-courier")
    assert needle in str(err.value)
