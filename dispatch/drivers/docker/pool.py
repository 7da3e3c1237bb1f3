"""The containers of one deployment: between min and max replicas, each taking up to `concurrency`
calls at once; calls beyond that wait in order, `max_queued` at most (past that a call fails at
once with PoolFull, rather than wait behind a queue that only grows). Replicas idle for
`idle_seconds` stop down to the minimum (to zero when it is 0); a replica that failed or timed out
is discarded and replaced."""
import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable


class ReplicaFailed(Exception):
    """A replica could not be started; `reason` says why, for the deploy or the run that waited."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class PoolClosed(Exception):
    """The deployment was removed while a call waited for a replica."""


class PoolFull(Exception):
    def __init__(self, queued: int):
        super().__init__(f"{queued} runs queued")
        self.queued = queued


@dataclass(eq=False)
class Member:
    replica: Any
    in_flight: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    ended_by: str | None = None
    """Why it was discarded while other calls were in it, when one of its calls ended it."""


class Pool:
    def __init__(self, start: Callable[[], Awaitable[Any]], stop: Callable[[Any], Awaitable[None]],
                 min_replicas: int, max_replicas: int, concurrency: int, idle_seconds: float,
                 max_queued: int = 1000, cold_start: Callable[[], None] | None = None):
        """`cold_start()` is called for each replica that starts while calls wait for one."""
        self._start, self._stop = start, stop
        self._cold_start = cold_start
        self.max_queued = max(0, max_queued)
        self.min_replicas = max(0, min_replicas)
        self.max_replicas = max(1, max_replicas, self.min_replicas)
        self.concurrency = max(1, concurrency)
        self.idle_seconds = max(0.0, idle_seconds)
        self.members: list[Member] = []
        self._starting = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self._reaper: asyncio.Task | None = None

    async def warm(self) -> None:
        """Start the minimum (at least one, to prove the function serves); raise ReplicaFailed."""
        wanted = max(1, self.min_replicas)
        self._starting += wanted
        started = await asyncio.gather(*(self._start_replica() for _ in range(wanted)), return_exceptions=True)
        self._starting -= wanted
        good = [replica for replica in started if not isinstance(replica, BaseException)]
        self.members += [Member(replica) for replica in good]
        failure = next((error for error in started if isinstance(error, BaseException)), None)
        if failure is not None:
            raise failure
        self._reaper = asyncio.ensure_future(self._reap())

    async def acquire(self) -> Member:
        """A member with room for one more call; raise ReplicaFailed when none can be started."""
        while True:
            if self._closed:
                raise PoolClosed()
            member = min((m for m in self.members if m.in_flight < self.concurrency),
                         key=lambda m: m.in_flight, default=None)
            if member is not None:
                member.in_flight += 1
                return member
            if len(self._waiters) >= self.max_queued:
                raise PoolFull(len(self._waiters))
            if (len(self._waiters) + 1 > self._starting * self.concurrency
                    and len(self.members) + self._starting < self.max_replicas):
                self._spawn()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake(1)  # woken, then cancelled: the wake-up is another waiter's
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def release(self, member: Member) -> None:
        member.in_flight -= 1
        if member.in_flight == 0:
            member.idle_since = time.monotonic()
        self._wake(1)

    def discard(self, member: Member) -> None:
        """Stop a replica that cannot be trusted any more; start another if below the minimum."""
        if member in self.members:
            self.members.remove(member)
            self._background(self._stop(member.replica))
        if not self._closed and len(self.members) + self._starting < self.min_replicas:
            self._spawn()
        self._wake()

    async def close(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        self._wake()
        members, self.members = self.members, []
        await asyncio.gather(*(self._stop(m.replica) for m in members), return_exceptions=True)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self) -> None:
        self._starting += 1
        self._background(self._grow())

    async def _grow(self) -> None:
        try:
            replica = await self._start_replica()
        except ReplicaFailed as failure:
            self._starting -= 1
            if not self.members and not self._starting:
                self._wake(error=failure)  # nothing else will serve the waiting calls
            else:
                self._wake()
            return
        self._starting -= 1
        if self._closed:
            await self._stop(replica)
            return
        self.members.append(Member(replica))
        if self._waiters and self._cold_start is not None:
            self._cold_start()
        self._wake()

    async def _start_replica(self) -> Any:
        try:
            return await self._start()
        except ReplicaFailed:
            raise
        except Exception as exc:  # the engine failed us: the waiting calls still get an answer
            raise ReplicaFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _reap(self) -> None:
        tick = min(max(self.idle_seconds / 4, 0.05), 5.0)
        while not self._closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for member in list(self.members):
                if len(self.members) <= self.min_replicas:
                    break
                if member.in_flight == 0 and now - member.idle_since >= self.idle_seconds:
                    self.members.remove(member)
                    self._background(self._stop(member.replica))

    def _wake(self, count: int | None = None, error: BaseException | None = None) -> None:
        while self._waiters and (count is None or count > 0):
            waiter = self._waiters.popleft()
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
                count = None if count is None else count - 1

    def _background(self, work: Awaitable) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
