"""FX: a product without a price in this market gets one converted from a base market's.

The converted price is ``base price × rate × (1 + markup)``, computed exactly
(fractions, no floats) and rounded once to the market currency's minor unit
(ISO 4217: JPY 0, USD 2, KWD 3) with the market's ``money.rounding_mode``.
The cart line and the order line keep the snapshot (base price and currency,
the rate used, its source), so an order always shows how its price was made.
A catalog price in the market always wins: only unpriced products convert.

Settings (``[markets.XX.plugins.fx]``):

- ``base_market`` (required): the market whose catalog price is converted, e.g. "ID".
- ``rates``: ``{ CURRENCY = "rate" }``, how many units of CURRENCY one unit of
  the base market's currency buys, as a decimal string: with base_market "ID"
  (IDR), ``USD = "0.000063"``. Only the rate for this market's currency is used;
  none is needed when both markets share a currency.
- ``rates_file``: a CSV file (header ``currency,rate``) or a TOML file
  (``[rates]`` table, optional top-level ``as_of``) with the same; a relative
  path is from the server's working directory. ``rates`` entries override it.
- ``markup_percent`` (default "0"): added to the rate, e.g. "3" for card and
  exchange costs.

Rates from the settings are read when the markets are loaded. Rates set with
``PUT /admin/fx/rates`` live in the store, so every process and Lambda container
sees the same ones (each re-reads them within 30 s), and they win over the
settings; the snapshot's source then says ``fx:admin``. A product whose base price converts to
less than one minor unit, or whose market has no rate, is not sold there
(None: the kernel treats it like a product without a price).
"""

from __future__ import annotations

import csv
import tomllib
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

import msgspec

from kernel import Market, Money, hookimpl, percent, round_fraction
from kernel.catalog import ConvertedPrice, Product
from kernel.money import MoneyError, currency_digits


def _rate(text: object, where: str) -> Decimal:
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not isinstance(text, str | int) or isinstance(text, bool) or not value.is_finite() \
            or value <= 0:
        raise ValueError(f"{where}: {text!r} is not a positive decimal rate (e.g. \"0.000063\")")
    return value


def _currency(code: object, where: str) -> str:
    try:
        currency_digits(str(code))
    except MoneyError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    return str(code)


def _decimal_text(value: Fraction) -> str:
    """A terminating fraction (a decimal rate times a decimal markup) as a decimal string."""
    digits = 0
    while (value * 10**digits).denominator != 1:
        digits += 1
    text = str((value * 10**digits).numerator).rjust(digits + 1, "0")
    return f"{text[:-digits]}.{text[-digits:]}" if digits else text


def read_rates_file(path: Path) -> tuple[dict[str, Decimal], str | None]:
    """(currency -> rate, as_of) from a CSV or TOML rates file; errors name the file and row."""
    where = f"rates_file ({path})"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{where}: cannot be read: {exc.strerror or exc}") from exc
    rates: dict[str, Decimal] = {}
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{where}: not valid TOML: {exc}") from exc
        table = data.get("rates")
        if not isinstance(table, dict):
            raise ValueError(f"{where}: needs a [rates] table of CURRENCY = \"rate\"")
        as_of = data.get("as_of")
        for code, value in table.items():
            rates[_currency(code, f"{where}.rates")] = _rate(value, f"{where}.rates.{code}")
        return rates, str(as_of) if as_of is not None else None
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or not {"currency", "rate"} <= set(reader.fieldnames):
        raise ValueError(f"{where}: a CSV needs the header currency,rate")
    for line, row in enumerate(reader, start=2):
        code = _currency((row["currency"] or "").strip(), f"{where} line {line}")
        rates[code] = _rate(row["rate"], f"{where} line {line}")
    return rates, None


class Fx:
    name = "fx"
    family = "localisation"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        base_market: str
        rates: dict[str, str] = {}
        rates_file: str | None = None
        markup_percent: str = "0"

    def __init__(self, config: Config, market: Market):
        self.config = config
        self.market = market
        base = config.base_market
        if not (len(base) == 2 and base.isalpha() and base.isupper()):
            raise ValueError(f"base_market: {base!r} is not a market code like \"ID\"")
        if base == market.code:
            raise ValueError("base_market: must be another market than this one")
        try:
            markup = percent(config.markup_percent)
        except MoneyError as exc:
            raise ValueError(f"markup_percent: {exc}") from exc
        rates: dict[str, Decimal] = {}
        sources: dict[str, str] = {}
        if config.rates_file:
            path = Path(config.rates_file)
            from_file, as_of = read_rates_file(path)
            rates.update(from_file)
            label = f"{path.name}@{as_of}" if as_of else path.name
            sources.update(dict.fromkeys(from_file, label))
        for code, value in config.rates.items():
            rates[_currency(code, "rates")] = _rate(value, f"rates.{code}")
            sources[code] = "markets-file"
        # the one rate this market uses, markup included: exact, and as the snapshot shows it
        rate = rates.get(market.currency)
        self.same_currency_only = rate is None  # then only a base price in our currency
        if rate is None:
            rate, sources[market.currency] = Decimal(1), "same-currency"
        self.markup = markup
        self.rate = Fraction(rate) * (100 + markup) / 100
        self.rate_text = _decimal_text(self.rate)
        self.source = f"{self.name}:{sources[market.currency]}"

    @hookimpl
    def niaga_convert_price(self, product: Product, market: Market,
                            rates: dict[str, dict[str, str]]) -> ConvertedPrice | None:
        base = product.price_in(self.config.base_market)
        if base is None:
            return None
        rate, rate_text, source = self.rate, self.rate_text, self.source
        admin = (rates or {}).get(base.currency, {}).get(market.currency)
        if admin is not None:  # set by the merchant through the admin API: the freshest
            rate = Fraction(Decimal(admin)) * (100 + self.markup) / 100
            rate_text, source = _decimal_text(rate), f"{self.name}:admin"
        elif self.same_currency_only and base.currency != market.currency:
            return None  # no rate for this market's currency
        exact = (Fraction(base.amount, 10 ** currency_digits(base.currency)) * rate
                 * 10 ** currency_digits(market.currency))
        amount = round_fraction(exact, market.policy.rounding_mode)
        if amount <= 0:
            return None  # never sell for nothing because a rate is tiny
        return ConvertedPrice(price=Money(amount, market.currency), base=base,
                              rate=rate_text, source=source)
