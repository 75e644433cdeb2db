"""Plugin discovery and one PluginManager per market.

Plugins are found through the ``niaga`` entry-point group (first-party ones
too). A plugin is a module or a class. A class may declare a ``Config``
msgspec Struct: the market's settings for it are converted into that Struct at
load time, and every problem names the market, the plugin, the key and why.
A market's manager holds only the plugins that market enables.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import msgspec
import pluggy

from kernel import hookspecs
from kernel.errors import ConfigError, GatewayError, NiagaError
from kernel.markets import Market
from kernel.payments import WebhookRejected

log = logging.getLogger("niaga.plugins")
hookimpl = pluggy.HookimplMarker("niaga")
GROUP = "niaga"


@dataclass
class PluginInfo:
    name: str
    version: str
    family: str
    target: Any  # the loaded module or class
    hooks: list[str] = field(default_factory=list)


def _hooks_of(obj: Any) -> list[str]:
    names = []
    for attr in dir(obj):
        if attr.startswith("niaga_") and hasattr(getattr(obj, attr, None), "niaga_impl"):
            names.append(attr)
    return sorted(names)


def info_for(name: str, target: Any, version: str = "0") -> PluginInfo:
    family = getattr(target, "family", None) or target.__module__.split(".")[-2:][0]
    return PluginInfo(name=name, version=version, family=str(family), target=target,
                      hooks=_hooks_of(target))


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, looking for implementations only among ``niaga_*`` attributes:
    every hook is named so, and pluggy's default inspects every attribute of every plugin
    (~40 ms of a Lambda cold start for the demo markets)."""

    def __init__(self) -> None:
        super().__init__("niaga")

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        if not name.startswith("niaga_"):
            return None
        return super().parse_hookimpl_opts(plugin, name)


@functools.cache
def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


class Registry:
    """Every installed plugin by name. An entry point is imported when a market enables it
    (or when all are listed), once: a Lambda container imports only the plugins it runs."""

    def __init__(self, extra: dict[str, Any] | None = None, *, discover: bool = True):
        self._extra = dict(extra or {})
        self._discover = discover
        self._loaded: dict[str, PluginInfo] = {}

    @cached_property
    def _entry_points(self) -> dict[str, EntryPoint]:
        if not self._discover:
            return {}
        return {ep.name: ep for ep in entry_points(group=GROUP) if ep.name not in self._extra}

    def names(self) -> list[str]:
        return sorted({*self._entry_points, *self._extra})

    def get(self, name: str) -> PluginInfo | None:
        if name not in self._loaded:
            if name in self._extra:
                target = self._extra[name]
                self._loaded[name] = info_for(name, target, getattr(target, "__version__", "0"))
            elif name in self._entry_points:
                self._loaded[name] = self._load(self._entry_points[name])
            else:
                return None
        return self._loaded[name]

    @property
    def plugins(self) -> dict[str, PluginInfo]:
        """All of them, imported (listings: ``niaga plugins``, ``GET /admin/plugins``)."""
        return {name: info for name in self.names() if (info := self.get(name)) is not None}

    @staticmethod
    def _load(ep: EntryPoint) -> PluginInfo:
        try:
            target = ep.load()
        except Exception as exc:  # a broken plugin must name itself
            raise ConfigError([f"plugin {ep.name!r} ({ep.value}) failed to import: {exc}"]) from exc
        version = _version(ep.dist.name) if ep.dist else "0"  # one METADATA read per dist
        return info_for(ep.name, target, version)


def _config_problem(where: str, exc: Exception) -> str:
    text = str(exc)
    if " - at `$" in text:
        message, _, path = text.partition(" - at `$")
        return f"{where}{path.rstrip('`')}: {message}"
    return f"{where}: {text}"


def instantiate(info: PluginInfo, settings: dict[str, Any], market: Market) -> Any:
    """Build the object registered for one market, validating its settings."""
    target = info.target
    where = f"markets.{market.code}.plugins.{info.name}"
    if not isinstance(target, type):
        if settings:
            raise ConfigError([f"{where}: this plugin takes no settings"])
        return target
    config_type = getattr(target, "Config", None)
    if config_type is None:
        if settings:
            raise ConfigError([f"{where}: this plugin takes no settings"])
        return target(market=market)
    try:
        config = msgspec.convert(settings, config_type)
    except msgspec.ValidationError as exc:
        raise ConfigError([_config_problem(where, exc)]) from exc
    try:
        plugin = target(config=config, market=market)
    except (ValueError, KeyError) as exc:
        raise ConfigError([f"{where}: {exc}"]) from exc
    if not getattr(plugin, "name", None):
        plugin.name = info.name
    return plugin


class KernelDefaults:
    """The kernel's own answers, asked last: Babel money formatting and default allocation."""

    name = "kernel"

    @hookimpl(trylast=True)
    def niaga_allocate_stock(self, request):
        from kernel.inventory import default_allocation

        return default_allocation(request)

    @hookimpl(trylast=True)
    def niaga_format_money(self, money, locale):
        return money.display(locale)


