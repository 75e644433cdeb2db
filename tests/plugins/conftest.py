"""Builders for the first-party plugin tests: markets, plugin instances, carts, tax requests."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.cart import Address, Cart, Line, empty_cart
from kernel.markets import Market, parse_markets
from kernel.money import Money
from kernel.plugins import info_for, instantiate
from kernel.tax import TaxLine, TaxRequest

LOCALES = {"EUR": "de-DE", "USD": "en-US", "IDR": "id-ID", "JPY": "ja-JP"}


class Builders:
    @staticmethod
    def market(
        code: str,
        currency: str,
        *,
        plugins: dict[str, dict[str, Any]],
        include_tax: bool = True,
        mode: str = "half-up",
        level: str = "line",
        countries: list[str] | None = None,
    ) -> Market:
        body: dict[str, Any] = {
            "name": f"Market {code}",
            "currency": currency,
            "locales": [LOCALES.get(currency, "en-US")],
            "prices_include_tax": include_tax,
            "money": {"rounding_mode": mode, "rounding_level": level},
            "plugins": plugins,
        }
        if countries is not None:
            body["countries"] = countries
        return parse_markets({"markets": {code: body}})[code]

    @staticmethod
    def plugin(cls: type, market: Market) -> Any:
        """Instantiate ``cls`` with the settings the market's plugins table gives it."""
        return instantiate(info_for(cls.name, cls), market.plugins[cls.name], market)

    @staticmethod
    def cart(
        market: Market,
        lines: list[tuple[str, int, str, str]],
        *,
        address: Address | None = None,
        discount: str = "0",
    ) -> Cart:
        """``lines`` as (sku, quantity, unit price, tax class); subtotal is their sum."""
        cart = empty_cart("cart-1", market.code, "web", market.currency,
                          include_tax=market.prices_include_tax, customer_id=None, now=0.0)
        zero = Money.zero(market.currency)
        for i, (sku, qty, price, tax_class) in enumerate(lines, start=1):
            unit = Money.parse(price, market.currency)
            cart.lines.append(Line(
                id=f"l{i}", sku=sku, name=sku, quantity=qty, unit_price=unit,
                subtotal=unit * qty, discount=zero, tax=zero, total=unit * qty,
                tax_class=tax_class,
            ))
        subtotal = sum((line.subtotal.amount for line in cart.lines), 0)
        cart.subtotal = Money(subtotal, market.currency)
        cart.discount_total = Money.parse(discount, market.currency)
        cart.address = address
        return cart

    @staticmethod
    def tax_request(
        market: Market,
        cart: Cart,
        *,
        shipping: str = "0",
        delivery_kind: str | None = "ship",
        pickup_address: Address | None = None,
    ) -> TaxRequest:
        return TaxRequest(
            market=market.code,
            currency=market.currency,
            policy=market.policy,
            lines=[
                TaxLine(line_id=line.id, sku=line.sku, tax_class=line.tax_class,
                        quantity=line.quantity, amount=line.subtotal)
                for line in cart.lines
            ],
            shipping=Money.parse(shipping, market.currency),
            address=cart.address,
            delivery_kind=delivery_kind,
            pickup_address=pickup_address,
        )


@pytest.fixture
def build() -> Builders:
    return Builders()
