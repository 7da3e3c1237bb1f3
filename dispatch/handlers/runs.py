"""Runs: execute a function and record every run, blocking or asynchronous."""
import asyncio
import time
from functools import partial
from typing import Awaitable, Callable, cast

import structlog

from dispatch.bus.ports import AnswerFirst, MessageBus
from dispatch.errors import DispatchError
from dispatch.schemas import commands as c, events as e
from dispatch.schemas.resources import Status, instant
from dispatch.store.ports import ConcurrencyConflict, EventLog, Recorded

from .claims import Executors
from .execution import Executor
from .ready import NotReady

log = structlog.get_logger("dispatch.runs")
SLOW_RUN_SECONDS = 1.0
FINISHED = (Status.READY.value, Status.ERROR.value)
DEPLOYING = (Status.INITIALIZED.value, Status.CREATING.value, Status.UPDATING.value)
DEPLOY_WAIT_SECONDS = 60.0
OUTCOME_POLL_SECONDS = 0.2


async def execute_function(cmd: c.ExecuteFunction, events: EventLog, executor: Executor,
                           executors: Executors, claims: bool) -> dict | AnswerFirst:
    """Consumes ExecuteFunction. Asynchronous with record_acceptance: emits RunAccepted, answers,
    then runs the function and emits RunFinished; the command is settled only after that, so a
    crash in between delivers it again and the accepted run is finished by whoever gets it.
    With `claims` (a durable bus, which may deliver a command again while its first delivery
    still runs it), every run is first recorded as accepted by this process (claims.py).
    Otherwise: emits RunFinished, preceded by RunAccepted when the run is slow so that it can be
    followed while it runs. A delivery of a run already finished, or claimed by a live process,
    answers with it and does not run the function again."""
    stream = f"Run:{cmd.organization}:{cmd.run['name']}"
    try:
        function = await executor.ready_function(cmd.organization, cmd.run["functionName"])
    except NotReady as refusal:
        if not cmd.once or cmd.run.get("blocking") or not cmd.record_acceptance:
            return await _refuse(cmd, events, stream, refusal)
        function = None  # an event's run: accepted now, run once the deploy under way ends
    except DispatchError as refusal:
        return await _refuse(cmd, events, stream, refusal)
    if cmd.repeated and (finished := await _finished(events, stream)) is not None:
        return finished  # an earlier delivery ran it; the acceptance path below checks by itself
    stamp = int(time.time())
    run = {**cmd.run, **_ids(function), "status": Status.INITIALIZED.value, "executedTime": stamp,
           "modifiedTime": stamp}
    answer_first = not run.get("blocking") and cmd.record_acceptance
    if not (answer_first or claims):
        assert function is not None  # None only for an event's run, which answers first
        return await _run_unclaimed(cmd, events, executor, stream, run, function)
    if not answer_first:
        run["status"] = Status.CREATING.value
    claimed, accepted, version = await _claim(cmd, events, executors, stream, run)
    if not claimed:
        if run.get("blocking") and accepted["run"]["status"] not in FINISHED:
            return await _outcome(cmd, events, executor, executors, stream, function)
        return accepted
    finishing = _finish(cmd, events, executor, executors, stream, accepted["run"], function, version)
    if answer_first:
        return AnswerFirst(accepted, finishing)
    return await finishing


async def _run_unclaimed(cmd: c.ExecuteFunction, events: EventLog, executor: Executor, stream: str, run: dict,
                         function: dict) -> dict:
    """A blocking run on the embedded bus, which delivers a command once: recorded once, finished."""
    slow = _WhenSlow(lambda: _record(events, stream, 0, e.RunAccepted(
        organization=cmd.organization, run={**run, "status": Status.CREATING.value}).caused_by(cmd)))
    try:
        finished = await executor.run(cmd.organization, function, run)
    finally:
        slow.cancel()
    version = 1 if await slow.recorded() else 0
    answer = await _record(events, stream, version,
                           e.RunFinished(organization=cmd.organization, run=finished).caused_by(cmd))
    _log_run(answer["run"], cmd)
    return answer


async def _claim(cmd: c.ExecuteFunction, events: EventLog, executors: Executors, stream: str,
                 run: dict) -> tuple[bool, dict, int]:
    """Record the run as accepted by this process: (True, accepted, version after) when this
    delivery runs it; (False, the run as recorded, 0) when it is finished or a live process runs it.
    A run whose executor is gone is taken over as the next attempt."""
    await executors.start()  # our lock again, should the database session have been replaced
    version, attempt = 0, 1
    while True:
        claimed = {**run, "executor": executors.instance, "attempt": attempt}
        event = e.RunAccepted(organization=cmd.organization, run=claimed).caused_by(cmd)
        try:
            position = await events.append(stream, version, [event])
        except ConcurrencyConflict:
            recorded = await events.read_stream(stream)
            last = _run(recorded[-1])
            if last["status"] in FINISHED or await executors.alive(last):
                return False, {"run": last, "position": recorded[-1].position}, 0
            version, attempt = len(recorded), int(last.get("attempt") or 1) + 1
            log.warning("run taken over: its executor is gone", run=run["name"], attempt=attempt,
                        executor=last.get("executor"))
            continue
        executors.running.add(run["name"])
        return True, {"run": claimed, "position": position}, version + 1


async def _outcome(cmd: c.ExecuteFunction, events: EventLog, executor: Executor, executors: Executors,
                   stream: str, function: dict | None) -> dict:
    """For a blocking delivery of a run a live process runs: its outcome, once recorded; the run
    itself, should that process die meanwhile."""
    while True:
        await asyncio.sleep(OUTCOME_POLL_SECONDS)
        recorded = await events.read_stream(stream)
        last = _run(recorded[-1])
        if last["status"] in FINISHED:
            return {"run": last, "position": recorded[-1].position}
        if not await executors.alive(last):
            claimed, accepted, version = await _claim(cmd, events, executors, stream, last)
            if not claimed:
                continue
            return await _finish(cmd, events, executor, executors, stream, accepted["run"], function, version)


