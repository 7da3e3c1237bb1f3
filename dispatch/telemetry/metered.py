"""The ports, counted: each wrapper is the port it wraps (what it does not count, it hands on
unchanged, adapter-specific methods included), so handlers neither know nor care that they are
measured. What only an adapter sees (a message dead-lettered, a worker started cold) it reports
to listeners it offers, when it offers them."""
import time
from typing import Any, Callable

from dispatch.bus.ports import Handler, MessageBus
from dispatch.drivers.ports import FunctionRuntime, ImageSpec, Progress
from dispatch.schemas.envelope import Command, Event, Message
from dispatch.store.ports import EventLog

from .metrics import Metrics


class PortWrapper:
    def __init__(self, wrapped: Any):
        self.wrapped = wrapped

    def __getattr__(self, name: str) -> Any:
        if name == "wrapped":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.wrapped, name)


class MeteredBus(PortWrapper):
    """Counts messages published (sent, requested, published) and consumed (handed to a handler
    of this process, each delivery); the adapter reports those it dead-letters."""

    def __init__(self, bus: MessageBus, metrics: Metrics):
        super().__init__(bus)
        count = metrics.bus_messages
        self._published = {"command": count.labels("published", "command"), "event": count.labels("published", "event")}
        self._consumed = {"command": count.labels("consumed", "command"), "event": count.labels("consumed", "event")}
        listeners = getattr(bus, "dead_lettered", None)
        if listeners is not None:
            listeners.append(lambda kind: count.labels("dead_lettered", kind).inc())

    def handle(self, command_type: type[Command], handler: Handler) -> None:
        self.wrapped.handle(command_type, self._counted(handler, "command"))

    def subscribe(self, event_type: type[Event], group: str, handler: Handler, per_process: bool = False) -> None:
        self.wrapped.subscribe(event_type, group, self._counted(handler, "event"), per_process)

    async def send(self, command: Command) -> None:
        await self.wrapped.send(command)
        self._published["command"].inc()

    async def request(self, command: Command, timeout: float) -> Any:
        self._published["command"].inc()  # whatever the reply, the command went out
        return await self.wrapped.request(command, timeout)

    async def publish(self, event: Event) -> None:
        await self.wrapped.publish(event)
        self._published["event"].inc()

    def _counted(self, handler: Handler, kind: str) -> Handler:
        consumed = self._consumed[kind]

        async def counted(message: Message) -> Any:
            consumed.inc()
            return await handler(message)
        return counted


class MeteredExecutor(PortWrapper):
    """Counts the runs executed, by the status they ended in, and times them."""

    def __init__(self, executor: Any, metrics: Metrics):
        super().__init__(executor)
        self._finished = metrics.run_finished

    async def run(self, organization: str, function: dict, run: dict) -> dict:
        started = time.perf_counter()
        record = await self.wrapped.run(organization, function, run)
        self._finished(organization, record, time.perf_counter() - started)
        return record


class MeteredLog(PortWrapper):
    """Counts and times appends to the event log (a refused append, a concurrency conflict, is
    not one); reads, blobs and the rest pass through."""

    def __init__(self, events: EventLog, metrics: Metrics):
        super().__init__(events)
        self._appends, self._seconds = metrics.appends, metrics.append_seconds

    async def append(self, stream: str, expected_version: int, events: list[Event]) -> int:
        started = time.perf_counter()
        position = await self.wrapped.append(stream, expected_version, events)
        self._seconds.observe(time.perf_counter() - started)
        self._appends.inc()
        return position


class MeteredRuntime(PortWrapper):
    """Times successful builds: images, and base images (their check, a pull included). Counts
    cold starts and samples warm workers where the runtime tells them (`cold_starts` listeners,
    `warm_workers()`)."""

    def __init__(self, runtime: FunctionRuntime, metrics: Metrics):
        super().__init__(runtime)
        self._builds = metrics.builds
        listeners = getattr(runtime, "cold_starts", None)
        if listeners is not None:
            listeners.append(metrics.cold_start)
        warm_workers = getattr(runtime, "warm_workers", None)
        if warm_workers is not None:
            metrics.sample(_sampler(metrics, warm_workers))

    async def check_base_image(self, language: str, docker_url: str) -> None:
        started = time.perf_counter()
        await self.wrapped.check_base_image(language, docker_url)
        self._builds.labels("base-image").observe(time.perf_counter() - started)

    async def build_image(self, spec: ImageSpec, progress: Progress | None = None) -> str:
        started = time.perf_counter()
        location = await self.wrapped.build_image(spec, progress)
        self._builds.labels("image").observe(time.perf_counter() - started)
        return location


def _sampler(metrics: Metrics, warm_workers: Callable[[], dict[str, int]]):
    async def sample_warm_workers() -> None:
        counts = warm_workers()
        metrics.warm_workers.clear()  # a function undeployed since the last scrape has no series
        for function, count in counts.items():
            metrics.warm_workers.labels(function).set(count)
    return sample_warm_workers
