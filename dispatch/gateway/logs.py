"""The request log: one line per request, carrying its correlation id (and its trace id, tracing
on). The lines themselves are telemetry/logs.py's. The request line is written by
aiohttp's access-log hook, which runs once the response is on its way: a client waiting for its
answer never waits for the line about it."""
import logging
import time

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dispatch.schemas.envelope import new_id

from .context import CORRELATION_ID
from .telemetry import TRACE_ID

STARTED = web.RequestKey("started", float)

log = structlog.get_logger("dispatch.gateway")


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
        traced = {"trace_id": request[TRACE_ID]} if TRACE_ID in request else {}
        log.info("request", method=request.method, path=request.path, status=response.status, ms=ms,
                 correlation_id=request.get(CORRELATION_ID), **traced)


def app_runner(app: web.Application) -> web.AppRunner:
    """A runner for one of the gateway's apps that logs each request with RequestLine."""
    return web.AppRunner(app, access_log_class=RequestLine, access_log=logging.getLogger("dispatch.gateway"))
