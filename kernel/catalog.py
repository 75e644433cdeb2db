"""Catalog: products with names per locale and prices per market; stock locations."""

from __future__ import annotations

from typing import Literal

import msgspec

from kernel.money import Money

LocationKind = Literal["warehouse", "store"]


class Product(msgspec.Struct, kw_only=True):
    sku: str
    names: dict[str, str]
    prices: dict[str, Money]  # market code -> price in that market's currency
    tax_class: str = "standard"
    weight_grams: int = 0
    descriptions: dict[str, str] = {}
    attributes: dict[str, str] = {}

    def price_in(self, market_code: str) -> Money | None:
        return self.prices.get(market_code)

    def name_for(self, locale: str, fallbacks: tuple[str, ...] = ()) -> str:
        return translate(self.names, locale, fallbacks) or self.sku

    def description_for(self, locale: str, fallbacks: tuple[str, ...] = ()) -> str:
        return translate(self.descriptions, locale, fallbacks) or ""


class ConvertedPrice(msgspec.Struct, frozen=True, kw_only=True):
    """What ``niaga_convert_price`` may return: the price and the rate snapshot behind it.

    ``price`` (market currency) = ``base`` × ``rate``, rounded with the market's policy;
    ``rate`` is a decimal string (target units per base unit, markup included) and
    ``source`` names where the rate came from. The kernel keeps :meth:`snapshot` on
    the cart line, and so on the order line.
    """

    price: Money
    base: Money
    rate: str
    source: str

    def snapshot(self) -> dict[str, str]:
        return {"base": self.base.format_amount(), "base_currency": self.base.currency,
                "rate": self.rate, "source": self.source}


def translate(texts: dict[str, str], locale: str, fallbacks: tuple[str, ...] = ()) -> str | None:
    """Fallback chain: exact locale, same language, the market's locales, en-US, anything."""
    if not texts:
        return None
    if locale in texts:
        return texts[locale]
    lang = locale.split("-")[0]
    for tag, text in texts.items():
        if tag.split("-")[0] == lang:
            return text
    for tag in (*fallbacks, "en-US"):
        if tag in texts:
            return texts[tag]
    return next(iter(texts.values()))


class Location(msgspec.Struct, kw_only=True):
    id: str
    name: str
    kind: LocationKind
    markets: list[str]
    country: str
    region: str | None = None
    city: str | None = None
    line1: str | None = None
    postal_code: str | None = None
