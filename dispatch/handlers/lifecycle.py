"""The lifecycle every resource shares: load its stream, decide, append with the expected version.
Capability modules (base_images, images, functions, secrets, apis) add their own rules on top."""
import time
from typing import Any, Awaitable, Callable

from dispatch.errors import Conflict, NotFound
from dispatch.schemas.envelope import Message, new_ordered_id
from dispatch.schemas.events import ResourceDeletionRequested, ResourceEvent, evolve, stream_name
from dispatch.schemas.resources import Status
from dispatch.store.ports import ConcurrencyConflict, EventLog, Recorded

LABELS = {"BaseImage": "base image", "Image": "image", "Function": "function", "Secret": "secret", "API": "api",
          "Subscription": "subscription", "DriverType": "driver type", "Driver": "driver",
          "Application": "application", "Organization": "organization", "Policy": "policy",
          "ServiceAccount": "service account"}


class Loaded:
    """A resource's stream folded into its current state."""

    def __init__(self, kind: str, organization: str, name: str, recorded: list[Recorded]):
        self.kind, self.organization, self.name = kind, organization, name
        self.recorded = recorded
        self.state: dict[str, Any] | None = None
        for item in recorded:
            self.state = evolve(self.state, item.event)  # type: ignore[arg-type]

    @property
    def version(self) -> int:
        return len(self.recorded)

    @property
    def stream(self) -> str:
        return stream_name(self.kind, self.organization, self.name)

    @property
    def label(self) -> str:
        return f"{LABELS[self.kind]} {self.name}"

    @property
    def status(self) -> str | None:
        return None if self.state is None else self.state.get("status")

    def existing(self) -> dict[str, Any]:
        if self.state is None:
            raise NotFound(f"{self.label} not found")
        return self.state

    def absent(self) -> None:
        if self.state is not None:
            raise Conflict(f"{self.label} already exists")

    def last(self, event_type: type | tuple[type, ...]) -> Any:
        """The most recent event of a type in this stream (e.g. the latest source digest)."""
        for item in reversed(self.recorded):
            if isinstance(item.event, event_type):
                return item.event
        return None


async def load(events: EventLog, kind: str, organization: str, name: str) -> Loaded:
    return Loaded(kind, organization, name, await events.read_stream(stream_name(kind, organization, name)))


async def append(events: EventLog, loaded: Loaded, cause: Message, *new: ResourceEvent) -> int:
    return await events.append(loaded.stream, loaded.version, [event.caused_by(cause) for event in new])


async def decide(decision: Callable[[], Awaitable[Any]], attempts: int = 5) -> Any:
    """Run a load-decide-append step again when another writer moved the stream meanwhile."""
    for attempt in range(attempts):
        try:
            return await decision()
        except ConcurrencyConflict:
            if attempt == attempts - 1:
                raise


def now() -> int:
    return int(time.time())


def new_resource(kind: str, name: str, body: dict[str, Any], status: Status | None) -> dict[str, Any]:
    stamp = now()
    # time-ordered ids: what was created first sorts first (routes of APIs sharing a path)
    return {**body, "id": new_ordered_id(), "name": name, "kind": kind, "status": status and status.value,
            "reason": None, "createdTime": stamp, "modifiedTime": stamp}


def replaced(state: dict[str, Any], body: dict[str, Any], status: Status | None) -> dict[str, Any]:
    """A full replacement that keeps the server-assigned identity and creation time."""
    return {**body, "id": state["id"], "name": state["name"], "kind": state["kind"],
            "status": status and status.value, "reason": None,
            "createdTime": state["createdTime"], "modifiedTime": now()}


def reply(resource: dict[str, Any] | None, position: int) -> dict[str, Any]:
    return {"resource": resource, "position": position}


def changed(event_type: type, cmd: Any, status: Status, reason: str | None = None, /, **changes: Any) -> Any:
    """A status change of the command's resource, with the wire fields set along with it."""
    return event_type(organization=cmd.organization, name=cmd.name, status=status,
                      reason=None if reason is None else [reason], changes=changes, modified_time=now())


async def create(cmd: Any, events: EventLog, event_type: type, status: Status | None,
                 body: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """Record a new resource under a name not in use; `body` defaults to the command's."""
    async def step():
        loaded = await load(events, event_type.kind, cmd.organization, cmd.name)
        loaded.absent()
        resource = new_resource(event_type.kind, cmd.name, cmd.resource if body is None else body, status)
        return reply(resource, await append(events, loaded, cmd, event_type(
            organization=cmd.organization, name=cmd.name, resource=resource, **fields)))
    return await decide(step)


async def update(cmd: Any, events: EventLog, event_type: type, status: Status | None,
                 body: dict[str, Any] | None = None,
                 replaced_state: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
                 **fields: Any) -> dict[str, Any]:
    """Replace an existing resource whole; `replaced_state` gets the state it replaced."""
    async def step():
        loaded = await load(events, event_type.kind, cmd.organization, cmd.name)
        previous = loaded.existing()
        resource = replaced(previous, cmd.resource if body is None else body, status)
        position = await append(events, loaded, cmd, event_type(
            organization=cmd.organization, name=cmd.name, resource=resource, **fields))
        if replaced_state is not None:
            await replaced_state(previous)
        return reply(resource, position)
    return await decide(step)


async def delete(cmd: Any, events: EventLog, event_type: type,
                 check: Callable[[Loaded], Awaitable[None]] | None = None) -> dict[str, Any]:
    """Ask for a resource's removal (answered DELETING) or, for kinds removed at once, remove it."""
    async def step():
        loaded = await load(events, event_type.kind, cmd.organization, cmd.name)
        state = loaded.existing()
        if check is not None:
            await check(loaded)
        if not issubclass(event_type, ResourceDeletionRequested):
            return reply(state, await append(events, loaded, cmd, event_type(
                organization=cmd.organization, name=cmd.name)))
        stamp = now()
        position = await append(events, loaded, cmd, event_type(
            organization=cmd.organization, name=cmd.name, modified_time=stamp))
        return reply({**state, "status": Status.DELETING.value, "modifiedTime": stamp}, position)
    return await decide(step)


def broken(label: str, dependency: dict[str, Any] | None) -> str | None:
    """Why a dependency can never become usable (missing, or in ERROR); None while it still may."""
    if dependency is None:
        return f"{label} is not found"
    if dependency["status"] == Status.ERROR.value:
        return f"{label} is in ERROR: {'; '.join(dependency.get('reason') or [])}"
    return None


def unused_by(views: Any, organization: str, kind: str, field: str) -> Callable[[Loaded], Awaitable[None]]:
    """A delete check refusing while a live resource of `kind` names this one in `field`."""
    async def check(loaded: Loaded) -> None:
        users = [r["name"] for r in await views.list_resources(organization, kind)
                 if r.get(field) == loaded.name and r.get("status") != Status.DELETING.value]
        if users:
            raise Conflict(f"{loaded.label} is used by {LABELS[kind]} {', '.join(users)}")
    return check
