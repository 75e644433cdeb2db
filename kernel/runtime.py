"""The composition root: markets, plugin managers, the store and the clock, wired once.

The HTTP app, the CLI and (later) the Lambda handlers each build one
:class:`Niaga` and pass it to the services.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from kernel.catalog import Location
from kernel.errors import ValidationError
from kernel.markets import Market
from kernel.plugins import MarketPlugins, Registry, build_market_plugins
from kernel.store.base import Store

log = logging.getLogger("niaga")
LOCATION_TTL_S = 30.0  # locations change rarely; every process re-reads them this often


class Niaga:
    def __init__(self, store: Store, markets: dict[str, Market], *,
                 registry: Registry | None = None, clock: Callable[[], float] = time.time):
        self.store = store
        self.markets = markets
        self.registry = registry or Registry()
        self.plugins = build_market_plugins(markets, self.registry)
        self.clock = clock
        self._locations: tuple[float, list[Location]] | None = None
        self._fx: tuple[float, dict[str, dict[str, str]]] | None = None
        self._plugin_pool: Any = None
        from kernel.services.events import Dispatcher

        self.dispatcher = Dispatcher(self)

    def market(self, code: str | None, field: str = "market") -> Market:
        market = self.markets.get(code or "")
        if market is None:
            known = ", ".join(sorted(self.markets))
            raise ValidationError.field(field, f"unknown market {code!r} (known: {known})")
        return market

    def plugins_for(self, code: str) -> MarketPlugins:
        return self.plugins[code]

    async def locations(self, market: str | None = None) -> list[Location]:
        now = time.monotonic()
        if self._locations is None or now - self._locations[0] > LOCATION_TTL_S:
            self._locations = (now, await self.store.list_locations())
        everything = self._locations[1]
        return [loc for loc in everything if market is None or market in loc.markets]

    def forget_locations(self) -> None:
        self._locations = None

    async def fx_rates(self) -> dict[str, dict[str, str]]:
        """Admin-set exchange rates, re-read as often as locations (every process agrees
        within that time)."""
        now = time.monotonic()
        if self._fx is None or now - self._fx[0] > LOCATION_TTL_S:
            self._fx = (now, await self.store.fx_rates())
        return self._fx[1]

    def forget_fx_rates(self) -> None:
        self._fx = None

    async def offload(self, fn: Callable[..., Any], /, *args: Any, market: str, plugin: str,
                      **kwargs: Any) -> Any:
        """Run a plugin call that may block (a gateway's HTTPS call) off the event loop,
        within that plugin's timeout for the market; past it, a GatewayError naming it.

        The thread itself cannot be stopped: a late answer is dropped, which is why
        money movements carry idempotency keys the kernel can use to undo them.
        """
        timeout = self.plugins_for(market).timeout_for(plugin)
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        try:
            return await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(self._plugins_executor(), call),
                timeout)
        except TimeoutError as exc:
            from kernel.errors import GatewayError

            raise GatewayError(f"{plugin} did not answer within {timeout:g} s",
                               plugin=plugin) from exc

    def _plugins_executor(self) -> Any:
        """Threads of their own for plugin calls: in the loop's default pool they would
        queue behind blocking store calls (DynamoDB's) under load, and the plugin's timeout
        would count the wait, failing a gateway that answered in time."""
        if self._plugin_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._plugin_pool = ThreadPoolExecutor(max_workers=32,
                                                   thread_name_prefix="niaga-plugin")
        return self._plugin_pool

    async def start(self) -> None:
        await self.store.start()

    async def close(self) -> None:
        await self.dispatcher.stop()
        await self.store.close()
        if self._plugin_pool is not None:
            self._plugin_pool.shutdown(wait=False)
            self._plugin_pool = None
