"""The courier's tariff card: destination zones, services, per-kilogram rates, weights.

Nothing here knows about carts or hooks: :class:`Tariff` is built once from the
merchant's validated settings and then only answers questions (which zone is
this address in, how many kilograms does the courier charge for this weight,
what does this service cost to that zone), so it is easy to test on its own.
"""

from __future__ import annotations

import re

import msgspec
from kernel import Money

SERVICE_CODE = re.compile(r"[A-Z]{2,8}")  # REG, YES, OKE, JTR: the codes on a rate card


class ZoneConfig(msgspec.Struct, forbid_unknown_fields=True):
    """A destination zone: postal-code prefixes and/or province names (as in addresses)."""

    postal: list[str] = []
    provinces: list[str] = []
    extra_days: int = 0  # added to every service's delivery time (remote islands)


class ServiceConfig(msgspec.Struct, forbid_unknown_fields=True):
    """One service of the rate card (REG, YES...)."""

    per_kg: dict[str, str]  # zone -> price of one chargeable kilogram, a decimal string
    eta_days: list[int]  # [days] or [min, max]
    label: str = "Kurir ID {service} ({eta} hari)"
    cod: bool = True  # whether the courier collects cash on delivery with this service


class KurirConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[markets.XX.plugins.kurir-id]``: see the package README for every key."""

    origin: str  # the zone parcels are handed to the courier in (the rate card's origin)
    zones: dict[str, ZoneConfig]
    services: dict[str, ServiceConfig]
    default_weight_grams: int = 500  # per unit, for a product without a catalog weight
    tolerance_grams: int = 300  # grams above a whole kilogram that are not charged
    max_weight_kg: int = 50  # heavier carts get no option from this courier


class Service(msgspec.Struct, frozen=True, kw_only=True):
    code: str  # "REG"
    label: str  # the label template, placeholders {service} and {eta}
    eta_days: tuple[int, int]  # (min, max)
    cod: bool
    per_kg: dict[str, Money]  # zone -> rate; zones it does not serve are absent


def _postal(text: str) -> str:
    return "".join(text.split())


def _province(text: str) -> str:
    return " ".join(text.split()).casefold()


def chargeable_kg(grams: int, tolerance_grams: int) -> int:
    """Whole kilograms the courier charges: every started kilogram, except that the first
    ``tolerance_grams`` above a whole kilogram are free; never less than one.

    >>> chargeable_kg(1300, 300), chargeable_kg(1301, 300), chargeable_kg(200, 300)
    (1, 2, 1)
    """
    if grams < 0:
        raise ValueError(f"weight must not be negative: {grams} g")
    kg, rest = divmod(grams, 1000)
    if rest > tolerance_grams:
        kg += 1
    return max(kg, 1)


class Tariff:
    """The validated rate card. Raises ``ValueError("<key>: <reason>")`` on bad settings,
    which Niaga reports as ``markets.XX.plugins.kurir-id: <key>: <reason>``."""

    def __init__(self, config: KurirConfig, currency: str):
        self.config = config
        self.currency = currency
        self._postal: dict[str, str] = {}  # prefix -> zone
        self._provinces: dict[str, str] = {}  # normalised name -> zone
        self._parse_zones(config.zones)
        if config.origin not in config.zones:
            raise ValueError(f"origin: {config.origin!r} is not one of the zones "
                             f"({', '.join(config.zones)})")
        for key in ("default_weight_grams", "tolerance_grams"):
            if getattr(config, key) < 0:
                raise ValueError(f"{key}: must not be negative")
        if config.tolerance_grams >= 1000:
            raise ValueError("tolerance_grams: must be less than 1000")
        if config.max_weight_kg < 1:
            raise ValueError("max_weight_kg: must be at least 1")
        self.services = self._parse_services(config.services)

    def _parse_zones(self, zones: dict[str, ZoneConfig]) -> None:
        if not zones:
            raise ValueError("zones: at least one zone is required")
        for zone, spec in zones.items():
            if not zone.strip():
                raise ValueError("zones: a zone name must not be empty")
            if not spec.postal and not spec.provinces:
                raise ValueError(f"zones.{zone}: list at least one postal prefix or province")
            if spec.extra_days < 0:
                raise ValueError(f"zones.{zone}.extra_days: must not be negative")
            for i, entry in enumerate(spec.postal):
                prefix = _postal(entry)
                if not prefix.isdigit() or not 1 <= len(prefix) <= 5:
                    raise ValueError(f"zones.{zone}.postal[{i}]: {entry!r} is not the start of "
                                     f"a postal code (1 to 5 digits, like \"1\" or \"80\")")
                if prefix in self._postal:
                    raise ValueError(f"zones.{zone}.postal[{i}]: {entry!r} is already in zone "
                                     f"{self._postal[prefix]!r}")
                self._postal[prefix] = zone
            for i, entry in enumerate(spec.provinces):
                name = _province(entry)
                if not name:
                    raise ValueError(f"zones.{zone}.provinces[{i}]: must not be empty")
                if name in self._provinces:
                    raise ValueError(f"zones.{zone}.provinces[{i}]: {entry!r} is already in "
                                     f"zone {self._provinces[name]!r}")
                self._provinces[name] = zone

    def _parse_services(self, services: dict[str, ServiceConfig]) -> dict[str, Service]:
        if not services:
            raise ValueError("services: at least one service is required")
        parsed: dict[str, Service] = {}
        for code, spec in services.items():
            where = f"services.{code}"
            if not SERVICE_CODE.fullmatch(code):
                raise ValueError(f"{where}: the service code must be 2 to 8 capital letters "
                                 f"(REG, YES)")
            if not 1 <= len(spec.eta_days) <= 2 or min(spec.eta_days) < 1 or (
                    spec.eta_days != sorted(spec.eta_days)):
                raise ValueError(f"{where}.eta_days: give [days] or [min, max], at least 1 "
                                 f"day, not {spec.eta_days}")
            try:
                label = spec.label.format(service=code, eta="1-2")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{where}.label: {spec.label!r} may use only the "
                                 "placeholders {service} and {eta}") from exc
            if not label.strip():
                raise ValueError(f"{where}.label: must not be empty")
            if not spec.per_kg:
                raise ValueError(f"{where}.per_kg: give a rate for at least one zone")
            rates: dict[str, Money] = {}
            for zone, text in spec.per_kg.items():
                if zone not in self.config.zones:
                    raise ValueError(f"{where}.per_kg.{zone}: no zone of that name "
                                     f"(zones: {', '.join(self.config.zones)})")
                try:
                    rate = Money.parse(text, self.currency)
                except ValueError as exc:
                    raise ValueError(f"{where}.per_kg.{zone}: {exc}") from exc
                if rate.amount <= 0:
                    raise ValueError(f"{where}.per_kg.{zone}: must be more than zero")
                rates[zone] = rate
            parsed[code] = Service(code=code, label=spec.label, cod=spec.cod, per_kg=rates,
                                   eta_days=(spec.eta_days[0], spec.eta_days[-1]))
        return parsed

    def zone_for(self, postal_code: str | None, province: str | None) -> str | None:
        """The destination zone: the longest postal prefix that matches, else the province;
        None when the tariff does not cover the address."""
        postal = _postal(postal_code or "")
        for size in range(min(len(postal), 5), 0, -1):
            zone = self._postal.get(postal[:size])
            if zone is not None:
                return zone
        return self._provinces.get(_province(province or ""))

    def label(self, service: Service, zone: str) -> str:
        """The option's label for a zone, e.g. "Kurir ID REG (2-3 hari)"."""
        extra = self.config.zones[zone].extra_days
        low, high = service.eta_days[0] + extra, service.eta_days[1] + extra
        return service.label.format(service=service.code,
                                    eta=str(low) if low == high else f"{low}-{high}")

    def weight_grams(self, lines: list[tuple[int, int]]) -> int:
        """The parcel's weight from ``(grams per unit, quantity)`` pairs; a unit without a
        weight (0 g in the catalog) counts ``default_weight_grams``."""
        return sum((grams or self.config.default_weight_grams) * qty for grams, qty in lines)

    def price(self, service: Service, zone: str, grams: int) -> Money | None:
        """What ``service`` charges for ``grams`` to ``zone``; None when it does not serve the
        zone or the parcel is over ``max_weight_kg``."""
        rate = service.per_kg.get(zone)
        if rate is None or grams > self.config.max_weight_kg * 1000:
            return None
        return rate * chargeable_kg(grams, self.config.tolerance_grams)
