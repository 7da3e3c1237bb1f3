"""Whether a process is alive and ready, and the port that says so to Kubernetes and Prometheus:
`health_port` serves /healthz, /readyz and /metrics without authentication, on every role. The
management port answers /readyz too, and /metrics to callers allowed to read it
(dispatch/gateway/telemetry.py)."""
import asyncio
from typing import Any

from aiohttp import web

from dispatch.bus.ports import MessageBus
from dispatch.store.ports import EventLog, Views

from .metrics import CONTENT_TYPE, Metrics

CHECK_SECONDS = 2.0
"""A store that takes longer to answer is not ready."""


class Health:
    """Ready: the bus connected, the store answering, the read models (`read_models`, the
    projection every read depends on) within `max_lag` events of the log's head. Every tracked
    projection's lag is also a gauge, dispatch_projection_lag_events."""

    def __init__(self, bus: MessageBus, events: EventLog, views: Views, projections: tuple[str, ...],
                 read_models: str, max_lag: int, metrics: Metrics | None = None):
        self.bus, self.events, self.views = bus, events, views
        self.projections, self.read_models, self.max_lag = projections, read_models, max_lag
        if metrics is not None:
            gauge = metrics.projection_lag

            async def sample_projection_lag() -> None:
                for name, lag in (await self.lag()).items():
                    gauge.labels(name).set(lag)
            metrics.sample(sample_projection_lag)

    async def lag(self) -> dict[str, int]:
        """Events each projection has yet to take, by its tracked position."""
        head = await self.events.last_position()
        return {name: max(head - await self.views.tracking(name), 0) for name in self.projections}

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, str] = {}
        reachable = getattr(self.bus, "reachable", None)
        checks["bus"] = "ok" if reachable is None or reachable() else "the message bus is not connected"
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                lag = await self.lag()
        except Exception as error:  # noqa: BLE001 - whatever the store says, it is not ready
            checks["store"] = f"the store is unavailable: {str(error) or type(error).__name__}"
            lag = {}
        else:
            checks["store"] = "ok"
            behind = lag.get(self.read_models, 0)
            checks["projections"] = "ok" if behind <= self.max_lag else (
                f"the read models are {behind} events behind the log (at most {self.max_lag})")
        return {"ready": all(check == "ok" for check in checks.values()), "checks": checks, "lag": lag}


def readiness_response(readiness: dict[str, Any]) -> web.Response:
    return web.json_response(readiness, status=200 if readiness["ready"] else 503)


def metrics_response(text: bytes) -> web.Response:
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE})


HEALTH = web.AppKey("health", Health)
METRICS = web.AppKey("metrics", Metrics)


async def alive(request: web.Request) -> web.Response:
    """Answers while the process's event loop does: nothing else is asked, so a store outage
    makes the process unready, never restarted."""
    return web.json_response({"alive": True})


async def ready(request: web.Request) -> web.Response:
    return readiness_response(await request.app[HEALTH].readiness())


async def scrape(request: web.Request) -> web.Response:
    return metrics_response(await request.app[METRICS].exposition())


def health_app(health: Health, metrics: Metrics) -> web.Application:
    app = web.Application()
    app[HEALTH] = health
    app[METRICS] = metrics
    app.add_routes([web.get("/healthz", alive), web.get("/readyz", ready), web.get("/metrics", scrape)])
    return app
