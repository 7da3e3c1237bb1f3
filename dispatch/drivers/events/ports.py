"""What the drivers handler group needs from an event source: run one driver, turning the outside
world (a schedule, a queue, a container) into CloudEvents of its organization, until cancelled."""
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

Emit = Callable[[Any], Awaitable[Any]]
"""Publish one event (its CloudEvents JSON form, or a parsed schemas.cloudevents.Event) in the
driver's organization; returns once the bus holds it, raises InvalidEvent when it is not valid."""


class Report(Protocol):
    async def __call__(self, reason: str | None, address: str | None = None) -> None:
        """None: the driver runs as configured (READY). A text: why it does not (ERROR), shown to
        users as the driver's reason while the source keeps retrying. `address` (with None): the
        `host:port` where gateways reach the driver's push endpoint, for an exposed type."""


class DriverRejected(Exception):
    """A driver's configuration can never work (a bad schedule, no engine for its image): it is
    not retried until the driver is updated."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DriverSpec:
    id: str
    organization: str
    name: str
    type: str
    config: dict[str, str] = field(default_factory=dict)
    """The type's config entries, then the driver's (which win)."""
    secrets: dict[str, str] = field(default_factory=dict)
    """The opened values of the driver's secrets, merged in order."""
    image: str = ""
    """The container image of a custom driver type."""
    resumed: bool = False
    """The driver ran before (a restart or a take-over): a schedule catches up on the slots it missed."""
    created_time: int = 0
    expose: bool = False
    """The driver's type is exposed: its container serves pushes forwarded from its push URL."""

    @property
    def source(self) -> str:
        """The CloudEvents `source` of the driver's events: stable across restarts and processes,
        so that an event emitted twice keeps its (source, id) identity."""
        return f"/drivers/{self.name}"


class EventSource(Protocol):
    async def run(self, spec: DriverSpec, emit: Emit, report: Report) -> None:
        """Run the driver until cancelled; report READY once it works, and the reason whenever it
        does not (then retry). Raise DriverRejected for a configuration that can never work."""

    async def discard(self, driver_id: str) -> None:
        """Remove what a driver may have left running elsewhere (a container of a process that
        died); called before a driver is taken over and when it is deleted."""

    async def close(self) -> None: ...
