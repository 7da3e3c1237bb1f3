"""Telemetry, set up once per process by bootstrap(): Prometheus metrics in a registry of the
process's own (metrics.py), the ports wrapped to count what passes (metered.py), and the health
checks with the port that serves them (health.py)."""
