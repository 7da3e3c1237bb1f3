"""Follows the log and keeps the read models current; lets writers wait until their own write is
visible (read-your-writes for the API)."""
import asyncio

import structlog

from .ports import EventLog, Views
from .projections import ReadModels
from .watermark import Watermark

log = structlog.get_logger("dispatch.projector")


class Projector:
    def __init__(self, events: EventLog, views: Views, batch_size: int = 1000):
        self.events = events
        self.views = views
        self.models = ReadModels()
        self.batch_size = batch_size
        self._reached = Watermark()
        self.inline = False

    @property
    def position(self) -> int:
        return self._reached.value

    async def catch_up(self) -> int:
        """Apply everything appended so far; return the position reached."""
        position = await self.views.tracking(self.models.name)
        self._reached.advance(position)
        while batch := await self.events.read_all(position, self.batch_size):
            await self.views.apply(self.models.name, batch, self.models)
            position = batch[-1].position
            self._reached.advance(position)
        return position

    def follow_inline(self) -> bool:
        """Where the store can project inside its append transactions, do that instead of
        following the log: no lag, no second read of each event. Call after catch_up().
        Every process appending to the log must do the same."""
        project_inline = getattr(self.views, "project_inline", None)
        if project_inline is None:
            return False
        project_inline(self.models.name, self.models)
        self.inline = True
        committed = getattr(self.events, "committed", None)
        if committed is not None:
            committed.append(lambda recorded: self._reached.advance(recorded[-1].position))
        return True

    async def run(self) -> None:
        while True:
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("projection failed; retrying")
                await asyncio.sleep(0.5)
            await self.events.wait_for_append(self.position, timeout=1.0)

    async def wait_for(self, position: int, timeout: float = 10.0) -> None:
        if self.inline:
            return  # projected in the very transaction that appended it
        await self._reached.reach(position, timeout)

    async def rebuild(self) -> int:
        await self.views.reset(self.models.name)
        return await self.catch_up()
