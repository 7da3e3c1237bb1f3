"""Publishes the log to the bus's events from a tracked position: the log is the truth, the bus
delivers. A crash between publishing and saving the position republishes; consumers are
idempotent by message id, so that costs nothing. Events are published only once the read models
include them, so a reaction that reads a view never sees it older than the event it reacts to."""
import asyncio
from typing import Awaitable, Callable

import structlog

from dispatch.bus.ports import MessageBus
from dispatch.store.ports import EventLog, Views

log = structlog.get_logger("dispatch.relay")


class Relay:
    name = "relay"

    def __init__(self, events: EventLog, views: Views, bus: MessageBus,
                 projected: Callable[[int], Awaitable[None]], batch_size: int = 500):
        self.events = events
        self.projected = projected
        self.views = views
        self.bus = bus
        self.batch_size = batch_size
        self.position = 0

    async def run(self) -> None:
        self.position = await self.views.tracking(self.name)
        while True:
            try:
                while batch := await self.events.read_all(self.position, self.batch_size):
                    await self.projected(batch[-1].position)
                    for recorded in batch:
                        await self.bus.publish(recorded.event)
                    self.position = batch[-1].position
                    await self.views.set_tracking(self.name, self.position)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay failed; retrying")
                await asyncio.sleep(0.5)
            await self.events.wait_for_append(self.position, timeout=1.0)
