"""Markets and the localised catalog."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from kernel.api.schemas import AvailabilityRead, MarketRead, MoneyRead, ProductRead
from kernel.catalog import Product
from kernel.errors import NotFound
from kernel.markets import Market
from kernel.pricing import unit_price
from kernel.runtime import Niaga
from kernel.services import catalog

MarketParam = Annotated[str, Parameter(query="market", min_length=2, max_length=2,
                                       description="market code, e.g. ID")]
LocaleParam = Annotated[str | None, Parameter(query="locale", max_length=16, required=False)]


def market_read(market: Market, plugin_names: list[str]) -> MarketRead:
    return MarketRead(code=market.code, name=market.name, currency=market.currency,
                      locales=list(market.locales),
                      prices_include_tax=market.prices_include_tax,
                      channels=list(market.channels), plugins=plugin_names,
                      countries=list(market.countries),
                      rounding_mode=market.policy.rounding_mode,
                      rounding_level=market.policy.rounding_level)


def product_read(niaga: Niaga, product: Product, market: Market, locale: str | None,
                 rates: dict[str, dict[str, str]] | None = None) -> ProductRead | None:
    plugins = niaga.plugins_for(market.code)
    price = unit_price(product, market, plugins, rates=rates)
    if price is None:
        return None
    loc = market.locale_for(locale)
    display = plugins.first("niaga_format_money", money=price, locale=loc)
    return ProductRead(sku=product.sku, name=product.name_for(loc, market.locales),
                       description=product.description_for(loc, market.locales),
                       price=MoneyRead(amount=price.format_amount(), currency=price.currency,
                                       display=display), tax_class=product.tax_class,
                       weight_grams=product.weight_grams, attributes=dict(product.attributes),
                       locale=loc)


class StorefrontController(Controller):
    tags = ["storefront"]

    @get("/markets")
    async def markets(self, niaga: Niaga) -> list[MarketRead]:
        return [market_read(m, niaga.plugins_for(code).names)
                for code, m in niaga.markets.items()]

    @get("/products")
    async def products(self, niaga: Niaga, market: MarketParam,
                       locale: LocaleParam = None) -> list[ProductRead]:
        m = niaga.market(market)
        rates = await niaga.fx_rates()
        reads = (product_read(niaga, p, m, locale, rates)
                 for p in await niaga.store.list_products())
        return [r for r in reads if r is not None]

    @get("/products/{sku:str}")
    async def product(self, niaga: Niaga, sku: str, market: MarketParam,
                      locale: LocaleParam = None) -> ProductRead:
        m = niaga.market(market)
        read = product_read(niaga, await catalog.get_product(niaga, sku), m, locale,
                            await niaga.fx_rates())
        if read is None:
            raise NotFound(f"{sku} is not sold in market {m.code}")
        return read

    @get("/products/{sku:str}/availability")
    async def availability(self, niaga: Niaga, sku: str, market: MarketParam) -> AvailabilityRead:
        data = await catalog.availability(niaga, sku, market)
        return AvailabilityRead(**data)
