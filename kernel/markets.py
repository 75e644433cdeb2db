"""Markets: currency, locales, tax mode, money policy and the plugins each market enables.

A merchant describes markets in one TOML file (or an SSM parameter on AWS);
:func:`load_markets` validates it and names the market, key and reason of every
problem at once.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from kernel.errors import ConfigError
from kernel.money import Money, MoneyError, currency_digits

CHANNELS = ("web", "app", "pos", "marketplace", "social")
# When a guest signs in holding a cart and already has one in that market: ``add`` the
# guest's quantities to it (capped by stock), ``replace`` its lines with the guest's, or
# ``keep-customer``'s cart as it is. The guest cart is emptied in every case.
CartMerge = Literal["add", "replace", "keep-customer"]


class MoneyPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a market rounds money. Recorded on every order, so history never changes meaning."""

    prices_include_tax: bool = True
    rounding_mode: Literal["half-up", "half-even"] = "half-up"
    rounding_level: Literal["unit", "line", "total"] = "line"
    # totals rounded to this many minor units (e.g. IDR 100 = 10000); 0: no cash rounding
    cash_rounding: int = 0


class _MoneyPolicyFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rounding_mode: Literal["half-up", "half-even"] = "half-up"
    rounding_level: Literal["unit", "line", "total"] = "line"
    cash_rounding: str | None = None  # the smallest cash step in major units, e.g. "100"


class _MarketFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    currency: str
    locales: list[str]
    prices_include_tax: bool
    countries: list[str] = []
    channels: list[str] = msgspec.field(default_factory=lambda: list(CHANNELS))
    payment_window_hours: float = 24.0
    reservation_minutes: float = 15.0
    cart_merge: CartMerge = "add"
    on_tax_error: Literal["block", "fallback"] = "block"
    fallback_tax_rate: str | None = None
    money: _MoneyPolicyFile = _MoneyPolicyFile()
    plugins: dict[str, dict[str, Any]] = {}
    plugin_timeouts: dict[str, float] = {}  # plugin name -> seconds for a call off the loop


class Market(msgspec.Struct, frozen=True):
    code: str
    name: str
    currency: str
    locales: tuple[str, ...]
    countries: tuple[str, ...]
    channels: tuple[str, ...]
    policy: MoneyPolicy
    payment_window_hours: float
    reservation_minutes: float
    on_tax_error: Literal["block", "fallback"]
    fallback_tax_rate: str | None
    plugins: dict[str, dict[str, Any]]
    plugin_timeouts: dict[str, float] = {}
    cart_merge: CartMerge = "add"

    @property
    def prices_include_tax(self) -> bool:
        return self.policy.prices_include_tax

    @property
    def default_locale(self) -> str:
        return self.locales[0]

    def locale_for(self, requested: str | None) -> str:
        """The requested locale if the market speaks it (or its language), else the default."""
        if requested:
            if requested in self.locales:
                return requested
            lang = requested.split("-")[0]
            for loc in self.locales:
                if loc.split("-")[0] == lang:
                    return loc
        return self.default_locale


def _msgspec_problem(prefix: str, exc: msgspec.ValidationError) -> str:
    # msgspec says "Expected `str`, got `int` - at `$.currency`"; make the path ours
    text = str(exc)
    if " - at `$" in text:
        message, _, path = text.partition(" - at `$")
        return f"{prefix}{path.rstrip('`')}: {message}"
    return f"{prefix}: {text}"


def _locale_ok(tag: str) -> bool:
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return False
    return True


def parse_markets(data: dict[str, Any]) -> dict[str, Market]:
    """Validate a parsed markets document; raise :class:`ConfigError` listing every problem."""
    problems: list[str] = []
    unknown = set(data) - {"markets"}
    if unknown:
        problems.append(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    raw = data.get("markets")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError([*problems, "markets: at least one [markets.CODE] table is required"])
    markets: dict[str, Market] = {}
    for code, body in raw.items():
        where = f"markets.{code}"
        if not (isinstance(code, str) and len(code) == 2 and code.isalpha() and code.isupper()):
            problems.append(f"{where}: market code must be two upper-case letters")
            continue
        try:
            spec = msgspec.convert(body, _MarketFile)
        except msgspec.ValidationError as exc:
            problems.append(_msgspec_problem(where, exc))
            continue
        try:
            currency_digits(spec.currency)
        except MoneyError as exc:
            problems.append(f"{where}.currency: {exc}")
        if not spec.locales:
            problems.append(f"{where}.locales: at least one locale is required")
        problems += [f"{where}.locales: unknown locale {loc!r}"
                     for loc in spec.locales if not _locale_ok(loc)]
        problems += [
            f"{where}.channels: unknown channel {ch!r} (known: {', '.join(CHANNELS)})"
            for ch in spec.channels
            if ch not in CHANNELS
        ]
        cash_step = 0
        if spec.money.cash_rounding is not None:
            try:
                cash_step = Money.parse(spec.money.cash_rounding, spec.currency).amount
            except MoneyError as exc:
                problems.append(f"{where}.money.cash_rounding: {exc}")
            else:
                if cash_step <= 0:
                    problems.append(f"{where}.money.cash_rounding: must be positive")
        if spec.payment_window_hours <= 0:
            problems.append(f"{where}.payment_window_hours: must be positive")
        if spec.reservation_minutes <= 0:
            problems.append(f"{where}.reservation_minutes: must be positive")
        problems += [f"{where}.plugin_timeouts.{name}: must be between 0 and 300 seconds"
                     for name, seconds in spec.plugin_timeouts.items() if not 0 < seconds <= 300]
        problems += [f"{where}.plugin_timeouts.{name}: the market does not enable {name!r}"
                     for name in spec.plugin_timeouts if name not in spec.plugins]
        if spec.on_tax_error == "fallback" and not spec.fallback_tax_rate:
            problems.append(f"{where}.fallback_tax_rate: required when on_tax_error = 'fallback'")
        markets[code] = Market(
            code=code,
            name=spec.name,
            currency=spec.currency,
            locales=tuple(spec.locales),
            countries=tuple(spec.countries) or (code,),
            channels=tuple(spec.channels),
            policy=MoneyPolicy(
                prices_include_tax=spec.prices_include_tax,
                rounding_mode=spec.money.rounding_mode,
                rounding_level=spec.money.rounding_level,
                cash_rounding=max(cash_step, 0),
            ),
            payment_window_hours=spec.payment_window_hours,
            reservation_minutes=spec.reservation_minutes,
            on_tax_error=spec.on_tax_error,
            fallback_tax_rate=spec.fallback_tax_rate,
            plugins={name: dict(cfg or {}) for name, cfg in spec.plugins.items()},
            plugin_timeouts=dict(spec.plugin_timeouts),
            cart_merge=spec.cart_merge,
        )
    if problems:
        raise ConfigError(problems)
    return markets


def load_markets(source: str | Path) -> dict[str, Market]:
    """Load and validate a markets TOML file."""
    path = Path(source)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError([f"{path}: no such file"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    except UnicodeDecodeError as exc:  # found by fuzzing: a file saved in another encoding
        raise ConfigError([f"{path}: not UTF-8 text: {exc}"]) from exc
    return parse_markets(data)


def demo_markets_path() -> Path:
    return Path(__file__).parent / "data" / "markets.toml"
