"""Points: earn per currency unit paid, tiers by lifetime spend, redeem as a discount.

The kernel keeps the ledger and the one balance a customer has across channels and
markets; this plugin only decides the numbers, per market.

Settings (``[markets.XX.plugins.points]``), decimals as strings:

- ``earn_per_unit`` (required): points per one major unit of the market's currency
  paid, e.g. ``"1"`` per euro, ``"0.01"`` per yen (1 per ¥100), ``"0.0001"`` per
  rupiah (1 per Rp10.000). Earned on the order's total minus shipping (tax
  included where prices include it), rounded down, then multiplied by the tier's
  multiplier and rounded down again.
- ``point_value`` (required): what one point is worth in the market's currency,
  e.g. ``"0.01"`` (a euro cent), ``"1"`` (one yen). Fractions of the minor unit
  are fine ("0.005"): a discount is rounded down to the minor unit and never
  costs a point more than it needs. Since the balance is shared by all markets,
  keep a point worth about the same everywhere.
- ``max_redeem_share`` (default ``"50"``): at most this percent of the goods,
  after other discounts and before shipping, may be paid with points. Asking for
  more uses only what fits.
- ``min_points`` (default 0): fewer points than this cannot be redeemed.
- ``tiers`` (default one tier ``member`` from 0 with multiplier ``"1"``): a list
  of ``{ name, min_lifetime_points, multiplier }``. A customer is in the highest
  tier whose ``min_lifetime_points`` their lifetime base points (points before
  multipliers, net of returns) reach; one tier must start at 0.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import msgspec

from kernel import LoyaltyUse, Market, Money, ValidationError, hookimpl, percent
from kernel.money import MoneyError, currency_digits

if TYPE_CHECKING:
    from kernel import Cart
    from kernel.orders import Order


class Tier(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    min_lifetime_points: int
    multiplier: str


def _default_tiers() -> list[Tier]:
    return [Tier(name="member", min_lifetime_points=0, multiplier="1")]


def _decimal(key: str, text: str, *, positive: bool = False) -> Fraction:
    try:
        value = Decimal(text.strip())
        if not value.is_finite():
            raise InvalidOperation
    except (InvalidOperation, AttributeError):
        raise ValueError(f"{key}: {text!r} is not a decimal number") from None
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{key}: must be {'greater than' if positive else 'at least'} 0")
    return Fraction(value)


class Points:
    name = "points"
    family = "loyalty"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        earn_per_unit: str
        point_value: str
        max_redeem_share: str = "50"
        min_points: int = 0
        tiers: list[Tier] = msgspec.field(default_factory=_default_tiers)

    def __init__(self, config: Config, market: Market):
        self.config = config
        self.market = market
        self.unit = 10 ** currency_digits(market.currency)  # minor units per major unit
        self.earn_rate = _decimal("earn_per_unit", config.earn_per_unit)
        # a point's value in minor units of the market's currency (may be a fraction)
        self.point_minor = _decimal("point_value", config.point_value, positive=True) * self.unit
        try:
            self.share = percent(config.max_redeem_share)
        except MoneyError as exc:
            raise ValueError(f"max_redeem_share: {exc}") from None
        if config.min_points < 0:
            raise ValueError("min_points: must be at least 0")
        if not config.tiers:
            raise ValueError("tiers: at least one tier is required")
        self.tiers: list[tuple[int, str, Fraction, str]] = []
        names: set[str] = set()
        for i, tier in enumerate(config.tiers):
            if not tier.name.strip():
                raise ValueError(f"tiers[{i}].name: must not be empty")
            if tier.name in names:
                raise ValueError(f"tiers[{i}].name: {tier.name!r} is used twice")
            names.add(tier.name)
            if tier.min_lifetime_points < 0:
                raise ValueError(f"tiers[{i}].min_lifetime_points: must be at least 0")
            multiplier = _decimal(f"tiers[{i}].multiplier", tier.multiplier, positive=True)
            self.tiers.append((tier.min_lifetime_points, tier.name, multiplier, tier.multiplier))
        self.tiers.sort()
        starts = [t[0] for t in self.tiers]
        if starts[0] != 0:
            raise ValueError("tiers: one tier must start at min_lifetime_points = 0")
        if len(set(starts)) != len(starts):
            raise ValueError("tiers: two tiers start at the same min_lifetime_points")

    def tier_for(self, lifetime_base_points: int) -> tuple[int, str, Fraction, str]:
        found = self.tiers[0]
        for tier in self.tiers:
            if lifetime_base_points >= tier[0]:
                found = tier
        return found

    @hookimpl
    def niaga_loyalty_quote(self, cart: Cart, market: Market, customer_id: str, points: int,
                            balance: int) -> LoyaltyUse | None:
        if market.code != self.market.code:
            return None
        if points > balance:
            raise ValidationError.field("points", f"only {balance} points available")
        if points < self.config.min_points:
            raise ValidationError.field("points",
                                        f"use at least {self.config.min_points} points")
        goods = cart.subtotal.amount - cart.discount_total.amount
        cap = goods * self.share / 100  # minor units points may pay, exact
        usable = min(points, int(cap / self.point_minor))
        discount = int(usable * self.point_minor)
        # never spend a point more than the (rounded-down) discount needs
        usable = min(usable, -(-discount * self.point_minor.denominator
                               // self.point_minor.numerator) if discount else 0)
        if usable <= 0 or usable < self.config.min_points:
            raise ValidationError.field(
                "points", f"this cart takes at most {usable} points "
                          f"({self.config.max_redeem_share}% of the goods)"
                          + (f"; at least {self.config.min_points} are needed"
                             if self.config.min_points else ""))
        return LoyaltyUse(points=usable, discount=Money(discount, cart.currency),
                          source=self.name)

    @hookimpl
    def niaga_loyalty_earn(self, order: Order, market: Market,
                           lifetime_base_points: int) -> tuple[int, int] | None:
        if market.code != self.market.code or order.currency != self.market.currency:
            return None
        paid = max(order.total.amount - order.shipping_total.amount, 0)
        base = int(Fraction(paid, self.unit) * self.earn_rate)
        multiplier = self.tier_for(lifetime_base_points)[2]
        return int(base * multiplier), base

    @hookimpl
    def niaga_loyalty_tier(self, lifetime_base_points: int,
                           market: Market) -> dict[str, Any] | None:
        if market.code != self.market.code:
            return None
        _start, name, _multiplier, text = self.tier_for(lifetime_base_points)
        return {"name": name, "multiplier": text}
