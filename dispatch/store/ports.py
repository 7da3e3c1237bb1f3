"""The store's ports: the append-only event log, the blob store for function sources, and the
read models (views) that projections keep up to date."""
from dataclasses import dataclass
from typing import Any, Protocol

from dispatch.errors import Conflict
from dispatch.schemas.envelope import Event


class ConcurrencyConflict(Conflict):
    """The stream moved on since it was read: reload and decide again."""


@dataclass(frozen=True)
class Recorded:
    position: int
    stream: str
    stream_version: int
    event: Event


class EventLog(Protocol):
    async def append(self, stream: str, expected_version: int, events: list[Event]) -> int:
        """Append after `expected_version` events (0 for a new stream); return the last global
        position; raise ConcurrencyConflict when the stream holds a different number."""

    async def read_stream(self, stream: str) -> list[Recorded]: ...

    async def read_all(self, after: int, limit: int = 1000) -> list[Recorded]: ...

    async def read_relayed(self, after: int, limit: int = 1000) -> tuple[list[Recorded], int]:
        """The relayed events (`Event.relayed`) among the `limit` positions after `after`, and
        the last position read (`after` when there is nothing new): what the relay publishes,
        without reading back the events it leaves in the log."""

    async def last_position(self) -> int: ...

    async def wait_for_append(self, after: int, timeout: float) -> None:
        """Return once the log is past `after`, or when `timeout` passes."""


class LeaderElection(Protocol):
    """An event log whose processes can elect leaders (PostgreSQL's; the embedded one has no peers)."""

    async def try_lead(self, name: str) -> bool: ...

    def leads(self, name: str) -> bool: ...


class BlobStore(Protocol):
    async def put_blob(self, data: bytes) -> str:
        """Store content-addressed data and return its digest (idempotent)."""

    async def get_blob(self, digest: str) -> bytes | None: ...


class ViewTransaction(Protocol):
    """What a projection may do inside the transaction that also moves its tracking position."""

    def get_resource(self, org: str, kind: str, name: str) -> dict[str, Any] | None: ...

    def put_resource(self, org: str, kind: str, name: str, body: dict[str, Any]) -> None: ...

    def delete_resource(self, org: str, kind: str, name: str) -> None: ...

    def put_run(self, org: str, body: dict[str, Any], position: int) -> None:
        """Write a run's record; `position` is that of the event carrying it. A run keeps the
        position it was first written at: the order runs are paged in."""

    def delete_runs(self, org: str, function: str) -> None: ...

    def put_audit(self, entry: dict[str, Any]) -> None:
        """Record an audit entry under its log `position` (writing one twice changes nothing)."""


class Views(Protocol):
    async def get_resource(self, org: str, kind: str, name: str) -> dict[str, Any] | None: ...

    async def list_resources(self, org: str, kind: str) -> list[dict[str, Any]]: ...

    async def list_all(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """(organization, body) of every resource of a kind, for start-up and resync."""

    async def get_run(self, org: str, name: str) -> dict[str, Any] | None: ...

    async def list_runs(self, org: str, function: str | None, since: int | None) -> list[dict[str, Any]]: ...

    async def page_runs(self, org: str, function: str | None, since: int | None, before: int | None,
                        limit: int) -> list[tuple[int, dict[str, Any]]]:
        """(position, run) of at most `limit` runs, newest first (by the position each run was
        first recorded at, which never changes): those before `before` when given, modified
        after `since` when given."""

    async def prune_runs(self, older_than: int) -> int:
        """Drop the finished runs last modified before `older_than` (Unix seconds) from the read
        model; answer how many. The log keeps them."""

    async def unfinished_runs(self) -> list[tuple[str, dict[str, Any]]]:
        """(organization, run) of every run accepted but not finished, for recovery at start."""

    async def list_audit(self, organization: str | None, subject: str | None = None, resource: str | None = None,
                         name: str | None = None, since: float | None = None, after: int = 0,
                         limit: int = 100) -> list[dict[str, Any]]:
        """The audit entries of an organization (of every one when None), by position: those past
        `after`, at `since` (Unix seconds) or later, matching each filter given."""

    async def tracking(self, name: str) -> int: ...

    async def set_tracking(self, name: str, position: int) -> None: ...

    async def apply(self, name: str, batch: list[Recorded], projection: Any) -> None:
        """Apply a batch through `projection.apply(recorded, tx)` and move the tracking
        position of `name` in the same transaction; an already-applied position is skipped."""

    async def reset(self, name: str) -> None:
        """Empty the read models of `name` and move its tracking position back to 0."""

    async def dump(self) -> dict[str, list]:
        """Every read-model row, in a stable order (for comparing rebuilds)."""
