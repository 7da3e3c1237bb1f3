"""Which process runs a run, so that a run executes once unless its executor dies.

Before it runs a function, a process records the run as accepted in the run's stream, naming
itself (`executor`, its instance) and the attempt. A delivery of the same run that finds that
record leaves the run to its executor while the executor lives: a command redelivered after a
broker's connection dropped (no crash) must not run it a second time. Only when the executor is
gone — its process died, or lost its database session — does another take the run over, as a
new attempt the run's history records.

Whether a process lives: it holds an advisory lock named after its instance on the store for as
long as its database session lasts (PostgreSQL); with the embedded store there is one process,
so another instance is an earlier life of it, which a restart ended."""
from typing import Any

from dispatch.schemas.envelope import new_id


class Executors:
    def __init__(self, store: Any):
        self.instance = new_id()
        self._store = store if hasattr(store, "try_lead") else None
        self.running: set[str] = set()
        """Runs this process claimed and has not finished."""

    async def start(self) -> None:
        if self._store is not None:
            await self._store.try_lead(self._lock)

    @property
    def _lock(self) -> str:
        return f"executor:{self.instance}"

    async def alive(self, run: dict) -> bool:
        """Whether the executor that claimed `run` may still finish it."""
        instance = run.get("executor")
        if not instance:
            return False
        if instance == self.instance:
            return run["name"] in self.running
        if self._store is None:
            return False
        if await self._store.try_lead(f"executor:{instance}"):
            await self._store.resign(f"executor:{instance}")  # nobody held it: that process is gone
            return False
        return True
