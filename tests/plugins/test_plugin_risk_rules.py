"""The ``risk-rules`` plugin: order value, velocity per customer/email/card, country mismatch."""

from __future__ import annotations

import pytest

from kernel import Veto
from kernel.cart import Address
from kernel.checkout import CheckoutContext, RecentOrders, card_fingerprint
from kernel.errors import ConfigError, ValidationError
from kernel.money import Money
from kernel.testing import check_plugin_conformance, make_market, make_plugins
from plugins.risk.rules import RiskRules

US = {"max_order_value": "2000.00",
      "velocity": [{"key": "card", "max_orders": 3, "window_hours": 1},
                   {"key": "email", "max_orders": 5, "window_hours": 24, "action": "hold"},
                   {"key": "customer", "max_orders": 2, "window_hours": 24}],
      "country_mismatch": "hold"}


@pytest.fixture
def usd(build):
    return build.market("US", "USD", plugins={"risk-rules": US}, include_tax=False)


@pytest.fixture
def rules(build, usd):
    return build.plugin(RiskRules, usd)


def cart_of(build, market, total: str, country: str = "US"):
    cart = build.cart(market, [("MUG", 1, total, "standard")],
                      address=Address(country=country, city="Reno", email="a@example.com"))
    cart.total = Money.parse(total, market.currency)
    return cart


def context(recent: dict[float, tuple[int, int, int]] | None = None, *,
            billing: str | None = None) -> CheckoutContext:
    counts = {h: RecentOrders(window_hours=h, customer=c, email=e, card=k)
              for h, (c, e, k) in (recent or {1.0: (0, 0, 0), 24.0: (0, 0, 0)}).items()}
    return CheckoutContext(payment_method="testpay", billing_country=billing,
                           email="a@example.com", card_fingerprint="f" * 64, recent=counts)


def rules_of(vetoes: list[Veto]) -> list[tuple[str, bool]]:
    return [(v.rule, v.hold) for v in vetoes]


def test_risk_rules_conform_and_load_from_entry_points():
    assert check_plugin_conformance(RiskRules) == []
    plugins = make_plugins(make_market("US", currency="USD", plugins={"risk-rules": US}))
    assert plugins.implementers("niaga_before_place_order") == ["risk-rules"]
    assert plugins.collect("niaga_velocity_windows", market=plugins.market) == [1, 24, 24]


def test_an_ordinary_order_passes(build, usd, rules):
    assert rules.niaga_before_place_order(cart_of(build, usd, "99.99"), usd, context()) == []


def test_max_order_value_holds_above_the_limit_and_not_at_it(build, usd, rules):
    assert rules.niaga_before_place_order(cart_of(build, usd, "2000.00"), usd, context()) == []
    vetoes = rules.niaga_before_place_order(cart_of(build, usd, "2000.01"), usd, context())
    assert rules_of(vetoes) == [("max-order-value", True)]
    assert "2000.01 USD" in vetoes[0].reason and "2000.00 USD" in vetoes[0].reason


def test_max_order_value_can_reject(build):
    market = build.market("ID", "IDR", plugins={"risk-rules": {
        "max_order_value": "25000000", "max_order_value_action": "reject"}})
    rules = build.plugin(RiskRules, market)
    vetoes = rules.niaga_before_place_order(cart_of(build, market, "25000000.01", "ID"),
                                            market, context())
    assert rules_of(vetoes) == [("max-order-value", False)]


@pytest.mark.parametrize("recent,expected", [
    ({1.0: (0, 0, 2), 24.0: (1, 4, 2)}, []),                       # all under their limits
    ({1.0: (0, 0, 3), 24.0: (0, 0, 3)}, [("velocity-card", False)]),  # the 4th card use
    ({1.0: (0, 0, 0), 24.0: (0, 5, 0)}, [("velocity-email", True)]),  # email: hold
    ({1.0: (2, 2, 0), 24.0: (2, 2, 0)}, [("velocity-customer", False)]),
    ({1.0: (0, 0, 9), 24.0: (9, 9, 9)},
     [("velocity-card", False), ("velocity-email", True), ("velocity-customer", False)]),
])
def test_velocity_reads_the_counts_of_its_own_window_and_key(build, usd, rules, recent,
                                                             expected):
    vetoes = rules.niaga_before_place_order(cart_of(build, usd, "10.00"), usd, context(recent))
    assert rules_of(vetoes) == expected


