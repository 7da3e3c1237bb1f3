"""The workers of one deployed function: started when runs queue, stopped after an idle keep-alive.

Each worker takes up to `concurrency` runs at once. A run that finds no free slot waits in a queue
(bounded: past `max_queued` it fails fast with AtCapacity) while the pool starts workers up to
`max_replicas`, and takes whichever slot frees first: a new worker's, or a busy one's. A worker idle
for `idle_seconds` stops unless that would leave fewer than `min_replicas`; with `min_replicas` 0 the
function scales to zero and its next run costs a fork and an import (see the zygote).
"""
import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

import structlog

from dispatch.drivers.local.workers import Worker, WorkerNotReady
from dispatch.drivers.ports import NotDeployed

log = structlog.get_logger(__name__)
STOP_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class Scale:
    min_replicas: int = 0
    max_replicas: int = 4
    concurrency: int = 1
    idle_seconds: float = 300.0
    max_queued: int = 1000


class AtCapacity(Exception):
    def __init__(self, queued: int):
        super().__init__(f"{queued} runs queued")
        self.queued = queued


class WorkerPool:
    def __init__(self, name: str, start: Callable[[], Awaitable[Worker]], scale: Scale,
                 cold_start: Callable[[str], None] | None = None):
        """`cold_start(name)` is called for each worker that starts while runs wait for one."""
        self.name = name
        self._start = start
        self.scale = scale
        self._cold_start = cold_start
        self._workers: list[Worker] = []  # ready ones, least recently used first
        self._runs: dict[Worker, int] = {}  # runs each ready worker was given and has not finished
        self._idle_since: dict[Worker, float] = {}
        self._starting = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._tasks: set[asyncio.Task] = set()
        self._first_idle = asyncio.Event()  # wakes the reaper when it has no idle worker to watch
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._workers) + self._starting

    @property
    def ready(self) -> int:
        """Workers started and taking runs."""
        return len(self._workers)

    async def warm(self) -> None:
        """Start `min_replicas` workers (one at least, to check the function loads); raise WorkerNotReady
        when the function cannot be served."""
        started = await asyncio.gather(*(self._grow() for _ in range(max(1, self.scale.min_replicas))),
                                       return_exceptions=True)
        failed = [outcome for outcome in started if isinstance(outcome, BaseException)]
        workers = [outcome for outcome in started if isinstance(outcome, Worker)]
        if failed:
            await asyncio.gather(*(worker.stop(0) for worker in workers))
            raise failed[0]
        for worker in workers:
            self._add(worker)
        self._spawn(self._reap_idle())

    async def acquire(self) -> Worker:
        """A worker with a slot reserved for one run; give it back with release() or discard()."""
        if self._closed:
            raise NotDeployed(self.name)
        worker = self._free_worker()
        if worker is not None:
            return self._reserve(worker)
        if len(self._waiters) >= self.scale.max_queued:
            raise AtCapacity(len(self._waiters))
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._scale_up()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())  # handed a slot as it gave up: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self, worker: Worker) -> None:
        """A run on `worker` finished: its slot goes to the longest-waiting run, else it may idle."""
        if worker not in self._runs:  # the pool closed, or dropped or retired the worker meanwhile
            if worker.retiring and worker.in_flight == 0:
                self._spawn(worker.stop(STOP_GRACE_SECONDS))
            return
        self._runs[worker] -= 1
        if not worker.alive:
            self.discard(worker)
            return
        if worker.retiring or worker.worn_out:
            self._retire(worker)
            return
        if self._hand_over(worker):
            return
        if self._runs[worker] == 0:
            self._idle(worker)
        self._workers.remove(worker)
        self._workers.append(worker)

    def discard(self, worker: Worker) -> None:
        """Drop a worker that timed out, died or broke the protocol; start another if runs wait."""
        self._spawn(worker.stop(0))
        if worker in self._runs:
            self._workers.remove(worker)
            del self._runs[worker]
            self._idle_since.pop(worker, None)
        if not self._closed:
            self._scale_up()

    def _retire(self, worker: Worker) -> None:
        """No more runs for `worker`; it stops once those it has finish, and another may start."""
        worker.retiring = True
        self._workers.remove(worker)
        del self._runs[worker]
        self._idle_since.pop(worker, None)
        if worker.in_flight == 0:
            self._spawn(worker.stop(STOP_GRACE_SECONDS))
        self._scale_up()

    async def close(self) -> None:
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(NotDeployed(self.name))
        for task in list(self._tasks):
            task.cancel()  # a worker still starting is killed by Worker.start
        workers, self._workers = self._workers, []
        self._runs.clear()
        await asyncio.gather(*(worker.stop(STOP_GRACE_SECONDS) for worker in workers), return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _free_worker(self) -> Worker | None:
        for worker in reversed(self._workers):  # most recently used first, so the others can idle out
            if self._runs[worker] < self.scale.concurrency:
                if not worker.alive:
                    self.discard(worker)  # died while idle (killed from outside): not this run's failure
                elif worker.worn_out:
                    self._retire(worker)
                else:
                    return worker
                return self._free_worker()
        return None

    def _reserve(self, worker: Worker) -> Worker:
        self._runs[worker] += 1
        self._idle_since.pop(worker, None)
        return worker

    def _hand_over(self, worker: Worker) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._reserve(worker))
                return True
        return False

    def _scale_up(self) -> None:
        """Start workers while queued runs outnumber the slots of those already starting."""
        wanted = max(self.scale.min_replicas - len(self._workers), 0)
        waiting = len(self._waiters)
        while self.size < self.scale.max_replicas and (
                self._starting * self.scale.concurrency < waiting or self._starting < wanted):
            self._starting += 1
            self._spawn(self._start_one())

    async def _start_one(self) -> None:
        try:
            worker = await self._grow(counted=True)
        except (WorkerNotReady, OSError) as exc:
            log.warning("function worker did not start", function=self.name, reason=str(exc))
            if not self._workers and not self._starting:
                self._fail_waiters(exc)
            return
        except NotDeployed:
            return
        self._add(worker)

    def _add(self, worker: Worker) -> None:
        self._runs[worker] = 0
        self._workers.append(worker)
        while self._runs[worker] < self.scale.concurrency and self._hand_over(worker):
            pass
        if self._runs[worker] == 0:
            self._idle(worker)
        elif self._cold_start is not None:
            self._cold_start(self.name)  # runs were waiting for this worker

    def _idle(self, worker: Worker) -> None:
        self._idle_since[worker] = time.monotonic()
        self._first_idle.set()

    async def _grow(self, counted: bool = False) -> Worker:
        if not counted:
            self._starting += 1
        try:
            worker = await self._start()
        finally:
            self._starting -= 1
        if self._closed:
            await worker.stop(0)
            raise NotDeployed(self.name)
        return worker

    def _fail_waiters(self, exc: Exception) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)

    async def _reap_idle(self) -> None:
        """Stop workers idle for `idle_seconds`, longest idle first, down to `min_replicas`. Later idle
        times expire later, so it sleeps until the oldest one expires and only needs waking when
        there was none."""
        while not self._closed:
            now = time.monotonic()
            spare = max(len(self._workers) - self.scale.min_replicas, 0)
            idle = sorted(self._idle_since.items(), key=lambda item: item[1])[:spare]
            for worker, since in idle:
                if now - since < self.scale.idle_seconds:
                    break
                del self._idle_since[worker], self._runs[worker]
                self._workers.remove(worker)
                self._spawn(worker.stop(STOP_GRACE_SECONDS))
            spare = max(len(self._workers) - self.scale.min_replicas, 0)
            if spare and self._idle_since:
                await asyncio.sleep(max(min(self._idle_since.values()) + self.scale.idle_seconds - now, 0.01))
            else:
                self._first_idle.clear()
                await self._first_idle.wait()

    def _spawn(self, work: Awaitable) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
