"""Weight-table shipping: a price per weight bracket and delivery zone.

The cart's weight is the sum of each line's product weight times its quantity.
The first bracket whose ``up_to_grams`` is at least that weight sets the price,
for the zone of the shipping address. A cart heavier than the last bracket, or
an address in no zone, gets no option from this plugin (offer another carrier
for those). Before the customer gives an address, the option is shown at the
``"*"`` zone's price when a ``"*"`` zone exists; otherwise it appears once the
address is known.

Settings (``[markets.XX.plugins.weight-table]``):

- ``zones`` (required): zone name → list of entries. An entry is a region name
  as customers type it in their address ("Bali", "DKI Jakarta"; compared without
  case and surrounding spaces), or a postal-code prefix ending in ``*`` ("1*",
  "80*"; spaces and case in postal codes are ignored). Zones are tried in the
  order written and the first match wins, so put narrower prefixes first. The
  zone named ``"*"`` matches every address (its list is ignored, leave it
  empty) and is always tried last.
- ``brackets`` (required): a list of ``{ up_to_grams, prices }`` in ascending
  weight, where ``prices`` gives a price (decimal string in the market's
  currency) for every zone. ``up_to_grams`` includes its limit: a 1000 g cart
  falls in the ``up_to_grams = 1000`` bracket.
- ``free_above`` (optional): shipping is free when the cart's goods, after
  discounts, reach this amount.
- ``label`` (default ``"Standard shipping"``) and ``id`` (default
  ``"standard"``): the option's name and id (the option id is
  ``weight-table:<id>``).

Example::

    [markets.ID.plugins.weight-table]
    label = "Reguler"
    free_above = "500000"
    [markets.ID.plugins.weight-table.zones]
    jawa = ["DKI Jakarta", "Jawa Barat", "Banten", "1*"]
    bali = ["Bali", "80*"]
    "*" = []
    [[markets.ID.plugins.weight-table.brackets]]
    up_to_grams = 1000
    prices = { jawa = "10000", bali = "18000", "*" = "25000" }
    [[markets.ID.plugins.weight-table.brackets]]
    up_to_grams = 5000
    prices = { jawa = "20000", bali = "35000", "*" = "50000" }

Shipments get a tracking number derived from the order and fulfilment ("WT…"),
so booking the same fulfilment twice gives the same number.
"""

from __future__ import annotations

import msgspec

from kernel import Market, Money, hookimpl
from kernel.cart import Address
from kernel.delivery import DeliveryContext, DeliveryOption
from plugins.carriers._booking import OfflineBooking

ANYWHERE = "*"
Zone = tuple[str, frozenset[str], tuple[str, ...]]  # name, region names, postal prefixes
Priced = tuple[int, dict[str, Money]]  # up_to_grams, zone -> price


class Bracket(msgspec.Struct, forbid_unknown_fields=True):
    up_to_grams: int
    prices: dict[str, str]


def _postal(text: str) -> str:
    return "".join(text.split()).upper()


