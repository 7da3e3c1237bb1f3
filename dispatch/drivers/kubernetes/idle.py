"""Scale to zero: a function whose minReplicas is 0 goes down to no pods once it has had no run for
its idle time, and back up to one pod on its next run.

Runs are seen per process. So that the processes of one installation agree, each one writes the time
of a function's latest run on its Deployment (annotation `dispatch.io/last-run`) at most four times per
idle period, and a process scales a function down only when that time is old too.
"""
import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

import structlog

from dispatch.drivers.kubernetes import rollout
from dispatch.drivers.kubernetes.objects import KubernetesFailed, Objects

LAST_RUN = "dispatch.io/last-run"
log = structlog.get_logger("dispatch.kubernetes")


@dataclass
class _Watched:
    name: str
    pods: str
    idle: float
    last_run: float
    marked: float = 0.0
    running: int = 0
    down: bool = False
    function: str = ""


class IdleScaler:
    def __init__(self, objects: Callable[[], Awaitable[Objects]], poll: float, start_timeout: float,
                 cold_start: Callable[[str], None] | None = None):
        """`cold_start(function)` is called each time a run scales a function up from zero."""
        self._objects = objects
        self._cold_start = cold_start
        self._poll = poll
        self._start_timeout = start_timeout
        self._watched: dict[str, _Watched] = {}
        self._waking: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.Task | None = None

    def watch(self, faas_id: str, name: str, pods: str, idle: float, down: bool, function: str = "") -> None:
        self._watched[faas_id] = _Watched(name, pods, idle, time.time(), down=down, function=function or name)
        if self._loop is None:
            self._loop = asyncio.ensure_future(self._sweep_forever())

    def watches(self, faas_id: str) -> bool:
        return faas_id in self._watched

    def forget(self, faas_id: str) -> None:
        self._watched.pop(faas_id, None)

    @contextlib.asynccontextmanager
    async def running(self, faas_id: str) -> AsyncIterator[None]:
        """Around one run: the function is not idle while it runs, and is woken first if it sleeps."""
        watched = self._watched.get(faas_id)
        if watched is None:
            yield
            return
        watched.running += 1
        watched.last_run = now = time.time()
        try:
            if watched.down:
                await self.wake(faas_id)
            if now - watched.marked >= watched.idle / 4:
                watched.marked = now
                self._spawn(self._mark(watched, now))
            yield
        finally:
            watched.running -= 1
            watched.last_run = time.time()

    async def wake(self, faas_id: str) -> None:
        """Scale a sleeping function to one pod and wait until it is ready; concurrent runs wait together."""
        task = self._waking.get(faas_id)
        if task is None:
            task = asyncio.ensure_future(self._wake(self._watched[faas_id]))
            self._waking[faas_id] = task
            task.add_done_callback(lambda _: self._waking.pop(faas_id, None))
        await asyncio.shield(task)

    async def sweep(self) -> None:
        """Scale down every watched function idle for its idle time, here and, as marked, elsewhere."""
        for watched in list(self._watched.values()):
            now = time.time()
            if watched.down or watched.running or now - watched.last_run < watched.idle:
                continue
            objects = await self._objects()
            deployment = await objects.get("Deployment", watched.name)
            if deployment is None:
                continue
            elsewhere = _seconds((deployment["metadata"].get("annotations") or {}).get(LAST_RUN))
            if now - elsewhere < watched.idle or watched.running:
                watched.last_run = max(watched.last_run, elsewhere)  # look again one idle time after it
                continue
            await objects.patch("Deployment", watched.name, {"spec": {"replicas": 0}})
            watched.down = True
            log.info("function scaled to zero", deployment=watched.name, idle_seconds=watched.idle)

    async def close(self) -> None:
        for task in [self._loop, *self._tasks, *self._waking.values()]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._loop, *self._tasks] if t is not None), return_exceptions=True)
        self._loop = None

    async def _wake(self, watched: _Watched) -> None:
        objects = await self._objects()
        deployment = await objects.get("Deployment", watched.name)
        if deployment is None:
            raise KubernetesFailed(f"Deployment {watched.name} is gone")
        if not deployment["spec"].get("replicas"):
            deployment = await objects.patch("Deployment", watched.name, {"spec": {"replicas": 1}})
            log.info("function scaled up from zero", deployment=watched.name)
            if self._cold_start is not None:
                self._cold_start(watched.function)
        await rollout.wait(objects, deployment, watched.pods, self._start_timeout, self._poll, at_least=1)
        watched.down = False

    async def _mark(self, watched: _Watched, when: float) -> None:
        objects = await self._objects()
        await objects.patch("Deployment", watched.name, {"metadata": {"annotations": {LAST_RUN: f"{when:.3f}"}}})

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                await self.sweep()
            except Exception as error:  # the next sweep tries again; the loop must outlive any one failure
                log.warning("idle functions could not be scaled down", error=str(error))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def quietly() -> None:
            try:
                await work
            except KubernetesFailed as error:
                log.warning("could not mark a function's latest run", error=str(error))
        task = asyncio.ensure_future(quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _seconds(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0