DEFAULT_TIMEOUT_S = 10.0  # a plugin call off the event loop; per plugin: markets file


class MarketPlugins:
    """One market's PluginManager, with the four calling conventions.

    Hooks are called in pluggy's order (tryfirst/trylast, then last registered
    first). A first-result or collect hook that raises fails the call with an
    error naming the plugin; a notify hook that raises is logged and counted in
    ``failures``, and the caller carries on.
    """

    def __init__(self, market: Market, pm: pluggy.PluginManager, names: list[str]):
        self.market = market
        self.pm = pm
        self.names = names
        self.failures: Counter[tuple[str, str]] = Counter()  # (plugin, hook) -> count
        # plugins that do I/O in pricing or delivery hooks say so (does_io = True): then
        # pricing and delivery options run off the event loop; empty string when none
        self.blocking = ", ".join(n for n in names if getattr(pm.get_plugin(n), "does_io", False))

    def timeout_for(self, plugin: str | None) -> float:
        """Seconds for a call to ``plugin`` (or to several, comma-separated: the longest)."""
        names = [n.strip() for n in (plugin or "").split(",")]
        return max(self.market.plugin_timeouts.get(n, DEFAULT_TIMEOUT_S) for n in names)

    def _impls(self, hook: str) -> list[Any]:
        return list(reversed(getattr(self.pm.hook, hook).get_hookimpls()))

    @staticmethod
    def _named(exc: Exception, plugin: str, hook: str) -> Exception:
        if isinstance(exc, NiagaError | WebhookRejected):
            if isinstance(exc, NiagaError):
                exc.extra.setdefault("plugin", plugin)
            return exc  # raised on purpose: a decline, bad input, a gateway outage
        return GatewayError(f"plugin {plugin} failed in {hook}: {type(exc).__name__}: {exc}",
                            plugin=plugin)

    def first(self, hook: str, **kwargs: Any) -> Any:
        for impl in self._impls(hook):
            try:
                result = impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:
                raise self._named(exc, impl.plugin_name, hook) from exc
            if result is not None:
                return result
        return None

    def collect(self, hook: str, **kwargs: Any) -> list[Any]:
        flat: list[Any] = []
        for impl in self._impls(hook):
            try:
                item = impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:
                raise self._named(exc, impl.plugin_name, hook) from exc
            if item is None:
                continue
            if isinstance(item, list | tuple):
                flat.extend(item)
            else:
                flat.append(item)
        return flat

    def chain(self, hook: str, value_arg: str, value: Any, **kwargs: Any) -> Any:
        # each impl sees the previous one's value
        for impl in self._impls(hook):
            args = {value_arg: value, **kwargs}
            try:
                result = impl.function(*[args[a] for a in impl.argnames])
            except Exception as exc:
                raise self._named(exc, impl.plugin_name, hook) from exc
            if result is not None:
                value = result
        return value

    def notify(self, hook: str, **kwargs: Any) -> None:
        for impl in self._impls(hook):
            try:
                impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception:
                self.failures[(impl.plugin_name, hook)] += 1
                log.exception("plugin %s failed in %s (ignored; failure %d)", impl.plugin_name,
                              hook, self.failures[(impl.plugin_name, hook)])

    def implementers(self, hook: str) -> list[str]:
        return [impl.plugin_name for impl in getattr(self.pm.hook, hook).get_hookimpls()]


def build_market_plugins(markets: dict[str, Market],
                         registry: Registry) -> dict[str, MarketPlugins]:
    """One manager per market, holding only what the market enables; all problems at once."""
    problems: list[str] = []
    result: dict[str, MarketPlugins] = {}
    for code, market in markets.items():
        pm = PluginManager()
        pm.add_hookspecs(hookspecs)
        pm.register(KernelDefaults(), name="kernel")
        enabled = []
        for name, settings in market.plugins.items():
            info = registry.get(name)
            if info is None:
                known = ", ".join(registry.names()) or "none"
                problems.append(
                    f"markets.{code}.plugins.{name}: no installed plugin of that name "
                    f"(installed: {known})"
                )
                continue
            try:
                plugin = instantiate(info, settings, market)
                pm.register(plugin, name=name)
                enabled.append(name)
            except ConfigError as exc:
                problems.extend(exc.problems)
            except pluggy.PluginValidationError as exc:
                problems.append(f"markets.{code}.plugins.{name}: {exc}")
        result[code] = MarketPlugins(market, pm, enabled)
    if problems:
        raise ConfigError(problems)
    return result


def hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("niaga_"))


def iter_hookspecs() -> Iterable[tuple[str, Callable[..., Any]]]:
    for name in hook_names():
        yield name, getattr(hookspecs, name)
