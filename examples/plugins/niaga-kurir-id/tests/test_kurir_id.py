"""kurir-id's own tests: zones, weights, prices, settings, cash on delivery, tracking.

The fixtures (niaga_market, niaga_plugins, niaga_kernel, niaga_cart, niaga_order) come
from Niaga's pytest plugin, kernel.testing, which pytest loads because Niaga is installed.
"""

import copy

import pytest
from kernel import Money, ValidationError
from kernel.cart import Address, Cart
from kernel.delivery import DeliveryContext
from kernel.errors import ConfigError
from kernel.orders import Fulfillment
from kernel.testing import build_cart, order_for

from niaga_kurir_id import KurirId, chargeable_kg, tracking_number
from niaga_kurir_id.plugin import luhn_digit

SETTINGS = {
    "origin": "jabodetabek",
    "default_weight_grams": 500,
    "tolerance_grams": 300,
    "max_weight_kg": 30,
    "zones": {
        "jabodetabek": {"postal": ["1"], "provinces": ["DKI Jakarta"]},
        "jawa": {"postal": ["4", "5", "6"], "provinces": ["Jawa Barat", "Jawa Timur"]},
        "sulawesi-maluku": {"postal": ["9"]},
        "papua": {"postal": ["98", "99"], "extra_days": 3},
    },
    "services": {
        "REG": {"label": "Kurir ID Reguler ({eta} hari)", "eta_days": [2, 3],
                "per_kg": {"jabodetabek": "9000", "jawa": "12000",
                           "sulawesi-maluku": "35000", "papua": "80000"}},
        "YES": {"label": "Kurir ID YES ({eta} hari)", "eta_days": [1], "cod": False,
                "per_kg": {"jabodetabek": "18000", "jawa": "25000"}},
    },
}
JAKARTA = {"country": "ID", "region": "DKI Jakarta", "city": "Jakarta", "postal_code": "10310"}
BANDUNG = {"country": "ID", "region": "Jawa Barat", "city": "Bandung", "postal_code": "40162"}


def settings(**changes):
    table = copy.deepcopy(SETTINGS)
    table.update(changes)
    return table


@pytest.fixture
def kurir(niaga_market, niaga_plugins):
    """The ID test market with kurir-id enabled: (market, its plugin manager)."""
    market = niaga_market("ID", currency="IDR", countries=["ID"], locales=["id-ID"],
                          plugins={"kurir-id": SETTINGS})
    return market, niaga_plugins(market, extra={"kurir-id": KurirId}, discover=False)


def options_for(kurir, lines, address):
    """{option id: (price, label)} for a cart of ``(grams per unit, quantity)`` lines."""
    market, plugins = kurir
    cart, _ = build_cart(market, [(f"SKU-{i}", qty, 100_000_00, "standard", grams)
                                  for i, (grams, qty) in enumerate(lines)],
                         address=Address(**address) if address else None)
    context = DeliveryContext(cart=cart, locations=[], stock={})
    options = plugins.collect("niaga_delivery_options", context=context, market=market)
    return {o.id: (o.price, o.label) for o in options}


def idr(rupiah: int) -> Money:
    return Money(rupiah * 100, "IDR")  # IDR has two minor digits in ISO 4217


# -- weights ------------------------------------------------------------------------------


@pytest.mark.parametrize(("grams", "kg"), [
    (1, 1), (1000, 1), (1300, 1), (1301, 2), (2000, 2), (2300, 2), (2301, 3), (29_300, 29)])
def test_chargeable_kilograms_round_up_past_the_tolerance(grams, kg):
    assert chargeable_kg(grams, 300) == kg


def test_without_tolerance_every_started_kilogram_counts():
    assert [chargeable_kg(g, 0) for g in (1000, 1001, 1999)] == [1, 2, 2]


def test_the_weight_is_the_catalog_weight_times_quantity(kurir):
    # 3 x 400 g = 1.2 kg: within the tolerance, 1 kg; 4 x 400 g = 1.6 kg: 2 kg
    assert options_for(kurir, [(400, 3)], JAKARTA)["kurir-id:reg"][0] == idr(9000)
    assert options_for(kurir, [(400, 4)], JAKARTA)["kurir-id:reg"][0] == idr(18000)


