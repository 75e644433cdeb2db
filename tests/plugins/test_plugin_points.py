"""The ``points`` loyalty plugin: earn rates per currency, tiers, the redeem cap, refusals."""

from __future__ import annotations

import pytest

from kernel.cart import LoyaltyUse
from kernel.errors import ConfigError, ValidationError
from kernel.markets import Market
from kernel.money import Money
from kernel.orders import Order, OrderLine, Payment
from kernel.testing import check_plugin_conformance
from plugins.loyalty.points import Points

TIERS = [
    {"name": "member", "min_lifetime_points": 0, "multiplier": "1"},
    {"name": "silver", "min_lifetime_points": 500, "multiplier": "1.25"},
    {"name": "gold", "min_lifetime_points": 2000, "multiplier": "1.5"},
]
SETTINGS = {  # (currency, settings)
    "DE": ("EUR", {"earn_per_unit": "1", "point_value": "0.01", "tiers": TIERS}),
    "US": ("USD", {"earn_per_unit": "1", "point_value": "0.01"}),
    "JP": ("JPY", {"earn_per_unit": "0.01", "point_value": "1", "min_points": 100}),
    "ID": ("IDR", {"earn_per_unit": "0.001", "point_value": "10"}),
}


def points_for(build, code: str, **overrides) -> tuple[Market, Points]:
    currency, settings = SETTINGS[code]
    market = build.market(code, currency, plugins={"points": {**settings, **overrides}})
    return market, build.plugin(Points, market)


def order(build, market: Market, goods: str, shipping: str = "0",
          customer_id: str | None = "cust-1") -> Order:
    """A paid order of one line worth ``goods`` plus ``shipping`` (major units)."""
    cart = build.cart(market, [("SKU-A", 1, goods, "standard")])
    ship = Money.parse(shipping, market.currency)
    total = cart.subtotal + ship
    zero = Money.zero(market.currency)
    return Order(
        id="ord-1", number=f"{market.code}-1", cart_id=cart.id, market=market.code,
        channel="web", channels=["web"], customer_id=customer_id, currency=market.currency,
        status="paid", lines=[OrderLine(**{f: getattr(li, f) for f in li.__struct_fields__})
                              for li in cart.lines],
        address=None, delivery=None, loyalty=None, subtotal=cart.subtotal,
        discount_total=zero, shipping_total=ship, tax_total=zero, total=total,
        prices_include_tax=True, money_policy=market.policy, adjustments=[],
        payment=Payment(method="testpay", gateway="testpay", status="captured",
                        authorized=total, captured=total, refunded=zero),
        allocations=[], created_at=0.0)


def test_conformance():
    assert check_plugin_conformance(Points) == []
    assert Points.name == "points" and Points.family == "loyalty"


@pytest.mark.parametrize(("code", "goods", "shipping", "expected"), [
    ("DE", "39.90", "4.90", 39),  # 1 per euro, shipping earns nothing, rounded down
    ("DE", "0.99", "0", 0),
    ("US", "100.00", "5.99", 100),
    ("JP", "4980", "600", 49),  # 1 per ¥100 (JPY has no minor unit)
    ("JP", "99", "0", 0),
    ("ID", "289000", "15000", 289),  # 1 per Rp1.000 (IDR has 2 digits)
    ("ID", "289999.99", "0", 289),
])
def test_earn_per_currency_unit_paid(build, code, goods, shipping, expected):
    market, plugin = points_for(build, code)
    assert plugin.niaga_loyalty_earn(order(build, market, goods, shipping), market, 0) == (
        expected, expected)


