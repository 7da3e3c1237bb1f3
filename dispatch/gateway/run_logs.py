"""`GET /v1/runs/logs?functionName=F[&since=S][&follow=true]`: a function's logs across its runs,
as server-sent events (`dispatch logs function F`). Each line of a run's stdout and stderr is one
`log` event: `{"run", "function", "time", "stream", "line"}`, `time` being when the run started.
The runs recorded so far come first (those modified after `since`), oldest first; then, when
following, a `following` event and each run as it finishes, until the client leaves or the server
stops. Without `follow` the stream ends with an `end` event. A follower too slow to keep up gets
an `error` event and the stream ends."""
import asyncio
import contextlib
from typing import Any

from aiohttp import web

from dispatch.errors import NotFound, Rejected
from dispatch.schemas.resources import instant
from dispatch.schemas.wirejson import dumps_text

from .context import correlation_id, organization
from .resources import PLATFORM
from .run_feed import RunFeed
from .runs import since_of

RUN_FEED = web.AppKey("run_feed", RunFeed)
KEEPALIVE_SECONDS = 15.0
"""A comment line this often when nothing happens: proxies keep the stream, and a client that
left is noticed."""
FINISHED = ("READY", "ERROR")


def event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {dumps_text(data)}\n\n".encode()


def log_events(run: dict[str, Any]) -> bytes:
    """The `log` events of a finished run's lines, stdout's then stderr's."""
    started = run.get("startedAt") or instant(int(run.get("executedTime") or 0) * 1000)
    logs = run.get("logs") or {}
    return b"".join(event("log", {"run": run.get("name"), "function": run.get("functionName"), "time": started,
                                  "stream": stream, "line": line})
                    for stream in ("stdout", "stderr") for line in logs.get(stream) or [])


def _follow(request: web.Request) -> bool:
    value = request.query.get("follow", "false").lower()
    if value not in ("true", "false", "1", "0", ""):
        raise Rejected(f"follow must be true or false, not {value!r}")
    return value in ("true", "1")


async def function_logs(request: web.Request) -> web.StreamResponse:
    function = request.query.get("functionName")
    if not function:
        raise Rejected("Bad Request: No function specified")
    org, since, follow = organization(request), since_of(request), _follow(request)
    views = request.app[PLATFORM].views
    if await views.get_resource(org, "Function", function) is None:
        raise NotFound(f"function {function} not found")
    following = request.app[RUN_FEED].follow(org, function) if follow else contextlib.nullcontext()
    async with following as follower:
        # entered first: a run finishing meanwhile is in what is read now, or comes to the follower
        recorded = [run for run in await views.list_runs(org, function, since) if run.get("status") in FINISHED]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no", "X-Request-Id": correlation_id(request)})
        await response.prepare(request)
        try:
            await response.write(b"".join(log_events(run) for run in recorded))
            if follower is None:
                await response.write(event("end", {}))
            else:
                await response.write(event("following", {"function": function}))
                await _stream(response, follower, {run["name"] for run in recorded})
        except ConnectionError:
            pass  # the client left
    return response


async def _stream(response: web.StreamResponse, follower: Any, shown: set[str]) -> None:
    while True:
        try:
            run = await asyncio.wait_for(follower.next(), KEEPALIVE_SECONDS)
        except asyncio.TimeoutError:
            await response.write(b": keepalive\n\n")
            continue
        if run is None:
            if follower.fell_behind:
                await response.write(event("error", {"message": "the log stream fell behind the runs; "
                                                                "follow again, with --since to catch up"}))
            return
        if run["name"] in shown:
            shown.discard(run["name"])
            continue
        await response.write(log_events(run))


async def _close(app: web.Application) -> None:
    await app[RUN_FEED].close()


def serve(app: web.Application) -> None:
    """Before `/v1/runs/{name}`, which would take `logs` for a run's name."""
    app[RUN_FEED] = RunFeed(app[PLATFORM].store)
    app.on_shutdown.append(_close)
    app.add_routes([web.get("/v1/runs/logs", function_logs)])