class WeightTable(OfflineBooking):
    name = "weight-table"
    family = "carrier"
    tracking_prefix = "WT"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        zones: dict[str, list[str]]
        brackets: list[Bracket]
        free_above: str | None = None
        label: str = "Standard shipping"
        id: str = "standard"

    def __init__(self, config: Config, market: Market):
        for key in ("label", "id"):
            if not getattr(config, key).strip():
                raise ValueError(f"{key}: must not be empty")
        self.config = config
        self.market = market
        self._zones = self._parse_zones(config.zones)
        self._brackets = self._parse_brackets(config.brackets, market.currency)
        self.free_above: Money | None = None
        if config.free_above is not None:
            try:
                self.free_above = Money.parse(config.free_above, market.currency)
            except ValueError as exc:
                raise ValueError(f"free_above: {exc}") from exc
            if self.free_above.amount < 0:
                raise ValueError("free_above: must not be negative")

    @staticmethod
    def _parse_zones(zones: dict[str, list[str]]) -> list[Zone]:
        """(zone, region names, postal prefixes) in the order written, the "*" zone left out."""
        if not zones:
            raise ValueError("zones: at least one zone is required")
        seen: dict[str, str] = {}
        parsed = []
        for zone, entries in zones.items():
            if not zone.strip():
                raise ValueError("zones: a zone name must not be empty")
            if zone == ANYWHERE:
                continue
            if not entries:
                raise ValueError(f"zones.{zone}: list at least one region or postal prefix")
            regions: set[str] = set()
            prefixes: list[str] = []
            for j, entry in enumerate(entries):
                where = f"zones.{zone}[{j}]"
                text = entry.strip()
                if text.endswith("*"):
                    prefix = _postal(text[:-1])
                    if not prefix or "*" in prefix:
                        raise ValueError(
                            f"{where}: {entry!r} is not a postal prefix like \"1*\"; "
                            f"use the zone \"*\" for everywhere else")
                    key = "postal " + prefix
                    prefixes.append(prefix)
                else:
                    if not text or "*" in text:
                        raise ValueError(f"{where}: {entry!r} is not a region name")
                    key = "region " + text.casefold()
                    regions.add(text.casefold())
                if key in seen:
                    raise ValueError(f"{where}: {entry!r} is already in zone {seen[key]!r}")
                seen[key] = zone
            parsed.append((zone, frozenset(regions), tuple(prefixes)))
        return parsed

    def _parse_brackets(self, brackets: list[Bracket], currency: str) -> list[Priced]:
        if not brackets:
            raise ValueError("brackets: at least one bracket is required")
        zones = list(self.config.zones)
        parsed: list[Priced] = []
        for i, bracket in enumerate(brackets):
            where = f"brackets[{i}]"
            if bracket.up_to_grams <= 0:
                raise ValueError(f"{where}.up_to_grams: must be more than zero")
            if parsed and bracket.up_to_grams <= parsed[-1][0]:
                raise ValueError(
                    f"{where}.up_to_grams: {bracket.up_to_grams} must be more than the "
                    f"bracket before ({parsed[-1][0]}); list brackets in ascending weight")
            unknown = [z for z in bracket.prices if z not in self.config.zones]
            if unknown:
                raise ValueError(f"{where}.prices.{unknown[0]}: no zone of that name "
                                 f"(zones: {', '.join(zones)})")
            prices: dict[str, Money] = {}
            for zone in zones:
                text = bracket.prices.get(zone)
                if text is None:
                    raise ValueError(f"{where}.prices.{zone}: missing; every bracket needs a "
                                     f"price for every zone")
                try:
                    price = Money.parse(text, currency)
                except ValueError as exc:
                    raise ValueError(f"{where}.prices.{zone}: {exc}") from exc
                if price.amount < 0:
                    raise ValueError(f"{where}.prices.{zone}: must not be negative")
                prices[zone] = price
            parsed.append((bracket.up_to_grams, prices))
        return parsed

    def zone_for(self, address: Address | None) -> str | None:
        """The zone an address falls in (the "*" zone when there is no address yet), or None."""
        if address is not None:
            region = (address.region or "").strip().casefold()
            postal = _postal(address.postal_code or "")
            for zone, regions, prefixes in self._zones:
                if region and region in regions:
                    return zone
                if postal and any(postal.startswith(p) for p in prefixes):
                    return zone
        return ANYWHERE if ANYWHERE in self.config.zones else None

    def price_for(self, grams: int, zone: str) -> Money | None:
        for up_to, prices in self._brackets:
            if grams <= up_to:
                return prices[zone]
        return None  # heavier than the last bracket

    @hookimpl
    def niaga_delivery_options(self, context: DeliveryContext,
                               market: Market) -> list[DeliveryOption]:
        cart = context.cart
        if not cart.lines:
            return []
        zone = self.zone_for(cart.address)
        if zone is None:
            return []
        grams = sum(line.weight_grams * line.quantity for line in cart.lines)
        price = self.price_for(grams, zone)
        if price is None:
            return []
        goods = cart.subtotal - cart.discount_total
        if self.free_above is not None and goods >= self.free_above:
            price = Money.zero(self.market.currency)
        return [DeliveryOption(id=f"{self.name}:{self.config.id}", kind="ship",
                               carrier=self.name, label=self.config.label, price=price)]

