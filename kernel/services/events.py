"""The local event relay: outbox rows → the loyalty ledger → ``niaga_event`` notify hooks,
at least once.

On AWS the DynamoDB stream plays this part; here a background task drains the
outbox after each write and on a timer, so an event written just before a
crash is delivered on the next start.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kernel.events import Event
    from kernel.runtime import Niaga

log = logging.getLogger("niaga.events")


class Dispatcher:
    # False where something else relays the outbox (on AWS: the stream worker); kick() then
    # does nothing, and deliver() is called by that relay
    in_process = True

    def __init__(self, ctx: Niaga):
        self.ctx = ctx
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def kick(self) -> None:
        """Drain soon, without making the caller wait; coalesces bursts into one drain."""
        if not self.in_process:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                self._again = False
                await self.drain()
                if not self._again:
                    return
        except Exception:
            log.exception("event relay failed; undelivered events stay in the outbox")

    async def drain(self, batch: int = 200) -> int:
        delivered = 0
        while True:
            events = await self.ctx.store.pending_events(batch)
            if not events:
                return delivered
            done: list[str] = []
            try:
                for event in events:
                    await self.deliver(event)
                    done.append(event.id)
            finally:
                # a failure stops here: what was delivered is marked, the rest is retried
                if done:
                    await self.ctx.store.mark_events_delivered(done, self.ctx.clock())
            delivered += len(done)
            if len(events) < batch:
                return delivered

    async def deliver(self, event: Event) -> None:
        """One event: the kernel's own consumer first (the loyalty ledger, idempotent, whose
        failure leaves the event in the outbox), then the plugins' notify hooks."""
        from kernel.services import loyalty

        await loyalty.on_event(self.ctx, event)
        targets = (self.ctx.markets if event.market not in self.ctx.markets
                   else {event.market: self.ctx.markets[event.market]})
        for code, market in targets.items():
            self.ctx.plugins_for(code).notify("niaga_event", event=event, market=market)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
