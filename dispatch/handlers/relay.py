"""Publishes the log to the bus's events from a tracked position: the log is the truth, the bus
delivers (events marked not `relayed` stay in the log, and catching up does not read them back).
Events are published only once the read models include them, so a reaction that reads a view
never sees it older than the event it reacts to.

Where the store reports its commits, the relay takes the events from there instead of reading
them back; it reads the log only to catch up (at start, or after a gap). Its position is saved
at most every `save_every` seconds, once more when the log goes quiet (so that its tracked lag,
dispatch_projection_lag_events, comes back to 0) and when it stops: after a crash it republishes
a little, and consumers are idempotent (by message id, and by the state checks of every
reaction), so that costs nothing."""
import asyncio
import time
from typing import Awaitable, Callable

import structlog

from dispatch.bus.ports import MessageBus
from dispatch.store.ports import EventLog, Recorded, Views

log = structlog.get_logger("dispatch.relay")


class Relay:
    name = "relay"

    def __init__(self, events: EventLog, views: Views, bus: MessageBus,
                 projected: Callable[[int], Awaitable[None]], batch_size: int = 500, save_every: float = 0.5):
        self.events = events
        self.views = views
        self.bus = bus
        self.projected = projected
        self.batch_size = batch_size
        self.save_every = save_every
        self.position = 0
        self._saved = 0
        self._saved_at = 0.0
        self._commits: asyncio.Queue[list[Recorded]] = asyncio.Queue()
        self._live = False
        self._reminded = False

    async def run(self) -> None:
        lead = getattr(self.events, "wait_to_lead", None)
        if lead is not None:
            await lead(self.name)  # one relay per log: the others wait to take over
        self.position = self._saved = await self.views.tracking(self.name)
        committed = getattr(self.events, "committed", None)
        if committed is not None:
            committed.append(self._commits.put_nowait)
            self._live = True
        try:
            await self._catch_up()
            while True:
                try:
                    await self._next(live=committed is not None)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("relay failed; retrying")
                    await asyncio.sleep(0.5)
        finally:
            if committed is not None:
                committed.remove(self._commits.put_nowait)
            await self._save(force=True)

    async def _next(self, live: bool) -> None:
        if not live:
            await self.events.wait_for_append(self.position, timeout=1.0)
            await self._catch_up()
            return await self._save()
        batch = await self._commits.get()
        if not batch:  # the reminder of a save put off (see _save)
            self._reminded = False
            return await self._save()
        if batch[0].position > self.position + 1:
            await self._catch_up()  # something was committed before we listened: read it
        if batch[-1].position > self.position:
            await self._publish([r for r in batch if r.position > self.position], batch[-1].position)

    async def _catch_up(self) -> None:
        while True:
            batch, last = await self.events.read_relayed(self.position, self.batch_size)
            if last <= self.position:
                return
            await self._publish(batch, last)

    async def _publish(self, batch: list[Recorded], last: int) -> None:
        """Publish `batch`, the relayed events up to position `last`."""
        relayed = [r.event for r in batch if r.event.relayed]
        if relayed:  # most commits are runs' records, which only the read models need
            await self.projected(last)
            # Published together, confirmed together: one broker round trip per batch, not per
            # event. Order across a batch is not kept; every reaction reads the state it acts on.
            await asyncio.gather(*(self.bus.publish(event) for event in relayed))
        self.position = last
        await self._save()

    async def _save(self, force: bool = False) -> None:
        if self.position == self._saved:
            return
        if force or time.monotonic() - self._saved_at >= self.save_every:
            await self.views.set_tracking(self.name, self.position)
            self._saved, self._saved_at = self.position, time.monotonic()
        elif self._live and not self._reminded:
            # Nothing else may be committed for a while: an empty batch comes back to save it then.
            self._reminded = True
            asyncio.get_running_loop().call_later(self.save_every, self._commits.put_nowait, [])