def test_a_product_without_a_weight_counts_the_default(kurir):
    # 0 g means "unknown" in the catalog: 3 units x 500 g + 250 g = 1.75 kg -> 2 kg
    assert options_for(kurir, [(0, 3), (250, 1)], BANDUNG)["kurir-id:reg"][0] == idr(24000)


def test_a_cart_over_the_maximum_weight_gets_nothing(kurir):
    assert options_for(kurir, [(1000, 30)], JAKARTA) != {}  # 30 kg: the limit itself
    assert options_for(kurir, [(1000, 30), (1, 1)], JAKARTA) == {}


# -- zones --------------------------------------------------------------------------------


def test_prices_per_zone_and_service(kurir):
    assert options_for(kurir, [(250, 2), (2400, 1)], BANDUNG) == {  # 2.9 kg -> 3 kg
        "kurir-id:reg": (idr(36000), "Kurir ID Reguler (2-3 hari)"),
        "kurir-id:yes": (idr(75000), "Kurir ID YES (1 hari)"),
    }


def test_the_longest_postal_prefix_wins_and_adds_the_zones_days(kurir):
    jayapura = {"country": "ID", "region": "Papua", "city": "Jayapura", "postal_code": "99111"}
    makassar = {"country": "ID", "region": "Sulawesi Selatan", "city": "Makassar",
                "postal_code": "90111"}
    # "99" (papua) beats "9" (sulawesi-maluku); YES does not serve either
    assert options_for(kurir, [(500, 1)], jayapura) == {
        "kurir-id:reg": (idr(80000), "Kurir ID Reguler (5-6 hari)")}
    assert options_for(kurir, [(500, 1)], makassar) == {
        "kurir-id:reg": (idr(35000), "Kurir ID Reguler (2-3 hari)")}


def test_the_province_answers_when_the_postal_code_does_not(kurir):
    no_postal = {**BANDUNG, "postal_code": None}
    odd_postal = {**BANDUNG, "postal_code": "00000", "region": "  jawa   BARAT "}
    for address in (no_postal, odd_postal):
        assert options_for(kurir, [(500, 1)], address)["kurir-id:reg"][0] == idr(12000)


def test_the_postal_code_wins_over_the_province(kurir):
    # Depok is in the province Jawa Barat, but its postal code (16xxx) is Jabodetabek's
    depok = {"country": "ID", "region": "Jawa Barat", "city": "Depok", "postal_code": "16424"}
    assert options_for(kurir, [(500, 1)], depok)["kurir-id:reg"][0] == idr(9000)


def test_no_option_without_an_address_abroad_or_outside_every_zone(kurir):
    assert options_for(kurir, [(500, 1)], None) == {}
    assert options_for(kurir, [(500, 1)], {**JAKARTA, "country": "SG"}) == {}
    medan = {"country": "ID", "region": "Sumatera Utara", "city": "Medan",
             "postal_code": "20111"}
    assert options_for(kurir, [(500, 1)], medan) == {}  # no zone for "2" in SETTINGS


def test_the_plugin_answers_only_for_its_own_carrier(kurir):
    _, plugins = kurir
    assert plugins.first("niaga_create_shipment", carrier="flat-rate", order=None,
                         fulfillment=None) is None
    assert plugins.first("niaga_track_shipment", carrier="flat-rate",
                         tracking_number="KIDREG00000000000") is None


