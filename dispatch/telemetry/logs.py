"""Structured logs: one JSON line per event on standard output, with its level, UTC time, the
trace and span ids of the span it was written in (tracing on), and the fields bound for the work
under way (a run's id). Libraries that log with the standard library (aio-pika, aiormq, asyncpg,
aiohttp) write the same lines.

A line is rendered to bytes and written in one call."""
import contextlib
import contextvars
import datetime as dt
import logging
from typing import Any, Iterator, MutableMapping

import structlog

from dispatch.schemas.wirejson import dumps

from . import tracing

_BOUND: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("dispatch_log_fields", default=None)
_LEVELS = {"warn": "warning", "exception": "error"}


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Every line written within the block (in this task and those it starts) carries `fields`."""
    token = _BOUND.set({**(_BOUND.get() or {}), **fields})
    try:
        yield
    finally:
        _BOUND.reset(token)


def render(logger: Any, method: str, event: MutableMapping[str, Any]) -> bytes:
    """One processor doing what add_log_level, TimeStamper(fmt="iso", utc=True), format_exc_info
    and JSONRenderer do in turn, with the same line: two lines are written per run."""
    event["level"] = _LEVELS.get(method, method)
    event["timestamp"] = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if fields := _BOUND.get():
        for name, value in fields.items():
            event.setdefault(name, value)
    tracing.log_ids(logger, method, event)
    if event.get("exc_info"):
        event = structlog.processors.format_exc_info(logger, method, event)
    return dumps(event, default=repr)


class _ToStructlog(logging.Handler):
    """A standard-library record as a structured line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            structlog.get_logger().log(record.levelno, record.getMessage(), **fields)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def configure_logging(level: str = "info") -> None:
    number = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[render], wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.BytesLoggerFactory(), cache_logger_on_first_use=True)
    root = logging.getLogger()
    root.handlers = [handler for handler in root.handlers if not isinstance(handler, _ToStructlog)]
    root.addHandler(_ToStructlog())
    # Libraries say at INFO what only debugging needs (each connection opened, each channel).
    root.setLevel(number if number <= logging.DEBUG else max(number, logging.WARNING))
