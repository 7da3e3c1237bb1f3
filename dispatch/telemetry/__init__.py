"""Telemetry, set up once per process: Prometheus metrics in a registry of the process's own
(metrics.py) and the ports wrapped to count what passes (metered.py), by bootstrap(); traces,
configured by OTEL_* in the server's entry point (tracing.py) with the ports wrapped to carry and
record spans (traced.py); structured logs (logs.py); the health checks with the port that serves
them (health.py)."""