# -- settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "problem"), [
    ({"origin": "bali"}, "origin: 'bali' is not one of the zones (jabodetabek, jawa, "
                         "sulawesi-maluku, papua)"),
    ({"tolerance_grams": 1000}, "tolerance_grams: must be less than 1000"),
    ({"max_weight_kg": 0}, "max_weight_kg: must be at least 1"),
    ({"zones": {"jabodetabek": {"postal": ["1O"]}}},
     "zones.jabodetabek.postal[0]: '1O' is not the start of a postal code (1 to 5 digits, "
     "like \"1\" or \"80\")"),
    ({"zones": {"jabodetabek": {"postal": ["1"]}, "jawa": {"postal": ["4", "1"]}}},
     "zones.jawa.postal[1]: '1' is already in zone 'jabodetabek'"),
    ({"zones": {"jabodetabek": {}}},
     "zones.jabodetabek: list at least one postal prefix or province"),
    ({"services": {"reg": {"eta_days": [2], "per_kg": {"jawa": "1"}}}},
     "services.reg: the service code must be 2 to 8 capital letters (REG, YES)"),
    ({"services": {"REG": {"eta_days": [3, 2], "per_kg": {"jawa": "12000"}}}},
     "services.REG.eta_days: give [days] or [min, max], at least 1 day, not [3, 2]"),
    ({"services": {"REG": {"eta_days": [2], "per_kg": {"jawa": "12.000,50"}}}},
     "services.REG.per_kg.jawa: '12.000,50' is not a decimal amount"),
    ({"services": {"REG": {"eta_days": [2], "per_kg": {"jawa": "0"}}}},
     "services.REG.per_kg.jawa: must be more than zero"),
    ({"services": {"REG": {"eta_days": [2], "per_kg": {"bali": "9000"}}}},
     "services.REG.per_kg.bali: no zone of that name (zones: jabodetabek, jawa, "
     "sulawesi-maluku, papua)"),
    ({"services": {"REG": {"eta_days": [2], "label": "REG {days}", "per_kg": {"jawa": "1"}}}},
     "services.REG.label: 'REG {days}' may use only the placeholders {service} and {eta}"),
    ({"services": {}}, "services: at least one service is required"),
])
def test_a_bad_setting_fails_the_load_naming_the_key(niaga_market, niaga_plugins, changes,
                                                     problem):
    market = niaga_market("ID", currency="IDR", plugins={"kurir-id": settings(**changes)})
    with pytest.raises(ConfigError) as error:
        niaga_plugins(market, extra={"kurir-id": KurirId}, discover=False)
    assert error.value.problems == [f"markets.ID.plugins.kurir-id: {problem}"]


def test_types_and_unknown_keys_are_checked_by_the_schema(niaga_market, niaga_plugins):
    for changes, problem in [
        ({"max_weight_kg": "50"}, "markets.ID.plugins.kurir-id.max_weight_kg: "
                                  "Expected `int`, got `str`"),
        ({"tolerance": 300}, "markets.ID.plugins.kurir-id: Object contains unknown field "
                             "`tolerance`"),
    ]:
        market = niaga_market("ID", currency="IDR", plugins={"kurir-id": settings(**changes)})
        with pytest.raises(ConfigError) as error:
            niaga_plugins(market, extra={"kurir-id": KurirId}, discover=False)
        assert error.value.problems == [problem]


def test_rates_are_parsed_in_the_markets_currency(niaga_market, niaga_plugins):
    # the same table in a two-decimal market: "9000" is 9000.00, and "9000.5" is accepted
    reg = {"eta_days": [2], "per_kg": {"jabodetabek": "9000.5"}}
    market = niaga_market("ID", currency="IDR",
                          plugins={"kurir-id": settings(services={"REG": reg})})
    plugin = niaga_plugins(market, extra={"kurir-id": KurirId}, discover=False)
    assert plugin.pm.get_plugin("kurir-id").tariff.services["REG"].per_kg == {
        "jabodetabek": Money(900050, "IDR")}
    jpy = niaga_market("JP", currency="JPY",
                       plugins={"kurir-id": settings(services={"REG": reg})})
    with pytest.raises(ConfigError, match=r"services.REG.per_kg.jabodetabek: '9000.5' has "
                                          r"more than 0 decimal digit\(s\)"):
        niaga_plugins(jpy, extra={"kurir-id": KurirId}, discover=False)


# -- shipments and tracking ---------------------------------------------------------------


