"""Risk rules: refuse an order (422 naming the rule) or place it on hold for a person.

Three kinds of rule, each refusing (``"reject"``) or holding (``"hold"``) the order;
a held order is placed with status ``on_hold`` and its payment as the gateway
left it, waits for ``POST /admin/orders/{id}/release`` (or a cancel), and
nothing ships meanwhile.

Settings (``[markets.XX.plugins.risk-rules]``), at least one rule:

- ``max_order_value``: the largest order total (a decimal string in the
  market's currency, what would be charged) that passes unreviewed;
  ``max_order_value_action`` (default ``"hold"``) says what happens above it.
  Rule name: ``max-order-value``.
- ``velocity``: a list of ``{ key, max_orders, window_hours, action }``.
  ``key`` is ``"customer"`` (the signed-in customer), ``"email"`` (the
  address's email, case-insensitive) or ``"card"`` (the card token of the
  checkout body: ``card_token``, ``payment_method`` or ``token``, compared by
  fingerprint). When ``max_orders`` orders with the same key were already
  placed in the last ``window_hours`` (in any market, whatever became of them),
  the next one is refused (``action = "reject"``, the default) or held. Rule
  names: ``velocity-customer``, ``velocity-email``, ``velocity-card``. A
  checkout without the key (a guest, no email, no card token) passes that rule.
- ``country_mismatch`` (default ``"off"``): ``"reject"`` or ``"hold"`` an order
  whose billing country (``payment.billing_country`` in the checkout body)
  differs from the country of the cart's address. Without either it passes.
  Rule name: ``country-mismatch``.

Counts come from the kernel (one query per checkout, only because this plugin
asks for its windows); two checkouts racing each other both see the count
from before either, so a burst can overshoot ``max_orders`` by the number of
checkouts in flight at once.

Example::

    [markets.US.plugins.risk-rules]
    max_order_value = "1500.00"          # review anything bigger
    velocity = [
      { key = "card", max_orders = 10, window_hours = 1 },              # card testing
      { key = "email", max_orders = 20, window_hours = 24, action = "hold" },
    ]
    country_mismatch = "hold"
"""

from __future__ import annotations

from typing import Literal

import msgspec

from kernel import Cart, Market, Money, Veto, hookimpl
from kernel.checkout import CheckoutContext

Action = Literal["reject", "hold"]
KEY_LABEL = {"customer": "this customer", "email": "this email", "card": "this card"}
MAX_WINDOW_HOURS = 24 * 366


class VelocityRule(msgspec.Struct, forbid_unknown_fields=True):
    key: Literal["customer", "email", "card"]
    max_orders: int
    window_hours: float
    action: Action = "reject"


class RiskRules:
    name = "risk-rules"
    family = "risk"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        max_order_value: str | None = None
        max_order_value_action: Action = "hold"
        velocity: list[VelocityRule] = []
        country_mismatch: Literal["off", "reject", "hold"] = "off"

    def __init__(self, config: Config, market: Market):
        self.config = config
        self.market = market
        self.max_value: Money | None = None
        if config.max_order_value is not None:
            try:
                self.max_value = Money.parse(config.max_order_value, market.currency)
            except ValueError as exc:
                raise ValueError(f"max_order_value: {exc}") from exc
            if self.max_value.amount <= 0:
                raise ValueError("max_order_value: must be more than zero")
        for i, rule in enumerate(config.velocity):
            if rule.max_orders < 1:
                raise ValueError(f"velocity[{i}].max_orders: must be at least 1")
            if not 0 < rule.window_hours <= MAX_WINDOW_HOURS:
                raise ValueError(f"velocity[{i}].window_hours: must be more than 0 and at "
                                 f"most {MAX_WINDOW_HOURS} (a year)")
        if self.max_value is None and not config.velocity and config.country_mismatch == "off":
            raise ValueError("no rule is set: give max_order_value, velocity or "
                             "country_mismatch")

    @hookimpl
    def niaga_velocity_windows(self, market: Market) -> list[float]:
        return [rule.window_hours for rule in self.config.velocity]

    @hookimpl
    def niaga_before_place_order(self, cart: Cart, market: Market,
                                 context: CheckoutContext) -> list[Veto]:
        vetoes: list[Veto] = []
        if self.max_value is not None and cart.total > self.max_value:
            vetoes.append(Veto("max-order-value",
                               f"the order total {cart.total} is above {self.max_value}",
                               hold=self.config.max_order_value_action == "hold"))
        for rule in self.config.velocity:
            seen = context.recent_orders(rule.window_hours).count(rule.key)
            if seen >= rule.max_orders:
                vetoes.append(Veto(
                    f"velocity-{rule.key}",
                    f"{KEY_LABEL[rule.key]} placed {seen} order(s) in the last "
                    f"{rule.window_hours:g} h; at most {rule.max_orders} are allowed",
                    hold=rule.action == "hold"))
        billing = context.billing_country
        shipping = cart.address.country.upper() if cart.address else None
        if (self.config.country_mismatch != "off" and billing and shipping
                and billing != shipping):
            vetoes.append(Veto("country-mismatch",
                               f"billing country {billing} differs from the address's "
                               f"country {shipping}",
                               hold=self.config.country_mismatch == "hold"))
        return vetoes
