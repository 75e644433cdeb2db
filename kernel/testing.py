"""pytest plugin for plugin authors (installed with Niaga as the ``niaga`` pytest11 entry).

Fixtures:

- ``niaga_market(code="XX", currency=..., plugins={name: settings}, **market_fields)``
  builds a validated :class:`~kernel.markets.Market` from a markets-file table.
- ``niaga_plugins(market, extra={name: PluginClass})`` builds that market's plugin
  manager exactly as ``niaga serve`` would, with your plugin registered by name.

And :func:`check_plugin_conformance`, the conformance checks every plugin must pass:
it names itself and its family, every ``niaga_*`` method is a known hook with
arguments the hook provides, and its settings (if any) are a strict msgspec Struct.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from kernel import hookspecs
from kernel.markets import Market, parse_markets
from kernel.plugins import MarketPlugins, Registry, build_market_plugins

FAMILIES = ("tax", "payment", "carrier", "loyalty", "localisation", "inventory", "checkout",
            "cart", "order", "risk", "notification")


def make_market(code: str = "XX", *, currency: str = "EUR", locales: list[str] | None = None,
                prices_include_tax: bool = True, plugins: dict[str, dict[str, Any]] | None = None,
                **fields: Any) -> Market:
    table = {"name": f"Test market {code}", "currency": currency,
             "locales": locales or ["en-US"], "prices_include_tax": prices_include_tax,
             "plugins": plugins or {}, **fields}
    return parse_markets({"markets": {code: table}})[code]


def make_plugins(market: Market, extra: dict[str, Any] | None = None,
                 discover: bool = True) -> MarketPlugins:
    registry = Registry(extra, discover=discover)
    return build_market_plugins({market.code: market}, registry)[market.code]


def check_plugin_conformance(plugin: Any) -> list[str]:
    """Problems that would stop ``plugin`` (class or module) from loading as a Niaga plugin."""
    problems: list[str] = []
    name = getattr(plugin, "name", None)
    family = getattr(plugin, "family", None)
    if not isinstance(name, str) or not name:
        problems.append("declare a non-empty `name` (the entry-point name)")
    if family not in FAMILIES:
        problems.append(f"`family` must be one of {', '.join(FAMILIES)}")
    implemented = 0
    for attr, member in inspect.getmembers(plugin):
        if not attr.startswith("niaga_"):
            continue
        spec = getattr(hookspecs, attr, None)
        if spec is None:
            problems.append(f"{attr}: no such hook")
            continue
        if not hasattr(member, "niaga_impl"):
            problems.append(f"{attr}: decorate it with @hookimpl")
            continue
        implemented += 1
        allowed = set(inspect.signature(spec).parameters)
        given = [p for p in inspect.signature(member).parameters if p != "self"]
        unknown = [p for p in given if p not in allowed]
        if unknown:
            problems.append(f"{attr}: the hook provides no argument(s) {', '.join(unknown)}")
    if not implemented:
        problems.append("implements no hook")
    config = getattr(plugin, "Config", None)
    if config is not None:
        if not (isinstance(config, type) and issubclass(config, msgspec.Struct)):
            problems.append("`Config` must be a msgspec.Struct")
        elif not config.__struct_config__.forbid_unknown_fields:
            problems.append("`Config` must set forbid_unknown_fields=True so typos fail at load")
    return problems


@pytest.fixture
def niaga_market() -> Callable[..., Market]:
    return make_market


@pytest.fixture
def niaga_plugins() -> Callable[..., MarketPlugins]:
    return make_plugins
