"""VAT / GST: one percentage per tax class, applied with the market's rounding rules.

Works for any value-added or goods-and-services tax with fixed rates per
product class (Germany's USt, Indonesia's PPN, Japan's 消費税 ...). Prices may
include tax or not; the market's ``prices_include_tax`` and money policy decide.

Settings (``[markets.XX.plugins.vat]``):

- ``rates``: tax class -> percent as a decimal string, e.g.
  ``{ standard = "19", reduced = "7" }``. Every product's ``tax_class`` needs a
  rate: a class without one fails the tax call (never a silent zero).
- ``shipping_tax_class`` (default ``"standard"``): the class whose rate applies
  to the delivery charge. Set it to ``""`` (TOML has no null) or ``none`` to
  leave delivery untaxed.
- ``label`` (default ``"VAT"``): the name shown before the rate, e.g. "MwSt.", "PPN".
"""

from __future__ import annotations

from fractions import Fraction

import msgspec

from kernel import GatewayError, Market, hookimpl
from kernel.tax import SHIPPING, TaxRequest, TaxResult, compute_taxes
from plugins.tax.rates import parse_rate


class VatTax:
    name = "vat"
    family = "tax"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        rates: dict[str, str]
        shipping_tax_class: str | None = "standard"
        label: str = "VAT"

    def __init__(self, config: Config, market: Market):
        self.config = config
        self.market = market
        if not config.rates:
            raise ValueError("rates: at least one tax class with a rate is required")
        self.rates: dict[str, tuple[Fraction, str]] = {}
        for tax_class, text in config.rates.items():
            self.rates[tax_class] = parse_rate(f"rates.{tax_class}", text)
        shipping = config.shipping_tax_class
        if shipping is not None and shipping.strip().lower() in ("", "none"):
            shipping = None
        self.shipping_tax_class = shipping
        if shipping is not None and shipping not in self.rates:
            raise ValueError(
                f"shipping_tax_class: {shipping!r} has no rate in rates "
                f"(known: {', '.join(sorted(self.rates))})"
            )

    @hookimpl
    def niaga_calculate_taxes(self, request: TaxRequest) -> TaxResult | None:
        if request.market != self.market.code:
            return None
        rates: dict[str, tuple[Fraction, str]] = {}
        for line in request.lines:
            rate = self.rates.get(line.tax_class)
            if rate is None:
                raise GatewayError(
                    f"{self.name}: no rate for tax class {line.tax_class!r} in market "
                    f"{self.market.code} (sku {line.sku}; configured: "
                    f"{', '.join(sorted(self.rates))})",
                    plugin=self.name,
                    tax_class=line.tax_class,
                )
            rates[line.line_id] = rate
        if self.shipping_tax_class is not None:
            rates[SHIPPING] = self.rates[self.shipping_tax_class]
        result = compute_taxes(request, rates, source=self.name)
        return msgspec.structs.replace(
            result,
            lines=[
                msgspec.structs.replace(t, label=f"{self.config.label} {t.rate}%")
                for t in result.lines
            ],
        )
