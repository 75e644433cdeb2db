"""US sales tax: the destination state's base rate, on goods and (where the state says so) shipping.

Rates come from ``plugins/tax/data/us_state_rates.csv`` (state base rates only,
no county or city taxes; see ``data/README.md``). US prices usually exclude
tax (``prices_include_tax = false``); the market's money policy applies. The
state is the shipping address's region (``"CA"``, ``"US-CA"`` or
``"California"``); for a store pickup it is the store's state.
Until the customer gives an address the tax is zero and marked *estimated*,
and the kernel refuses to check out an estimated tax.

Settings (``[markets.XX.plugins.us-sales-tax]``), all optional:

- ``origin_state``: the merchant's home state, used for pickups when the
  store's address has no state.
- ``overrides``: state -> percent, e.g. ``{ CA = "8.75" }`` to charge a
  combined local rate instead of the state base rate.
- ``shipping_taxable``: state -> true/false, overriding the data file.
- ``exempt_tax_classes``: product tax classes taxed at 0 (e.g. ``["grocery"]``).
"""

from __future__ import annotations

import csv
import io
from fractions import Fraction
from functools import lru_cache
from importlib.resources import files

import msgspec

from kernel import GatewayError, Market, ValidationError, hookimpl
from kernel.cart import Address
from kernel.money import Money
from kernel.tax import SHIPPING, TaxedLine, TaxRequest, TaxResult, compute_taxes
from plugins.tax.rates import parse_rate


class StateRate(msgspec.Struct, frozen=True):
    code: str
    name: str
    rate: Fraction
    rate_text: str
    shipping_taxable: bool


def parse_state_rates(text: str, source: str = "us_state_rates.csv") -> dict[str, StateRate]:
    """Parse the CSV (``state,name,rate,shipping_taxable``) into state code -> rate."""
    reader = csv.DictReader(io.StringIO(text))
    expected = ["state", "name", "rate", "shipping_taxable"]
    if reader.fieldnames != expected:
        raise ValueError(f"{source}: header must be {','.join(expected)}")
    states: dict[str, StateRate] = {}
    for number, row in enumerate(reader, start=2):
        code = (row["state"] or "").strip().upper()
        if len(code) != 2 or not code.isalpha() or code in states:
            raise ValueError(f"{source} line {number}: bad or repeated state {code!r}")
        flag = (row["shipping_taxable"] or "").strip().lower()
        if flag not in ("true", "false"):
            raise ValueError(f"{source} line {number}: shipping_taxable must be true or false")
        rate, rate_text = parse_rate(f"{source} line {number}: rate", row["rate"] or "")
        states[code] = StateRate(
            code=code,
            name=(row["name"] or "").strip(),
            rate=rate,
            rate_text=rate_text,
            shipping_taxable=flag == "true",
        )
    return states


@lru_cache(maxsize=1)
def state_rates() -> dict[str, StateRate]:
    """The shipped state rates, read once per process."""
    resource = files("plugins.tax") / "data" / "us_state_rates.csv"
    return parse_state_rates(resource.read_text(encoding="utf-8"))


class UsSalesTax:
    name = "us-sales-tax"
    family = "tax"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        origin_state: str | None = None
        overrides: dict[str, str] = {}
        shipping_taxable: dict[str, bool] = {}
        exempt_tax_classes: list[str] = []

    def __init__(self, config: Config, market: Market):
        self.config = config
        self.market = market
        base = state_rates()
        self._by_name = {s.name.lower(): code for code, s in base.items()}
        self.states: dict[str, StateRate] = dict(base)
        for key, text in config.overrides.items():
            code = self._state_code(key)
            if code is None:
                raise ValueError(f"overrides.{key}: unknown US state")
            rate, rate_text = parse_rate(f"overrides.{key}", text)
            self.states[code] = msgspec.structs.replace(
                self.states[code], rate=rate, rate_text=rate_text
            )
        for key, flag in config.shipping_taxable.items():
            code = self._state_code(key)
            if code is None:
                raise ValueError(f"shipping_taxable.{key}: unknown US state")
            self.states[code] = msgspec.structs.replace(self.states[code], shipping_taxable=flag)
        self.origin_state: str | None = None
        if config.origin_state is not None:
            self.origin_state = self._state_code(config.origin_state)
            if self.origin_state is None:
                raise ValueError(f"origin_state: unknown US state {config.origin_state!r}")
        self.exempt = frozenset(config.exempt_tax_classes)

    def _state_code(self, region: str) -> str | None:
        """"CA", "ca", "US-CA" or "California" -> "CA"; None when not a state."""
        text = region.strip()
        if text.upper().startswith("US-"):
            text = text[3:]
        if text.upper() in self.states:
            return text.upper()
        return self._by_name.get(text.lower())

    def _destination(self, request: TaxRequest) -> Address | str | None:
        if request.delivery_kind == "pickup":
            if request.pickup_address is not None and request.pickup_address.region:
                return request.pickup_address
            return self.origin_state
        if request.address is not None and request.address.region:
            return request.address
        return None

    @hookimpl
    def niaga_calculate_taxes(self, request: TaxRequest) -> TaxResult | None:
        if request.market != self.market.code:
            return None
        destination = self._destination(request)
        if destination is None:
            # no state yet: zero now, and the kernel will not check out an estimate
            return self._zero(request, label="sales tax (estimated: address needed)",
                              estimated=True)
        if isinstance(destination, Address):
            if destination.country.upper() != "US":
                # goods leaving the US carry no US sales tax
                return self._zero(request, label="no US sales tax outside the US")
            region = destination.region or ""
        else:
            region = destination
        code = self._state_code(region)
        if code is None and destination is request.address:
            # the customer typed it: bad input (422 naming the field), not a tax outage
            raise ValidationError.field(
                "region", f"unknown US state {region!r} (use a two-letter code like 'CA')")
        if code is None:
            raise GatewayError(
                f"{self.name}: unknown US state {region!r} (use a two-letter code like 'CA')",
                plugin=self.name,
                region=region,
            )
        state = self.states[code]
        taxed = (state.rate, state.rate_text)
        exempt = (Fraction(0), "0")
        rates = {
            line.line_id: exempt if line.tax_class in self.exempt else taxed
            for line in request.lines
        }
        if state.shipping_taxable:
            rates[SHIPPING] = taxed
        result = compute_taxes(request, rates, source=self.name)
        return msgspec.structs.replace(
            result,
            lines=[
                msgspec.structs.replace(t, label=f"{code} sales tax {t.rate}%")
                for t in result.lines
            ],
        )

    def _zero(self, request: TaxRequest, *, label: str, estimated: bool = False) -> TaxResult:
        zero = Money.zero(request.currency)
        return TaxResult(
            source=self.name,
            estimated=estimated,
            lines=[
                TaxedLine(line_id=line.line_id, tax=zero, rate="0", label=label)
                for line in request.lines
            ],
        )
