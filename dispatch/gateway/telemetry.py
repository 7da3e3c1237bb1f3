"""The gateway's part of telemetry: every request counted by route template and, with tracing on,
a server span continuing the caller's `traceparent`; /readyz (open, like /healthz), and /metrics
for callers a global policy lets `get` `metrics`: label values name every organization's
functions. Prometheus scrapes the unauthenticated `health_port` instead."""
import asyncio
import time

from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from dispatch.iam.policy import global_grant
from dispatch.telemetry import tracing
from dispatch.telemetry.health import metrics_response, readiness_response
from dispatch.telemetry.metrics import Metrics

from .auth import AUTHORITY
from .context import ORGANIZATION, PRINCIPAL
from .resources import PLATFORM

ROUTE = web.RequestKey("route", str)
"""What the request's route is called when its path template says nothing (the user-API port's
catch-all): set by the view that knows."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "(unmatched)"
TRACE_ID = web.RequestKey("trace_id", str)
STATUS = web.RequestKey("status", int)


def traced() -> list:
    """The middleware tracing each request, when tracing is on (outermost: the span covers the rest)."""
    return [_trace] if tracing.enabled() else []


@web.middleware
async def _trace(request: web.Request, handler):
    attributes = {"http.request.method": request.method, "url.path": request.path, "url.scheme": request.scheme,
                  "http.route": _template(request)}
    if agent := request.headers.get("User-Agent"):
        attributes["user_agent.original"] = agent[:256]
    span = tracing.start_span(f"{request.method} {attributes['http.route']}", SpanKind.SERVER,
                              tracing.context_of(request.headers), attributes)
    with trace.use_span(span, end_on_exit=True):
        request[TRACE_ID] = format(span.get_span_context().trace_id, "032x")
        try:
            return await handler(request)
        finally:
            if request.get(ROUTE):
                span.update_name(f"{request.method} {request[ROUTE]}")
                span.set_attribute("http.route", request[ROUTE])
            status = request.get(STATUS, 500)  # as `measure`, within, counted it
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))


def measured(metrics: Metrics):
    """Counts and times each request by route template, method and status: never the raw path,
    so that a scan of random URLs adds no series."""
    requests, seconds = metrics.http_requests, metrics.http_seconds

    @web.middleware
    async def measure(request: web.Request, handler):
        started, status = time.perf_counter(), 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away first
            raise
        finally:
            request[STATUS] = status
            route = request.get(ROUTE) or _template(request)
            method = request.method if request.method in METHODS else "other"
            requests.labels(route, method, str(status)).inc()
            seconds.labels(route, method).observe(time.perf_counter() - started)
    return measure


def _template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


async def get_metrics(request: web.Request) -> web.Response:
    authority = request.app.get(AUTHORITY)
    if authority is not None:  # None: --skip-auth
        principal = request[PRINCIPAL]
        if not global_grant(principal, "metrics", "get", authority.directory.grants):
            reason = (f"{principal.subject} may not get metrics: they cover every organization, so only a global "
                      "policy grants them")
            return await authority.deny(request, principal, request[ORGANIZATION], "metrics", "get", reason)
    return metrics_response(await request.app[PLATFORM].metrics.exposition())


async def readyz(request: web.Request) -> web.Response:
    return readiness_response(await request.app[PLATFORM].health.readiness())


def routes() -> list[web.RouteDef]:
    return [web.get("/metrics", get_metrics), web.get("/readyz", readyz)]
