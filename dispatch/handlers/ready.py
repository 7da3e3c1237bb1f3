"""The READY functions runs are executed on, as the read model has them, kept per process.

Every run needs its function's definition; reading it for each run costs a database round trip
on the hot path. A function read READY is kept for at most `keep_for` seconds and forgotten as
soon as one of its events reaches this process (per-process subscription): an update, a failed
deploy or a delete stops new runs within the relay's delay. Only READY answers are kept: a
function becomes runnable the moment the read model says so."""
import time
from functools import partial

from dispatch.bus.ports import MessageBus
from dispatch.errors import Conflict, NotFound
from dispatch.schemas import events as e
from dispatch.schemas.resources import Status
from dispatch.store.ports import Views

KEEP_FOR_SECONDS = 1.0
MOST = 10_000


class NotReady(Conflict):
    """The function exists but cannot run now; `function_status` tells whether a deploy is under way."""

    def __init__(self, message: str, function_status: str = ""):
        super().__init__(message)
        self.function_status = function_status


async def read_ready(views: Views, organization: str, name: str) -> dict:
    """The function as the read model has it; NotFound, or NotReady (a Conflict)."""
    function = await views.get_resource(organization, "Function", name)
    if function is None:
        raise NotFound(f"function {name} not found")
    if function["status"] != Status.READY.value:
        why = function["status"]
        if function.get("reason"):
            why += ": " + "; ".join(function["reason"])
        raise NotReady(f"function {name} is not READY (status {why})", function["status"])
    return function


class ReadyFunctions:
    def __init__(self, views: Views, keep_for: float = KEEP_FOR_SECONDS):
        self.views = views
        self.keep_for = keep_for
        self._kept: dict[tuple[str, str], tuple[float, dict]] = {}

    async def get(self, organization: str, name: str) -> dict:
        key = (organization, name)
        kept = self._kept.get(key)
        if kept is not None and time.monotonic() - kept[0] < self.keep_for:
            return kept[1]
        function = await read_ready(self.views, organization, name)
        if len(self._kept) >= MOST:
            self._kept.clear()
        self._kept[key] = (time.monotonic(), function)
        return function

    def forget(self, organization: str, name: str) -> None:
        self._kept.pop((organization, name), None)


async def forget_when_changed(event: e.ResourceEvent, ready: ReadyFunctions) -> None:
    """Consumes every Function event, on this process's own subscription."""
    ready.forget(event.organization, event.name)


def follow_functions(bus: MessageBus, ready: ReadyFunctions) -> None:
    for event_type in (e.FunctionUpdated, e.FunctionDeployStarted, e.FunctionDeployed, e.FunctionDeployFailed,
                       e.FunctionDeletionRequested, e.FunctionDeleted):
        bus.subscribe(event_type, "ready-functions", partial(forget_when_changed, ready=ready), per_process=True)
