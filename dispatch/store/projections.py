"""Projections: pure functions of the log into read models. Replaying from position 0 gives the
same rows, because every row is derived from events alone."""
from dispatch.schemas.events import (
    FunctionDeleted,
    ResourceEvent,
    RunEvent,
    evolve,
)

from .ports import Recorded, ViewTransaction


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
            tx.put_run(event.organization, event.run)
        elif isinstance(event, FunctionDeleted):
            tx.delete_runs(event.organization, event.name)


class ReadModels:
    """All projections, applied together under one tracking name."""

    name = "views"

    def __init__(self) -> None:
        self.projections = [ResourceView(), RunView()]

    def apply(self, recorded: Recorded, tx: ViewTransaction) -> None:
        for projection in self.projections:
            projection.apply(recorded, tx)
