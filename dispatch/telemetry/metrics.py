"""The Prometheus metrics of one process, in a registry of its own: two platforms in one process
(tests) count apart. bootstrap() makes one; the adapters it wraps (metered.py) and the gateway's
middleware count into it; what is read rather than counted (lags, warm workers) is sampled when
scraped."""
import asyncio
from typing import Awaitable, Callable

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

log = structlog.get_logger("dispatch.telemetry")
CONTENT_TYPE = CONTENT_TYPE_LATEST
SAMPLE_SECONDS = 2.0
"""How long a scrape waits for a sampled value (the store's head, say) before answering without it."""
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
APPEND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BUILD_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
BUS_DIRECTIONS = ("published", "consumed", "dead_lettered")
BUS_KINDS = ("command", "event")

Sampler = Callable[[], Awaitable[None]]


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.runs = Counter("dispatch_runs_total", "Runs this process executed, by the status they ended in.",
                            ("organization", "function", "status"), registry=registry)
        self.run_seconds = Histogram("dispatch_run_duration_seconds", "How long runs took, input checks to output.",
                                     ("organization", "function"), buckets=RUN_BUCKETS, registry=registry)
        self.http_requests = Counter("dispatch_http_requests_total", "HTTP requests answered, by route template.",
                                     ("route", "method", "status"), registry=registry)
        self.http_seconds = Histogram("dispatch_http_request_duration_seconds", "How long HTTP requests took.",
                                      ("route", "method"), registry=registry)
        self.bus_messages = Counter("dispatch_bus_messages_total", "Messages through this process's bus.",
                                    ("direction", "kind"), registry=registry)
        self.appends = Counter("dispatch_event_log_appends_total", "Appends to the event log.", registry=registry)
        self.append_seconds = Histogram("dispatch_event_log_append_seconds", "How long appends to the event log "
                                        "took, waiting for their commit included.", buckets=APPEND_BUCKETS,
                                        registry=registry)
        self.projection_lag = Gauge("dispatch_projection_lag_events", "The log's head position minus the "
                                    "position a projection has tracked.", ("projection",), registry=registry)
        self.warm_workers = Gauge("dispatch_warm_workers", "Workers of a function started and ready in this process.",
                                  ("function",), registry=registry)
        self.cold_starts = Counter("dispatch_cold_starts_total", "Workers started because runs waited for one.",
                                   ("function",), registry=registry)
        self.builds = Histogram("dispatch_build_duration_seconds", "How long successful builds took: images, and "
                                "base images (pulled and checked).", ("kind",), buckets=BUILD_BUCKETS,
                                registry=registry)
        for direction in BUS_DIRECTIONS:  # every series exists from the start, so rate() sees the first one
            for kind in BUS_KINDS:
                self.bus_messages.labels(direction, kind)
        self._samplers: list[Sampler] = []

    def run_finished(self, organization: str, run: dict, seconds: float) -> None:
        function = run.get("functionName") or ""
        self.runs.labels(organization, function, run.get("status") or "").inc()
        self.run_seconds.labels(organization, function).observe(seconds)

    def cold_start(self, function: str) -> None:
        self.cold_starts.labels(function).inc()

    def sample(self, sampler: Sampler) -> None:
        """Have `sampler` set its gauges before each scrape."""
        self._samplers.append(sampler)

    async def exposition(self) -> bytes:
        """The text a scrape gets. A sampler that fails or is slow leaves its gauges as they were:
        the rest still answers."""
        for sampler in self._samplers:
            try:
                async with asyncio.timeout(SAMPLE_SECONDS):
                    await sampler()
            except Exception as error:  # noqa: BLE001 - a scrape must not fail for one gauge
                log.warning("metric not sampled", sampler=getattr(sampler, "__qualname__", repr(sampler)),
                            error=repr(error))
        return generate_latest(self.registry)