def shipped_order(kurir, option_id="kurir-id:reg"):
    market, plugins = kurir
    cart, _ = build_cart(market, [("BATIK-SHIRT-M", 2, 289_000_00, "standard", 250)],
                         address=Address(**JAKARTA))
    option = next(o for o in plugins.collect(
        "niaga_delivery_options", context=DeliveryContext(cart=cart, locations=[], stock={}),
        market=market) if o.id == option_id)
    from kernel.services.carts import as_delivery  # what the cart service stores

    cart.delivery = as_delivery(option)
    return order_for(cart, market, order_id="ord-kurir-1")


def test_tracking_numbers_are_derived_from_order_and_fulfilment(kurir):
    _, plugins = kurir
    order = shipped_order(kurir)
    first = Fulfillment(id="ful-1", location_id="id-jkt-wh", lines=[])
    shipment = plugins.first("niaga_create_shipment", carrier="kurir-id", order=order,
                             fulfillment=first)
    assert shipment.carrier == "kurir-id"
    number = shipment.tracking_number
    assert number == tracking_number("REG", "ord-kurir-1", "ful-1")
    assert number.startswith("KIDREG") and len(number) == 17 and number[6:].isdigit()
    assert luhn_digit(number[6:16]) == number[16]
    again = plugins.first("niaga_create_shipment", carrier="kurir-id", order=order,
                          fulfillment=first)
    assert again.tracking_number == number
    other = Fulfillment(id="ful-2", location_id="id-jkt-wh", lines=[])
    assert plugins.first("niaga_create_shipment", carrier="kurir-id", order=order,
                         fulfillment=other).tracking_number != number


def test_the_service_code_is_in_the_tracking_number(kurir):
    _, plugins = kurir
    order = shipped_order(kurir, "kurir-id:yes")
    shipment = plugins.first("niaga_create_shipment", carrier="kurir-id", order=order,
                             fulfillment=Fulfillment(id="f", location_id=None, lines=[]))
    assert shipment.tracking_number.startswith("KIDYES")


def test_tracking_is_offline_and_knows_its_own_numbers(kurir):
    _, plugins = kurir
    number = tracking_number("REG", "ord-1", "ful-1")
    status = plugins.first("niaga_track_shipment", carrier="kurir-id", tracking_number=number)
    assert (status.status, status.tracking_number) == ("label_created", number)
    assert "offline" in status.detail
    typo = number[:-2] + str((int(number[-2]) + 1) % 10) + number[-1]  # one digit mistyped
    for bad in (typo, "JNE1234567890", ""):
        status = plugins.first("niaga_track_shipment", carrier="kurir-id", tracking_number=bad)
        assert status.status == "unknown", bad


# -- through the kernel: checkout and cash on delivery --------------------------------------


async def test_checkout_with_kurir_id_and_cod_only_where_the_service_collects_cash(
        niaga_kernel, niaga_cart, niaga_order):
    niaga = await niaga_kernel(plugins={"kurir-id": SETTINGS, "cod": {}}, in_markets=["ID"],
                               extra={"kurir-id": KurirId})
    lines = [("BATIK-SHIRT-M", 2)]
    cart = await niaga_cart(niaga, "ID", lines, delivery="kurir-id:yes")
    assert isinstance(cart, Cart)
    assert (cart.delivery.option_id, cart.shipping_total) == ("kurir-id:yes", idr(18000))
    with pytest.raises(ValidationError, match="refused by rule kurir-id:cod: Kurir ID YES"):
        await niaga_order(niaga, "ID", cart=cart, payment={"method": "cod"})

    order = await niaga_order(niaga, "ID", lines, delivery="kurir-id:reg",
                              payment={"method": "cod"})
    assert (order.status, order.delivery.carrier) == ("pending_payment", "kurir-id")
    assert order.shipping_total == idr(9000)
    paid = await niaga_order(niaga, "ID", lines, delivery="kurir-id:yes")  # testpay
    assert (paid.status, paid.shipping_total) == ("paid", idr(18000))
