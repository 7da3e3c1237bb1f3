"""`/v1/runs`: execute a function (blocking or not) and read the recorded runs."""
import asyncio
import functools
import time
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from dispatch.errors import NotFound, Rejected
from dispatch.schemas.commands import ExecuteFunction
from dispatch.schemas.envelope import new_ordered_id
from dispatch.schemas.resources import Run
from dispatch.schemas.wirejson import dumps_text

from . import run_pages
from .accepted import ACCEPTED, AcceptedRuns
from .bodies import read_json
from .context import SETTINGS, application_filter, correlation_id, matches_application, organization, subject
from .resources import PLATFORM

_UNTIMED = {"startedAt": None, "finishedAt": None, "durationMs": None}


def new_run(function: str, body: dict[str, Any]) -> dict[str, Any]:
    """A run from a caller's body, which may set only what a caller may set."""
    try:
        run = Run.model_validate(body)
    except ValidationError:
        raise Rejected("Bad Request: Invalid Payload") from None
    return {**run.wire(), "name": new_ordered_id(), "functionName": function, "output": None, "error": None,
            "status": "INITIALIZED", "logs": {"stdout": [], "stderr": []}, "reason": None, **_UNTIMED}


@functools.cache
def _blank() -> dict[str, Any]:
    return Run().wire()


def http_run(function: str, blocking: bool, payload: Any, context: dict[str, Any]) -> dict[str, Any]:
    """A run for a request to a user API. The gateway made every field itself from the request
    (the payload is parsed JSON, form fields or text), so there is nothing to validate: the run
    is the blank one with those fields and fresh lists."""
    return {**_blank(), "name": new_ordered_id(), "functionName": function, "blocking": blocking, "input": payload,
            "httpContext": context, "secrets": [], "services": [], "tags": [], "logs": {"stdout": [], "stderr": []}}


async def execute(platform, accepted: AcceptedRuns, organization_name: str, run: dict, correlation: str,
                  wait: float, subject: str | None = None) -> tuple[int, dict]:
    """Send the run; answer 200 with the finished run when blocking (202 with the run still in
    progress when the wait cap passes), 202 once it is accepted otherwise."""
    if not run["blocking"]:
        return 202, await _accept(platform, accepted, organization_name, run, correlation, subject)
    command = ExecuteFunction(organization=organization_name, run=run, correlation_id=correlation, subject=subject)
    try:
        answer = await platform.bus.request(command, wait)
    except asyncio.TimeoutError:
        return 202, run
    try:
        # read-your-writes: `exec --wait` then `get runs` must list the run just answered
        await platform.projector.wait_for(answer["position"])
    except asyncio.TimeoutError:
        pass  # the run is finished and in the log; a slow projection must not fail the answer
    return 200, answer["run"]


async def _accept(platform, accepted: AcceptedRuns, organization_name: str, run: dict, correlation: str,
                  subject: str | None) -> dict:
    """An asynchronous run is accepted once nothing can lose it: on a durable bus, once its
    command is confirmed (a handler records the run when it runs it); on the in-memory bus, once
    a handler recorded it as accepted, so that a restart runs it."""
    if not platform.bus.durable:
        command = ExecuteFunction(organization=organization_name, run=run, correlation_id=correlation, subject=subject)
        return (await platform.write(command))["run"]
    function = await accepted.ready_function(platform.views, organization_name, run["functionName"])
    stamp = int(time.time())
    run = {**run, "functionId": function["id"], "faasId": function["faasId"], "executedTime": stamp,
           "modifiedTime": stamp}
    await platform.bus.send(ExecuteFunction(organization=organization_name, run=run, correlation_id=correlation,
                                            record_acceptance=False, subject=subject))
    accepted.remember(organization_name, run)
    return run


async def create_run(request: web.Request) -> web.Response:
    function = request.query.get("functionName")
    if not function:
        raise Rejected("Bad Request: No function specified")
    wanted = application_filter(request)
    if wanted is not None:  # `exec -a NAME`: the function is looked up within that application
        found = await request.app[PLATFORM].views.get_resource(organization(request), "Function", function)
        if found is None or not matches_application(found, wanted):
            raise NotFound(f"function {function} not found")
    payload = await read_json(request, {}, not_json="Bad Request: Invalid Payload")
    if not isinstance(payload, dict):
        raise Rejected("Bad Request: Invalid Payload")
    run = new_run(function, payload)
    if wanted is not None and not matches_application(run, wanted):
        run["tags"].append({"key": "Application", "value": wanted})  # so `get runs -a NAME` lists it
    status, result = await execute(request.app[PLATFORM], request.app[ACCEPTED], organization(request), run,
                                   correlation_id(request), request.app[SETTINGS].blocking_wait_seconds,
                                   subject(request))
    return web.json_response(result, status=status, dumps=dumps_text)


def since_of(request: web.Request) -> int | None:
    value = request.query.get("since")
    if value in (None, ""):
        return None
    try:
        since = int(value)
    except ValueError:
        since = None
    if since is None or abs(since) >= 2**63:  # the stores keep 64-bit integers
        raise Rejected(f"since must be a Unix time in seconds, not {value!r}")
    return since


async def list_runs(request: web.Request) -> web.Response:
    """Every run, oldest first (what Dispatch's clients expect); with `limit` or `continue`, a page
    of them newest first, the next page's token in a header."""
    wanted = application_filter(request)
    views, org, function = request.app[PLATFORM].views, organization(request), request.query.get("functionName")
    if run_pages.paged(request):
        runs, more = await run_pages.page(views, org, function, since_of(request), run_pages.before_of(request),
                                          run_pages.limit_of(request), lambda run: matches_application(run, wanted))
        headers = {run_pages.NEXT_PAGE: more} if more else None
        return web.json_response(runs, dumps=dumps_text, headers=headers)
    runs = await views.list_runs(org, function, since_of(request))
    return web.json_response([run for run in runs if matches_application(run, wanted)], dumps=dumps_text)


async def get_run(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    wanted = application_filter(request)
    run = await request.app[PLATFORM].views.get_run(organization(request), name)
    if run is None:
        run = request.app[ACCEPTED].get(organization(request), name)
    function = request.query.get("functionName")
    if run is None or (function and run["functionName"] != function) or not matches_application(run, wanted):
        raise NotFound(f"function run {name} not found")
    return web.json_response(run, dumps=dumps_text)


def routes() -> list[web.RouteDef]:
    return [web.post("/v1/runs", create_run), web.get("/v1/runs", list_runs), web.get("/v1/runs/{name}", get_run)]
