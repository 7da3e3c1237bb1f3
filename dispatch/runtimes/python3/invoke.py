"""One call of a Python function, from the request body to the §3.2 response envelope.

A function may be `async def` (or return an awaitable): the call awaits it, on the worker's event
loop when calls run concurrently, else on a loop of its own.
"""
import inspect
import json
import traceback
from datetime import datetime, timezone
from typing import Any

from dispatch.runtimes.python3 import processes
from dispatch.runtimes.python3.capture import Capture, StreamRouter
from dispatch.runtimes.python3.loader import Function

# §3.6: bad input shows up in Python as ValueError or TypeError raised by the function.
INPUT_ERRORS = (ValueError, TypeError)
NO_LOGS = '{"stdout":[],"stderr":[]}'
_OUTPUT = json.JSONEncoder(allow_nan=False)  # json.dumps(allow_nan=False) would build one per call
max_output_bytes = 6 << 20
"""A call's JSON-encoded output: more is refused (output_message), so the platform never reads it."""


class OutOfMemory(Exception):
    """The function hit the worker's memory limit; `envelope` answers the call, then the worker ends."""

    def __init__(self, envelope: bytes):
        super().__init__("out of memory")
        self.envelope = envelope


def memory_message(memory_mb: int) -> str:
    return f"Function exceeded its memory limit of {memory_mb} MB"


def output_message(limit: int) -> str:
    """The text of dispatch.drivers.ports.output_message."""
    return f"Function output exceeded its limit of {limit} bytes"


def cpu_message(cpu_seconds: int) -> str:
    """The text of dispatch.drivers.ports.cpu_message, which a function's container does not have."""
    return f"Function exceeded its CPU time limit of {cpu_seconds} s"


class Request:
    """A decoded request body: the context given to the function, its payload, and the deadline if any."""

    def __init__(self, context: dict, payload: Any, ident: Any = None):
        self.context = context
        self.payload = payload
        self.ident = ident
        """The call's id in pipe mode, where several calls may be in flight."""
        self.deadline = _deadline(context.get("deadline"))

    @classmethod
    def parse(cls, body: bytes) -> "Request":
        """Raise ValueError with the reason when the body is not a JSON object."""
        request = json.loads(body)
        if not isinstance(request, dict):
            raise ValueError("the body must be a JSON object with context and payload")
        context = request.get("context") or {}
        if not isinstance(context, dict):
            raise ValueError("context must be a JSON object")
        return cls(context, request.get("payload"), request.get("id"))

    def seconds_left(self) -> float | None:
        if self.deadline is None:
            return None
        return (self.deadline - datetime.now(timezone.utc)).total_seconds()


def respond(function: Function, body: bytes, routers: tuple[StreamRouter, StreamRouter], limit: int) -> bytes:
    """Run the function for one request body and return the response envelope as JSON bytes."""
    try:
        request = Request.parse(body)
    except ValueError as exc:
        return failure("InputError", f"Invalid Input: {exc}")
    return call(function, request, routers, limit)


def call(function: Function, request: Request, routers: tuple[StreamRouter, StreamRouter], limit: int,
         shared: bool = False, memory_mb: int | None = None) -> bytes:
    """Run one call in this thread; `shared`: other calls run at the same time (see capture).
    With `memory_mb`, a MemoryError raises OutOfMemory instead of being the function's error."""
    left = request.seconds_left()
    if left is not None and left <= 0:
        return failure("FunctionError", "Did not invoke, already exceeded timeout")
    error, result = None, None
    with Capture(*routers, limit, shared) as logs:
        try:
            result = function(request.context, request.payload)
            if inspect.isawaitable(result):
                result = _run_awaitable(result)
        except MemoryError:
            if memory_mb is None:
                raise
            error = _memory_error(memory_mb)
        except Exception as exc:
            error = _describe(exc, _kind(exc))
        processes.stay_worker()
    return _finish(logs, error, result)


async def call_coroutine(function: Function, request: Request, routers: tuple[StreamRouter, StreamRouter],
                         limit: int, memory_mb: int | None = None) -> bytes:
    """Run one call of an `async def` function in the current task, alongside other calls."""
    left = request.seconds_left()
    if left is not None and left <= 0:
        return failure("FunctionError", "Did not invoke, already exceeded timeout")
    error, result = None, None
    with Capture(*routers, limit, shared=True) as logs:
        try:
            result = await function(request.context, request.payload)
        except MemoryError:
            if memory_mb is None:
                raise
            error = _memory_error(memory_mb)
        except Exception as exc:
            error = _describe(exc, _kind(exc))
        processes.stay_worker()
    return _finish(logs, error, result)


def _kind(exc: Exception) -> str:
    limited = isinstance(exc, (processes.ProcessLimit, processes.ThreadLimit))
    return "InputError" if isinstance(exc, INPUT_ERRORS) and not limited else "FunctionError"


def _finish(logs: Capture, error: dict | None, result: Any) -> bytes:
    output = "null"
    if error is None:
        try:
            output = _OUTPUT.encode(result)
        except (TypeError, ValueError) as exc:
            error = {"type": "FunctionError", "message": f"result is not JSON serialisable: {exc}", "stacktrace": []}
        if len(output) > max_output_bytes and len(output.encode()) > max_output_bytes:
            error = {"type": "FunctionError", "message": output_message(max_output_bytes), "stacktrace": []}
            output = "null"
    stdout, stderr = logs.stdout.lines(), logs.stderr.lines()
    logs_json = json.dumps({"stdout": stdout, "stderr": stderr}) if stdout or stderr else NO_LOGS
    out_of_memory = error is not None and error.pop("outOfMemory", False)
    envelope = _envelope(logs_json, "null" if error is None else json.dumps(error), output)
    if out_of_memory:
        raise OutOfMemory(envelope)
    return envelope


def _memory_error(memory_mb: int) -> dict:
    return {"type": "FunctionError", "message": memory_message(memory_mb), "stacktrace": [], "outOfMemory": True}


def _run_awaitable(awaitable) -> Any:
    import asyncio  # only functions written `async def` pay for it

    async def wait() -> Any:
        return await awaitable

    return asyncio.run(wait())


def failure(kind: str, message: str, logs_json: str = NO_LOGS) -> bytes:
    error = {"type": kind, "message": message, "stacktrace": []}
    return _envelope(logs_json, json.dumps(error), "null")


def _envelope(logs_json: str, error_json: str, payload_json: str) -> bytes:
    return f'{{"context":{{"logs":{logs_json},"error":{error_json}}},"payload":{payload_json}}}'.encode()


def _describe(exc: Exception, kind: str) -> dict:
    # Skip this module's own frame: the stack trace starts in the function.
    trace = exc.__traceback__  # set: the exception was raised and caught
    frames = traceback.format_exception(type(exc), exc, trace.tb_next if trace is not None else None)
    try:
        message = str(exc) or type(exc).__name__
    except Exception:  # a broken __str__ must not take the worker down
        message = type(exc).__name__
    return {"type": kind, "message": message, "stacktrace": "".join(frames).splitlines()}


def _deadline(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
