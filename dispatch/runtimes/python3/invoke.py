"""One call of a Python function, from the request body to the §3.2 response envelope."""
import json
import traceback
from datetime import datetime, timezone
from typing import Any

from dispatch.runtimes.python3.capture import Capture, StreamRouter
from dispatch.runtimes.python3.loader import Function

# §3.6: bad input shows up in Python as ValueError or TypeError raised by the function.
INPUT_ERRORS = (ValueError, TypeError)
NO_LOGS = '{"stdout":[],"stderr":[]}'


class Request:
    """A decoded request body: the context given to the function, its payload, and the deadline if any."""

    def __init__(self, context: dict, payload: Any):
        self.context = context
        self.payload = payload
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
        return cls(context, request.get("payload"))

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


def call(function: Function, request: Request, routers: tuple[StreamRouter, StreamRouter], limit: int) -> bytes:
    left = request.seconds_left()
    if left is not None and left <= 0:
        return failure("FunctionError", "Did not invoke, already exceeded timeout")
    error = None
    with Capture(*routers, limit) as logs:
        try:
            result = function(request.context, request.payload)
        except Exception as exc:
            error = _describe(exc, "InputError" if isinstance(exc, INPUT_ERRORS) else "FunctionError")
    output = "null"
    if error is None:
        try:
            output = json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            error = {"type": "FunctionError", "message": f"result is not JSON serialisable: {exc}", "stacktrace": []}
    logs_json = json.dumps({"stdout": logs.stdout.lines(), "stderr": logs.stderr.lines()})
    return _envelope(logs_json, json.dumps(error), output)


def failure(kind: str, message: str, logs_json: str = NO_LOGS) -> bytes:
    error = {"type": kind, "message": message, "stacktrace": []}
    return _envelope(logs_json, json.dumps(error), "null")


def _envelope(logs_json: str, error_json: str, payload_json: str) -> bytes:
    return f'{{"context":{{"logs":{logs_json},"error":{error_json}}},"payload":{payload_json}}}'.encode()


def _describe(exc: Exception, kind: str) -> dict:
    # Skip this module's own frame: the stack trace starts in the function.
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)
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