def test_tiers_multiply_earn_by_lifetime_base_points(build):
    market, plugin = points_for(build, "DE")
    paid = order(build, market, "39.90")
    assert plugin.niaga_loyalty_earn(paid, market, 0) == (39, 39)
    assert plugin.niaga_loyalty_earn(paid, market, 499) == (39, 39)
    assert plugin.niaga_loyalty_earn(paid, market, 500) == (48, 39)  # 48.75 rounded down
    assert plugin.niaga_loyalty_earn(paid, market, 2000) == (58, 39)  # 58.5
    assert plugin.niaga_loyalty_tier(0, market) == {"name": "member", "multiplier": "1"}
    assert plugin.niaga_loyalty_tier(1999, market) == {"name": "silver", "multiplier": "1.25"}
    assert plugin.niaga_loyalty_tier(10**9, market) == {"name": "gold", "multiplier": "1.5"}
    # tiers may be listed in any order
    market, plugin = points_for(build, "DE", tiers=list(reversed(TIERS)))
    assert plugin.niaga_loyalty_tier(600, market)["name"] == "silver"
    # the default: one tier for everyone
    market, plugin = points_for(build, "US")
    assert plugin.niaga_loyalty_tier(10**6, market) == {"name": "member", "multiplier": "1"}


def test_another_market_is_not_this_plugins(build):
    _, plugin = points_for(build, "DE")
    other, _ = points_for(build, "US")
    cart = build.cart(other, [("SKU-A", 1, "10.00", "standard")])
    assert plugin.niaga_loyalty_quote(cart, other, "c", 100, 1000) is None
    assert plugin.niaga_loyalty_earn(order(build, other, "10.00"), other, 0) is None
    assert plugin.niaga_loyalty_tier(0, other) is None


def test_a_quote_is_capped_at_the_share_of_the_goods(build):
    market, plugin = points_for(build, "DE")
    cart = build.cart(market, [("SKU-A", 1, "39.90", "standard")])
    use = plugin.niaga_loyalty_quote(cart, market, "c", 500, 10_000)
    assert use == LoyaltyUse(points=500, discount=Money(500, "EUR"), source="points")
    use = plugin.niaga_loyalty_quote(cart, market, "c", 5000, 10_000)
    assert use == LoyaltyUse(points=1995, discount=Money(1995, "EUR"), source="points")
    # after other discounts: 39.90 - 9.90 = 30.00, half of it is 15.00
    discounted = build.cart(market, [("SKU-A", 1, "39.90", "standard")], discount="9.90")
    assert plugin.niaga_loyalty_quote(discounted, market, "c", 5000, 10_000).points == 1500
    market, plugin = points_for(build, "DE", max_redeem_share="100")
    assert plugin.niaga_loyalty_quote(cart, market, "c", 5000, 10_000).points == 3990


@pytest.mark.parametrize(("code", "goods", "points", "used", "discount"), [
    ("JP", "4980", 10_000, 2490, "2490"),  # ¥1 a point, half of ¥4980
    ("ID", "289000", 100_000, 14450, "144500.00"),  # Rp10 a point, half of Rp289.000
    ("US", "19.99", 5000, 999, "9.99"),  # half of 19.99 is 9.995: rounded down
])
def test_quotes_in_each_currency(build, code, goods, points, used, discount):
    market, plugin = points_for(build, code)
    cart = build.cart(market, [("SKU-A", 1, goods, "standard")])
    use = plugin.niaga_loyalty_quote(cart, market, "c", points, 10**6)
    assert use.points == used
    assert use.discount == Money.parse(discount, market.currency)


def test_a_fraction_of_a_cent_per_point_never_wastes_a_point(build):
    market, plugin = points_for(build, "DE", point_value="0.005")
    cart = build.cart(market, [("SKU-A", 1, "10.00", "standard")])
    use = plugin.niaga_loyalty_quote(cart, market, "c", 7, 100)
    assert use.discount == Money(3, "EUR") and use.points == 6  # 7 x 0.5 cent = 3 cents
    use = plugin.niaga_loyalty_quote(cart, market, "c", 8, 100)
    assert use.discount == Money(4, "EUR") and use.points == 8


