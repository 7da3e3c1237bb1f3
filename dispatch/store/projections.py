"""Projections: pure functions of the log into read models. Replaying from position 0 gives the
same rows, because every row is derived from events alone."""
from typing import Any

from dispatch.schemas.envelope import Event
from dispatch.schemas.events import (
    AccessDenied,
    FunctionDeleted,
    ResourceCreated,
    ResourceDeleted,
    ResourceDeletionRequested,
    ResourceEvent,
    ResourceUpdated,
    RunEvent,
    SecretRead,
    evolve,
)

from .ports import Recorded, ViewTransaction

SYSTEM = "system"
"""Who the audit trail names for a fact without a subject: recorded before commands carried
one, or caused by the platform itself."""
RESOURCES = {"BaseImage": "baseimage", "Image": "image", "Function": "function", "Secret": "secret", "API": "api",
             "Subscription": "event", "DriverType": "event", "Driver": "event", "Application": "application",
             "Organization": "iam", "Policy": "iam", "ServiceAccount": "iam"}
"""The policy resource of each kind: the second segment of its path (/v1/event/drivers → event)."""
REMOVED_LATER = frozenset(cls.kind for cls in ResourceDeletionRequested.__subclasses__())
"""Kinds whose deletion is asked for first and done later by the platform: the request is
what a user did; the kinds without one are removed at once."""


class ResourceView:
    """Resources by (organization, kind, name), in their wire form."""

    def apply(self, recorded: Recorded, tx: ViewTransaction) -> None:
        event = recorded.event
        if not isinstance(event, ResourceEvent):
            return
        before = tx.get_resource(event.organization, event.kind, event.name)
        after = evolve(before, event)
        if after is None:
            tx.delete_resource(event.organization, event.kind, event.name)
        else:
            tx.put_resource(event.organization, event.kind, event.name, after)


class RunView:
    """Every run of every function; a deleted function takes its runs with it."""

    def apply(self, recorded: Recorded, tx: ViewTransaction) -> None:
        event = recorded.event
        if isinstance(event, RunEvent):
            tx.put_run(event.organization, event.run, recorded.position)
        elif isinstance(event, FunctionDeleted):
            tx.delete_runs(event.organization, event.name)


class AuditView:
    """Who did what, when, allowed or denied: one entry per create, update or delete of a
    resource, per read of a secret's values and per refused request. Changes of status (a
    build, a deploy) are the platform's, and runs are recorded as runs: neither is an entry.
    Entries hold names only, never a resource's body (a secret's values stay out)."""

    def apply(self, recorded: Recorded, tx: ViewTransaction) -> None:
        entry = audit_entry(recorded.event)
        if entry is not None:
            tx.put_audit({**entry, "position": recorded.position})


def audit_entry(event: Event) -> dict[str, Any] | None:
    """The audit entry of an event, without its position; None for the events that are none."""
    if isinstance(event, AccessDenied):
        return _entry(event, event.action, event.resource, None, event.name, "denied", event.reason or None,
                      event.request_id)
    if isinstance(event, SecretRead):
        return _entry(event, "get", "secret", "Secret", event.name, request_id=event.request_id)
    if not isinstance(event, ResourceEvent):
        return None
    action = _action(event)
    if action is None:
        return None
    return _entry(event, action, RESOURCES.get(event.kind, event.kind.lower()), event.kind, event.name)


def _action(event: ResourceEvent) -> str | None:
    if isinstance(event, ResourceCreated):
        return "create"
    if isinstance(event, ResourceUpdated):
        return "update"
    if isinstance(event, ResourceDeletionRequested):
        return "delete"
    if isinstance(event, ResourceDeleted) and event.kind not in REMOVED_LATER:
        return "delete"
    return None


def _entry(event: Any, action: str, resource: str, kind: str | None, name: str, outcome: str = "allowed",
           reason: str | None = None, request_id: str = "") -> dict[str, Any]:
    return {"time": round(event.time, 3), "subject": event.subject or SYSTEM, "organization": event.organization,
            "action": action, "resource": resource, "kind": kind, "name": name, "outcome": outcome,
            "reason": reason, "requestId": request_id or event.correlation_id}


class ReadModels:
    """All projections, applied together under one tracking name."""

    name = "views"

    def __init__(self) -> None:
        self.projections: list[ResourceView | RunView | AuditView] = [ResourceView(), RunView(), AuditView()]

    def apply(self, recorded: Recorded, tx: ViewTransaction) -> None:
        for projection in self.projections:
            projection.apply(recorded, tx)