class _WhenSlow:
    """Records a run as accepted (CREATING) once it has run for SLOW_RUN_SECONDS, so that it can be
    followed while it runs; a run that ends sooner is recorded once, finished. A timer rather than
    a task to wait on: most runs end in milliseconds, and the timer costs them nothing."""

    def __init__(self, record: Callable[[], Awaitable[dict]]):
        self._record = record
        self._accepted: asyncio.Task | None = None
        self._timer = asyncio.get_running_loop().call_later(SLOW_RUN_SECONDS, self._fire)

    def _fire(self) -> None:
        self._accepted = asyncio.ensure_future(self._record())

    def cancel(self) -> None:
        self._timer.cancel()

    async def recorded(self) -> bool:
        """True when the acceptance was recorded (waiting for it to be, if it is under way)."""
        if self._accepted is None:
            return False
        await self._accepted
        return True


async def _refuse(cmd: c.ExecuteFunction, events: EventLog, stream: str, refusal: DispatchError) -> dict:
    """A caller waiting gets the refusal; a run already answered 202 (or nobody waits for) is
    recorded as failed, unless another delivery of it recorded it first."""
    if cmd.run.get("blocking") or (cmd.record_acceptance and not cmd.once):
        raise refusal
    if cmd.once and (recorded := await events.read_stream(stream)):
        return {"run": _run(recorded[-1]), "position": recorded[-1].position}
    return await _record(events, stream, 0, _refused(cmd, refusal))


async def _finished(events: EventLog, stream: str) -> dict | None:
    """The run as an earlier delivery recorded it, when that delivery finished it."""
    recorded = await events.read_stream(stream)
    if recorded and _run(recorded[-1])["status"] in FINISHED:
        return {"run": _run(recorded[-1]), "position": recorded[-1].position}
    return None


def _ids(function: dict | None) -> dict:
    return {} if function is None else {"functionId": function["id"], "faasId": function["faasId"]}


async def _finish(cmd: c.ExecuteFunction, events: EventLog, executor: Executor, executors: Executors, stream: str,
                  run: dict, function: dict | None, version: int) -> dict:
    """Run a claimed run on the function found READY when the command was handled, or, for
    an event's run, once the deploy under way ends; every failure ends in the run record
    (Executor.run records it), none escapes."""
    try:
        if function is None:
            try:
                function = await _deployed(executor, cmd)
            except DispatchError as refusal:
                answer = await _record(events, stream, version, _refused(cmd, refusal))
                _log_run(answer["run"], cmd)
                return answer
            run = {**run, **_ids(function)}
        finished = await executor.run(cmd.organization, function, run)
        answer = await _record(events, stream, version,
                               e.RunFinished(organization=cmd.organization, run=finished).caused_by(cmd))
    finally:
        executors.running.discard(run["name"])
    _log_run(answer["run"], cmd)
    return answer


async def _deployed(executor: Executor, cmd: c.ExecuteFunction, wait: float = DEPLOY_WAIT_SECONDS) -> dict:
    """The function of an event-triggered run; a deploy under way is waited for (bounded): a
    function and its subscription are often created together, and nobody would retry the event."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            return await executor.ready_function(cmd.organization, cmd.run["functionName"])
        except NotReady as refusal:
            if refusal.function_status not in DEPLOYING or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.25)


def _refused(cmd: c.ExecuteFunction, refusal: DispatchError) -> e.RunFinished:
    """An accepted run whose function was deleted or stopped being READY before it ran."""
    now = time.time_ns() // 1_000_000
    stamp = now // 1000
    run = {**cmd.run, "status": Status.ERROR.value, "output": None, "executedTime": stamp, "finishedTime": stamp,
           "modifiedTime": stamp, "startedAt": None, "finishedAt": instant(now), "durationMs": None,
           "error": {"type": "SystemError", "message": refusal.message, "stacktrace": []},
           "reason": [f"error running function: {cmd.run['functionName']}: {refusal.message}"]}
    return e.RunFinished(organization=cmd.organization, run=run).caused_by(cmd)


async def _record(events: EventLog, stream: str, version: int, event: e.RunEvent) -> dict:
    """Append a run's event. When an earlier delivery of the same command got there first (a
    redelivery after a crash), answer with the run it recorded if that run is finished or this
    is the acceptance; otherwise record the finish after what is there."""
    while True:
        try:
            return {"run": event.run, "position": await events.append(stream, version, [event])}
        except ConcurrencyConflict:
            recorded = await events.read_stream(stream)
            last = recorded[-1]
            if _run(last)["status"] in FINISHED or isinstance(event, e.RunAccepted):
                return {"run": _run(last), "position": last.position, "by": recorded[0].event.causation_id}
            version = len(recorded)


def _run(recorded: Recorded) -> dict:
    return cast(e.RunEvent, recorded.event).run  # a Run stream holds run events only


def _log_run(run: dict, cmd: c.Command) -> None:
    log.info("run", run=run["name"], function=run["functionName"], status=run["status"],
             error=(run.get("error") or {}).get("type"), correlation_id=cmd.correlation_id)


def register(bus: MessageBus, events: EventLog, executor: Executor, executors: Executors) -> None:
    bus.handle(c.ExecuteFunction, partial(execute_function, events=events, executor=executor, executors=executors,
                                          claims=bus.durable))
