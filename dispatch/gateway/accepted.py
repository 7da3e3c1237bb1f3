"""What the gateway needs to accept asynchronous runs on a durable bus without a round trip to
a handler.

A run is answered 202 once its command is confirmed, before a handler records it; until then
`GET /v1/runs/{name}` on this gateway answers from here, so a client following the run it was
just given never sees 404. The function a run names is checked READY as handlers check it
(`ReadyFunctions`); a READY answer a moment stale costs nothing, since the handler checks again
and records the run as failed if the function is gone."""
from collections import OrderedDict

from aiohttp import web

from dispatch.handlers.ready import ReadyFunctions
from dispatch.store.ports import Views

KEPT = 10_000


class AcceptedRuns:
    def __init__(self, kept: int = KEPT):
        self._kept = kept
        self._runs: OrderedDict[tuple[str, str], dict] = OrderedDict()
        self._ready: ReadyFunctions | None = None

    async def ready_function(self, views: Views, organization: str, name: str) -> dict:
        if self._ready is None:
            self._ready = ReadyFunctions(views)
        return await self._ready.get(organization, name)

    def remember(self, organization: str, run: dict) -> None:
        self._runs[(organization, run["name"])] = run
        if len(self._runs) > self._kept:
            self._runs.popitem(last=False)

    def get(self, organization: str, name: str) -> dict | None:
        return self._runs.get((organization, name))


ACCEPTED = web.AppKey("accepted_runs", AcceptedRuns)
