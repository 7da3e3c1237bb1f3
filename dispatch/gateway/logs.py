"""Structured logs: one line per request, carrying its correlation id.

A log line is rendered to bytes and written in one call. The request line is written by
aiohttp's access-log hook, which runs once the response is on its way: a client waiting for its
answer never waits for the line about it."""
import datetime as dt
import logging
import time
from typing import Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dispatch.schemas.envelope import new_id
from dispatch.schemas.wirejson import dumps

from .context import CORRELATION_ID

STARTED = web.RequestKey("started", float)

log = structlog.get_logger("dispatch.gateway")


def render(logger: Any, method: str, event: dict[str, Any]) -> bytes:
    """One processor doing what add_log_level, TimeStamper(fmt="iso", utc=True), format_exc_info
    and JSONRenderer do in turn, with the same line: two lines are written per run."""
    event["level"] = _LEVELS.get(method, method)
    event["timestamp"] = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if event.get("exc_info"):
        event = structlog.processors.format_exc_info(logger, method, event)
    return dumps(event, default=repr)


_LEVELS = {"warn": "warning", "exception": "error"}


def configure_logging(level: str = "info") -> None:
    structlog.configure(
        processors=[render],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.BytesLoggerFactory(), cache_logger_on_first_use=True)


@web.middleware
async def request_log(request: web.Request, handler):
    """Give the request its correlation id (the caller's X-Request-Id, else a new one), and the
    response the same X-Request-Id."""
    request[CORRELATION_ID] = request.headers.get("X-Request-Id") or new_id()
    request[STARTED] = time.perf_counter()
    response = await handler(request)
    response.headers["X-Request-Id"] = request[CORRELATION_ID]
    return response


class RequestLine(AbstractAccessLogger):
    """The line about a request, once its response was written."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, _: float) -> None:
        # aiohttp's own figure comes from the loop's clock, which ticks in milliseconds on uvloop
        started = request.get(STARTED)
        ms = None if started is None else round((time.perf_counter() - started) * 1000, 2)
        log.info("request", method=request.method, path=request.path, status=response.status, ms=ms,
                 correlation_id=request.get(CORRELATION_ID))


def app_runner(app: web.Application) -> web.AppRunner:
    """A runner for one of the gateway's apps that logs each request with RequestLine."""
    return web.AppRunner(app, access_log_class=RequestLine, access_log=logging.getLogger("dispatch.gateway"))