def test_velocity_reason_says_how_many_in_which_window(build, usd, rules):
    (veto,) = rules.niaga_before_place_order(cart_of(build, usd, "10.00"), usd,
                                             context({1.0: (0, 0, 3), 24.0: (0, 0, 3)}))
    assert veto.reason == "this card placed 3 order(s) in the last 1 h; at most 3 are allowed"


def test_a_window_nobody_asked_for_is_a_named_error(build, usd, rules):
    with pytest.raises(KeyError, match="niaga_velocity_windows"):
        rules.niaga_before_place_order(cart_of(build, usd, "10.00"), usd,
                                       context({1.0: (0, 0, 0)}))


@pytest.mark.parametrize("billing,country,expected", [
    ("US", "US", []), (None, "US", []), ("DE", "US", [("country-mismatch", True)]),
])
def test_country_mismatch(build, usd, rules, billing, country, expected):
    vetoes = rules.niaga_before_place_order(cart_of(build, usd, "10.00", country), usd,
                                            context(billing=billing))
    assert rules_of(vetoes) == expected


def test_country_mismatch_off_by_default_and_without_an_address(build):
    market = build.market("US", "USD", plugins={"risk-rules": {"max_order_value": "10.00"}})
    rules = build.plugin(RiskRules, market)
    assert rules.niaga_before_place_order(cart_of(build, market, "1.00"), market,
                                          context(billing="DE")) == []
    strict = build.market("US", "USD", plugins={"risk-rules": {"country_mismatch": "reject"}})
    rules = build.plugin(RiskRules, strict)
    cart = cart_of(build, strict, "1.00")
    cart.address = None
    assert rules.niaga_before_place_order(cart, strict, context(billing="DE")) == []
    assert rules.niaga_velocity_windows(strict) == []


@pytest.mark.parametrize("settings,problem", [
    ({}, "no rule is set"),
    ({"max_order_value": "12.345"}, "max_order_value: '12.345' has more than 2 decimal"),
    ({"max_order_value": "0"}, "max_order_value: must be more than zero"),
    ({"max_order_value_action": "ask"}, "max_order_value_action"),
    ({"velocity": [{"key": "phone", "max_orders": 1, "window_hours": 1}]}, "velocity[0].key"),
    ({"velocity": [{"key": "card", "max_orders": 0, "window_hours": 1}]},
     "velocity[0].max_orders: must be at least 1"),
    ({"velocity": [{"key": "card", "max_orders": 1, "window_hours": 0}]},
     "velocity[0].window_hours: must be more than 0"),
    ({"velocity": [{"key": "card", "max_orders": 1, "window_hours": 1, "per": "ip"}]},
     "velocity[0]"),
    ({"country_mismatch": "yes"}, "country_mismatch"),
])
def test_bad_settings_name_the_key(settings, problem):
    market = make_market("US", currency="USD", plugins={"risk-rules": settings})
    with pytest.raises(ConfigError) as error:
        make_plugins(market)
    (text,) = error.value.problems
    assert text.startswith("markets.US.plugins.risk-rules"), text
    assert problem in text, text


def test_card_fingerprints_hide_the_token_and_tell_methods_apart():
    one = card_fingerprint("stripe", {"payment_method": "pm_123"})
    assert one and "pm_123" not in one and len(one) == 32  # 128 bits of SHA-256
    assert card_fingerprint("stripe", {"payment_method": "pm_123"}) == one
    assert card_fingerprint("other", {"payment_method": "pm_123"}) != one
    assert card_fingerprint("testpay", {"token": "tok_ok"}) != card_fingerprint(
        "testpay", {"token": "tok_other"})
    assert card_fingerprint("bank-transfer", {}) is None
    assert card_fingerprint("x", {"card_token": "c", "token": "t"}) == card_fingerprint(
        "x", {"card_token": "c"})


def test_billing_country_must_be_a_country_code():
    from kernel.checkout import billing_country

    assert billing_country({"billing_country": "US"}) == "US"
    assert billing_country({}) is None
    for bad in ("us", "USA", 1, ""):
        with pytest.raises(ValidationError) as error:
            billing_country({"billing_country": bad})
        assert error.value.errors[0]["field"] == "payment.billing_country"
