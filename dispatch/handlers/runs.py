"""Runs: execute a function and record every run, blocking or asynchronous."""
import asyncio
import time
from functools import partial

import structlog

from dispatch.bus.ports import AnswerFirst, MessageBus
from dispatch.schemas import commands as c
from dispatch.schemas import events as e
from dispatch.schemas.resources import Status
from dispatch.store.ports import ConcurrencyConflict, EventLog

from .execution import Executor

log = structlog.get_logger("dispatch.runs")
SLOW_RUN_SECONDS = 1.0
FINISHED = (Status.READY.value, Status.ERROR.value)


def _stream(organization: str, run: dict) -> str:
    return f"Run:{organization}:{run['name']}"


async def execute_function(cmd: c.ExecuteFunction, events: EventLog, executor: Executor) -> dict | AnswerFirst:
    """Consumes ExecuteFunction. Blocking: emits RunFinished (preceded by RunAccepted when the run
    is slow, so it can be followed while it runs). Asynchronous: emits RunAccepted, answers, then
    runs the function and emits RunFinished; the command is settled only after that, so a crash
    in between delivers it again and the accepted run is finished by whoever gets it."""
    function = await executor.ready_function(cmd.organization, cmd.run["functionName"])
    stamp = int(time.time())
    run = {**cmd.run, "functionId": function["id"], "faasId": function["faasId"],
           "status": Status.INITIALIZED.value, "executedTime": stamp, "modifiedTime": stamp}
    stream = _stream(cmd.organization, run)
    if not run.get("blocking"):
        accepted = await _record(events, stream, 0, e.RunAccepted(organization=cmd.organization, run=run).caused_by(cmd))
        if accepted["run"]["status"] in FINISHED:
            return accepted  # a redelivery of a run already finished
        return AnswerFirst(accepted, _finish(cmd, events, executor, accepted["run"], function))
    work = asyncio.ensure_future(executor.run(cmd.organization, function, run))
    version = 0
    done, _ = await asyncio.wait({work}, timeout=SLOW_RUN_SECONDS)
    if not done:
        started = {**run, "status": Status.CREATING.value}
        await _record(events, stream, 0, e.RunAccepted(organization=cmd.organization, run=started).caused_by(cmd))
        version = 1
    finished = await work
    answer = await _record(events, stream, version, e.RunFinished(organization=cmd.organization, run=finished).caused_by(cmd))
    _log_run(answer["run"], cmd)
    return answer


async def _finish(cmd: c.ExecuteFunction, events: EventLog, executor: Executor, run: dict, function: dict) -> None:
    """Run an accepted run on the function found READY when the command was handled; every
    failure ends in the run record (Executor.run records it), none escapes."""
    finished = await executor.run(cmd.organization, function, run)
    answer = await _record(events, _stream(cmd.organization, run), 1,
                           e.RunFinished(organization=cmd.organization, run=finished).caused_by(cmd))
    _log_run(answer["run"], cmd)


async def _record(events: EventLog, stream: str, version: int, event: e.RunEvent) -> dict:
    """Append a run's event; when an earlier delivery of the same command already recorded the
    run (a redelivery after a crash), answer with what that delivery recorded instead."""
    try:
        return {"run": event.run, "position": await events.append(stream, version, [event])}
    except ConcurrencyConflict:
        recorded = (await events.read_stream(stream))[-1]
        return {"run": recorded.event.run, "position": recorded.position}


def _log_run(run: dict, cmd: c.Command) -> None:
    log.info("run", run=run["name"], function=run["functionName"], status=run["status"],
             error=(run.get("error") or {}).get("type"), correlation_id=cmd.correlation_id)


def register(bus: MessageBus, events: EventLog, executor: Executor) -> None:
    bus.handle(c.ExecuteFunction, partial(execute_function, events=events, executor=executor))