def test_more_than_the_balance_is_refused(build):
    market, plugin = points_for(build, "DE")
    cart = build.cart(market, [("SKU-A", 1, "39.90", "standard")])
    with pytest.raises(ValidationError) as refused:
        plugin.niaga_loyalty_quote(cart, market, "c", 500, 499)
    assert refused.value.errors[0]["field"] == "points"
    assert "499" in refused.value.detail
    assert plugin.niaga_loyalty_quote(cart, market, "c", 499, 499).points == 499


def test_min_points(build):
    market, plugin = points_for(build, "JP")  # at least 100 points
    cart = build.cart(market, [("SKU-A", 1, "4980", "standard")])
    with pytest.raises(ValidationError, match="at least 100"):
        plugin.niaga_loyalty_quote(cart, market, "c", 99, 1000)
    assert plugin.niaga_loyalty_quote(cart, market, "c", 100, 1000).points == 100
    # the cap leaves fewer than the minimum: refused, naming both
    small = build.cart(market, [("SKU-A", 1, "150", "standard")])
    with pytest.raises(ValidationError) as refused:
        plugin.niaga_loyalty_quote(small, market, "c", 500, 1000)
    assert refused.value.errors[0]["field"] == "points"
    assert "at most 75" in refused.value.detail and "100" in refused.value.detail


def test_an_empty_cart_takes_no_points(build):
    market, plugin = points_for(build, "DE")
    cart = build.cart(market, [])
    with pytest.raises(ValidationError, match="at most 0"):
        plugin.niaga_loyalty_quote(cart, market, "c", 100, 1000)


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"earn_per_unit": "lots"}, "markets.DE.plugins.points: earn_per_unit: 'lots' is not a "
                                "decimal number"),
    ({"earn_per_unit": "-1"}, "markets.DE.plugins.points: earn_per_unit: must be at least 0"),
    ({"point_value": "0"}, "markets.DE.plugins.points: point_value: must be greater than 0"),
    ({"point_value": "NaN"}, "markets.DE.plugins.points: point_value: 'NaN' is not a decimal"),
    ({"max_redeem_share": "150"}, "markets.DE.plugins.points: max_redeem_share: "),
    ({"min_points": -5}, "markets.DE.plugins.points: min_points: must be at least 0"),
    ({"tiers": []}, "markets.DE.plugins.points: tiers: at least one tier"),
    ({"tiers": TIERS[1:]}, "markets.DE.plugins.points: tiers: one tier must start at "
                           "min_lifetime_points = 0"),
    ({"tiers": [*TIERS, {**TIERS[1], "name": "platinum"}]},
     "markets.DE.plugins.points: tiers: two tiers start at the same"),
    ({"tiers": [*TIERS, {**TIERS[0], "min_lifetime_points": 9}]},
     "markets.DE.plugins.points: tiers[3].name: 'member' is used twice"),
    ({"tiers": [TIERS[0], {**TIERS[1], "multiplier": "x2"}]},
     "markets.DE.plugins.points: tiers[1].multiplier: 'x2' is not a decimal number"),
    ({"tiers": [{"name": "member", "min_lifetime_points": 0}]},
     "markets.DE.plugins.points.tiers[0]: Object missing required field `multiplier`"),
    ({"earn_rate": "1"}, "markets.DE.plugins.points: Object contains unknown field `earn_rate`"),
])
def test_bad_config_names_the_key(build, overrides, problem):
    with pytest.raises(ConfigError) as error:
        points_for(build, "DE", **overrides)
    assert any(p.startswith(problem) for p in error.value.problems), error.value.problems


def test_required_settings(build):
    market = build.market("DE", "EUR", plugins={"points": {"earn_per_unit": "1"}})
    with pytest.raises(ConfigError) as error:
        build.plugin(Points, market)
    assert error.value.problems == [
        "markets.DE.plugins.points: Object missing required field `point_value`"]
