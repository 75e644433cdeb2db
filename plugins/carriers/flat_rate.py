"""Flat-rate shipping: fixed prices per delivery option, free above an order value.

Settings (``[markets.XX.plugins.flat-rate]``):

- ``options`` (required): a list of ``{ id, label, price }``; ``price`` is a
  decimal string in the market's currency ("4.90", "15000").
- ``free_above`` (optional): every option is free when the cart's goods,
  after discounts, reach this amount.
- ``countries`` (optional): ISO country codes shipped to; empty means the
  market's countries. A cart whose address is elsewhere gets no option.

Shipments get a tracking number derived from the order and fulfilment, so
booking the same fulfilment twice gives the same number.
"""

from __future__ import annotations

import msgspec

from kernel import Market, Money, hookimpl
from kernel.delivery import DeliveryContext, DeliveryOption
from plugins.carriers._booking import OfflineBooking


class OptionConfig(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    label: str
    price: str


class FlatRate(OfflineBooking):
    name = "flat-rate"
    family = "carrier"
    tracking_prefix = "FR"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        options: list[OptionConfig]
        free_above: str | None = None
        countries: list[str] = []

    def __init__(self, config: Config, market: Market):
        self.config = config
        self.market = market
        if not config.options:
            raise ValueError("options: at least one option is required")
        self.prices: dict[str, Money] = {}
        for i, opt in enumerate(config.options):
            if not opt.id or not opt.id.strip():
                raise ValueError(f"options[{i}].id: must not be empty")
            if opt.id in self.prices:
                raise ValueError(f"options[{i}].id: {opt.id!r} is used twice")
            try:
                price = Money.parse(opt.price, market.currency)
            except ValueError as exc:
                raise ValueError(f"options[{i}].price: {exc}") from exc
            if price.amount < 0:
                raise ValueError(f"options[{i}].price: must not be negative")
            self.prices[opt.id] = price
        self.free_above: Money | None = None
        if config.free_above is not None:
            try:
                self.free_above = Money.parse(config.free_above, market.currency)
            except ValueError as exc:
                raise ValueError(f"free_above: {exc}") from exc
        self.countries = frozenset(c.upper() for c in (config.countries or market.countries))

    @hookimpl
    def niaga_delivery_options(self, context: DeliveryContext,
                               market: Market) -> list[DeliveryOption]:
        cart = context.cart
        if cart.address is not None and cart.address.country.upper() not in self.countries:
            return []
        goods = cart.subtotal - cart.discount_total
        free = self.free_above is not None and goods >= self.free_above
        return [
            DeliveryOption(
                id=f"{self.name}:{opt.id}",
                kind="ship",
                carrier=self.name,
                label=opt.label,
                price=Money.zero(self.market.currency) if free else self.prices[opt.id],
            )
            for opt in self.config.options
        ]

