"""Runs as the event log records them finishing, for those following a function's logs.

The log is read, not the bus nor the handlers' memory: run events are not relayed (runs.py), and
in a distributed installation the process that ran a function is another one. One tail of the
log per gateway process, however many follow, and only while someone does. It wakes on appends
(this process's own, or PostgreSQL's NOTIFY of another's) and reads what is new."""
import asyncio
import contextlib
from typing import AsyncIterator

import structlog

from dispatch.schemas.events import RunFinished
from dispatch.store.ports import EventLog

log = structlog.get_logger("dispatch.gateway")
WAKE_SECONDS = 1.0
"""The longest a tail sleeps without a notice of an append (a lost LISTEN connection)."""
BACKLOG = 1000
"""Finished runs a follower may have waiting; one that falls further behind is let go."""


class Follower:
    def __init__(self) -> None:
        self._runs: asyncio.Queue[dict | None] = asyncio.Queue()
        self.fell_behind = False

    def put(self, run: dict) -> None:
        if self.fell_behind:
            return
        if self._runs.qsize() >= BACKLOG:
            self.fell_behind = True
            self.end()
            return
        self._runs.put_nowait(run)

    def end(self) -> None:
        self._runs.put_nowait(None)

    async def next(self) -> dict | None:
        """The next run the log records finishing; None when the following ends."""
        return await self._runs.get()


class RunFeed:
    def __init__(self, events: EventLog, batch_size: int = 500):
        self.events = events
        self.batch_size = batch_size
        self._followers: dict[tuple[str, str], set[Follower]] = {}
        self._tail: asyncio.Task | None = None
        self._starting = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def follow(self, organization: str, function: str) -> AsyncIterator[Follower]:
        """Every run of `function` recorded finishing from now on. What was recorded before this
        returns is in the read models already: read them after entering, and drop repeats."""
        follower, key = Follower(), (organization, function)
        self._followers.setdefault(key, set()).add(follower)
        try:
            await self._start()
            yield follower
        finally:
            followers = self._followers.get(key, set())
            followers.discard(follower)
            if not followers:
                self._followers.pop(key, None)
            if not self._followers and self._tail is not None:
                self._tail.cancel()
                self._tail = None

    async def _start(self) -> None:
        async with self._starting:
            if self._tail is None:
                self._tail = asyncio.ensure_future(self._read(await self.events.last_position()))

    async def _read(self, position: int) -> None:
        while True:
            try:
                batch = await self.events.read_all(position, self.batch_size)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the store is away: followers wait, and the tail goes on
                log.warning("run logs: the event log cannot be read", error=str(error))
                await asyncio.sleep(WAKE_SECONDS)
                continue
            if not batch:
                await self.events.wait_for_append(position, WAKE_SECONDS)
                continue
            for recorded in batch:
                event = recorded.event
                if isinstance(event, RunFinished) and (function := event.run.get("functionName")) is not None:
                    for follower in self._followers.get((event.organization, function), ()):
                        follower.put(event.run)
            position = batch[-1].position

    async def close(self) -> None:
        """End every following (the server stops)."""
        for followers in self._followers.values():
            for follower in followers:
                follower.end()
        if self._tail is not None:
            self._tail.cancel()
            await asyncio.gather(self._tail, return_exceptions=True)
            self._tail = None
