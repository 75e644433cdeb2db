"""Money as integer minor units of an ISO 4217 currency.

No floats anywhere: amounts are ``int`` minor units, rates are ``Fraction``s,
and every rounding goes through :func:`round_fraction` with an explicit mode.
Where rounding leaves a remainder, :func:`allocate` hands it out by largest
remainder so that parts always add up to their whole.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cache
from typing import Literal

import msgspec

RoundingMode = Literal["half-up", "half-even"]
_AMOUNT_RE = re.compile(r"^-?\d+(\.\d+)?$")
_CODE_RE = re.compile(r"^[A-Z]{3}$")
# the largest amount (minor units) taken from outside: 50 lines of 999 units at this price
# stay below 2**63, so no total overflows a BIGINT column or a DynamoDB number
MAX_AMOUNT = 10**13


class MoneyError(ValueError):
    """An amount or currency that cannot be money."""


@cache
def currency_digits(currency: str) -> int:
    """Minor-unit exponent of ``currency`` (JPY 0, IDR 2, EUR 2, KWD 3), from Babel's CLDR data."""
    if not _CODE_RE.match(currency or ""):
        raise MoneyError(f"{currency!r} is not an ISO 4217 currency code")
    from babel.core import get_global  # lazy: Babel's data loads on first use

    if currency not in get_global("currency_fractions") and not _known_currency(currency):
        raise MoneyError(f"unknown currency {currency!r}")
    from babel.numbers import get_currency_precision

    return get_currency_precision(currency)


def _known_currency(currency: str) -> bool:
    from babel.numbers import list_currencies

    return currency in list_currencies()


def round_fraction(value: Fraction, mode: RoundingMode = "half-up") -> int:
    """Round an exact rational to an integer; half-up rounds ties away from zero."""
    floor = value.numerator // value.denominator
    rest = value - floor  # 0 <= rest < 1
    if rest > Fraction(1, 2):
        return floor + 1
    if rest < Fraction(1, 2):
        return floor
    if mode == "half-even":
        return floor if floor % 2 == 0 else floor + 1
    # half-up means away from zero for negative amounts too
    return floor + 1 if value > 0 else floor


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` so the parts sum to ``total`` exactly.

    Largest-remainder method; ties go to the earlier part. Zero weights get
    nothing unless every weight is zero, in which case the split is even.
    """
    if not weights:
        if total:
            raise MoneyError("cannot allocate a non-zero amount to no parts")
        return []
    if any(w < 0 for w in weights):
        raise MoneyError("allocation weights must not be negative")
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    base_weights = weights if sum(weights) else [1] * len(weights)
    whole = sum(base_weights)
    shares = [Fraction(magnitude * w, whole) for w in base_weights]
    parts = [s.numerator // s.denominator for s in shares]
    short = magnitude - sum(parts)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[:short]:
        parts[i] += 1
    return [sign * p for p in parts]


class Money(msgspec.Struct, frozen=True, order=False):
    """An amount in integer minor units of one currency."""

    amount: int
    currency: str

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Parse a decimal string in major units ("19.99") with at most the currency's digits."""
        digits = currency_digits(currency)
        if not isinstance(text, str) or not _AMOUNT_RE.match(text.strip()):
            raise MoneyError(f"{text!r} is not a decimal amount")
        try:
            value = Decimal(text.strip())
        except InvalidOperation as exc:  # pragma: no cover - regex guards this
            raise MoneyError(f"{text!r} is not a decimal amount") from exc
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if -exponent > digits:
            raise MoneyError(
                f"{text!r} has more than {digits} decimal digit(s), the minor unit of {currency}"
            )
        return cls(int(value.scaleb(digits)), currency)

    def format_amount(self) -> str:
        """Decimal string with exactly the currency's digits ("1500", "150000.00", "1.250")."""
        digits = currency_digits(self.currency)
        sign = "-" if self.amount < 0 else ""
        units, minor = divmod(abs(self.amount), 10**digits)
        return f"{sign}{units}.{minor:0{digits}d}" if digits else f"{sign}{units}"

    def display(self, locale: str) -> str:
        """The amount formatted for a locale by Babel, e.g. "Rp 150.000,00"."""
        from babel.numbers import format_currency

        digits = currency_digits(self.currency)
        value = Decimal(self.amount).scaleb(-digits)
        return format_currency(value, self.currency, locale=locale.replace("-", "_"))

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, quantity: int) -> Money:
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise TypeError("Money can only be multiplied by an integer; use a rate and round")
        return Money(self.amount * quantity, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def __bool__(self) -> bool:
        return self.amount != 0

    def __str__(self) -> str:
        return f"{self.format_amount()} {self.currency}"

    def allocate(self, weights: list[int]) -> list[Money]:
        return [Money(p, self.currency) for p in allocate(self.amount, weights)]


def money_sum(items: list[Money] | tuple[Money, ...], currency: str) -> Money:
    total = 0
    for item in items:
        if item.currency != currency:
            raise MoneyError(f"cannot add {item.currency} to a {currency} total")
        total += item.amount
    return Money(total, currency)


def percent(text: str) -> Fraction:
    """A percentage given as a decimal string ("19", "6.25") as an exact fraction of 100."""
    try:
        value = Fraction(Decimal(str(text)))
    except (InvalidOperation, ValueError, OverflowError) as exc:  # "Infinity" overflows
        raise MoneyError(f"{text!r} is not a percentage") from exc
    if value < 0 or value > 100:
        raise MoneyError(f"{text!r} is not a percentage between 0 and 100")
    return value


def tax_from_amount(
    amount: int, rate_percent: Fraction, *, included: bool, mode: RoundingMode
) -> int:
    """Tax on ``amount`` minor units: extracted from a gross amount, or added to a net one."""
    if included:
        exact = Fraction(amount) * rate_percent / (100 + rate_percent)
    else:
        exact = Fraction(amount) * rate_percent / 100
    return round_fraction(exact, mode)
