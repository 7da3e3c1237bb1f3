"""Structured logs: one line per request, carrying its correlation id."""
import logging
import time

import structlog
from aiohttp import web

from dispatch.schemas.envelope import new_id
from dispatch.schemas.wirejson import dumps_text

from .context import CORRELATION_ID

log = structlog.get_logger("dispatch.gateway")


def configure_logging(level: str = "info") -> None:
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso"), structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(serializer=dumps_text)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True)


@web.middleware
async def request_log(request: web.Request, handler):
    request[CORRELATION_ID] = request.headers.get("X-Request-Id") or new_id()
    started = time.perf_counter()
    response = await handler(request)
    log.info("request", method=request.method, path=request.path, status=response.status,
             ms=round((time.perf_counter() - started) * 1000, 2), correlation_id=request[CORRELATION_ID])
    response.headers["X-Request-Id"] = request[CORRELATION_ID]
    return response
