"""The warm workers of one deployed function: grow on demand up to a cap, queue callers beyond it."""
import asyncio
from collections import deque
from typing import Awaitable, Callable

import structlog

from dispatch.drivers.local.workers import Worker, WorkerNotReady
from dispatch.drivers.ports import NotDeployed

log = structlog.get_logger(__name__)
STOP_GRACE_SECONDS = 1.0


class WorkerPool:
    def __init__(self, name: str, start: Callable[[], Awaitable[Worker]], max_workers: int):
        self._name = name
        self._start = start
        self._max = max(1, max_workers)
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._size = 0  # workers alive or starting, so concurrent callers never overshoot the cap
        self._waiters: deque[asyncio.Future] = deque()
        self._replacing: set[asyncio.Task] = set()
        self._stopping: set[asyncio.Task] = set()
        self._closed = False

    async def warm(self) -> None:
        """Start the first worker; raise WorkerNotReady when the function cannot be served."""
        self.release(await self._grow())

    async def acquire(self) -> Worker:
        while True:
            if self._closed:
                raise NotDeployed(self._name)
            if self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                self.discard(worker)  # died while idle (killed from outside): not this caller's failure
                continue
            if self._size < self._max:
                return await self._grow()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                worker = await waiter
            except asyncio.CancelledError:
                self._pass_on(waiter)
                raise
            if worker is not None:
                return worker

    def release(self, worker: Worker) -> None:
        """Give a worker that finished its call back: to the longest-waiting caller, else to the idle list."""
        if self._closed:
            self._spawn(self._stopping, worker.stop(0))
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def discard(self, worker: Worker) -> None:
        """Drop a worker that timed out, died or broke the protocol, and start its replacement."""
        self._spawn(self._stopping, worker.stop(0))
        if worker not in self._all:
            return
        self._all.discard(worker)
        self._size -= 1
        if not self._closed:
            self._spawn(self._replacing, self._replace())

    async def close(self) -> None:
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(NotDeployed(self._name))
        for task in self._replacing:
            task.cancel()  # a worker still starting is killed by Worker.start
        workers, self._idle = list(self._all), []
        await asyncio.gather(*(worker.stop(STOP_GRACE_SECONDS) for worker in workers), return_exceptions=True)
        await asyncio.gather(*self._replacing, *self._stopping, return_exceptions=True)

    async def _grow(self) -> Worker:
        self._size += 1
        try:
            worker = await self._start()
        except BaseException:
            self._size -= 1
            self._wake_one()
            raise
        if self._closed:
            await worker.stop(0)
            raise NotDeployed(self._name)
        self._all.add(worker)
        return worker

    async def _replace(self) -> None:
        try:
            self.release(await self._grow())
        except (WorkerNotReady, NotDeployed, OSError) as exc:
            log.warning("function worker replacement failed", function=self._name, reason=str(exc))

    def _pass_on(self, waiter: asyncio.Future) -> None:
        """A caller gave up after being handed a worker or a free slot: hand it to the next one."""
        if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
            return
        worker = waiter.result()
        if worker is None:
            self._wake_one()
        else:
            self.release(worker)

    def _wake_one(self) -> None:
        """A slot freed up: let the longest-waiting caller try to start a worker itself."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @staticmethod
    def _spawn(tasks: set[asyncio.Task], work: Awaitable) -> None:
        task = asyncio.ensure_future(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
