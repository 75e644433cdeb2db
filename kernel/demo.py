"""Demo data: the catalog, locations and stock shipped as package data."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from kernel.catalog import Location, Product
from kernel.markets import Market
from kernel.money import Money
from kernel.store.base import Store


def demo_catalog_path() -> Path:
    return Path(__file__).parent / "data" / "catalog.toml"


def read_catalog(path: Path, markets: dict[str, Market]) -> tuple[list[Location], list[Product],
                                                                  list[tuple[str, str, int]]]:
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    locations = [Location(**{k: v for k, v in loc.items()}) for loc in data.get("locations", [])]
    default = int(data.get("demo", {}).get("default_on_hand", 0))
    products, stock = [], []
    for item in data.get("products", []):
        prices = {code: Money.parse(text, markets[code].currency)
                  for code, text in item.get("prices", {}).items() if code in markets}
        products.append(Product(sku=item["sku"], names=item["names"], prices=prices,
                                tax_class=item.get("tax_class", "standard"),
                                weight_grams=int(item.get("weight_grams", 0)),
                                descriptions=item.get("descriptions", {}),
                                attributes={k: str(v) for k, v in
                                            item.get("attributes", {}).items()}))
        overrides = item.get("stock", {})
        for loc in locations:
            # where it is priced, or named in its stock table (sold converted, e.g. by fx)
            if any(m in prices for m in loc.markets) or loc.id in overrides:
                stock.append((item["sku"], loc.id, int(overrides.get(loc.id, default))))
    return locations, products, stock


async def seed(store: Store, markets: dict[str, Market], at: float,
               path: Path | None = None) -> dict[str, int]:
    """Load the catalog into an empty store; markets not in the markets file are skipped."""
    locations, products, stock = read_catalog(path or demo_catalog_path(), markets)
    for loc in locations:
        loc.markets = [m for m in loc.markets if m in markets]
        await store.put_location(loc)
    for product in products:
        await store.put_product(product)
    for sku, loc_id, on_hand in stock:
        await store.set_stock(sku, loc_id, on_hand, "demo", at)
    return {"locations": len(locations), "products": len(products), "stock_rows": len(stock)}
