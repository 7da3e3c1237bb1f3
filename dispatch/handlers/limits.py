"""What each function may use: its own limits, else the server's defaults, never past the server's
caps. Every runtime gets the same numbers (DeploymentSpec), and a run that reaches one ends with
an error naming it."""
import math
from dataclasses import dataclass

from dispatch.settings import Settings


@dataclass(frozen=True)
class Limits:
    timeout_ms: int
    memory_mb: int
    cpu_seconds: int
    processes: int
    max_output_bytes: int
    max_log_bytes: int
    network: bool = True


def limits_of(function: dict, settings: Settings) -> Limits:
    declared = function.get("limits") or {}
    timeout = function.get("timeout")
    if timeout is None:
        seconds = settings.default_timeout_seconds
    elif timeout == 0:
        seconds = settings.max_timeout_seconds  # contract: 0 is no timeout; here, the most allowed
    else:
        seconds = timeout / 1000
    seconds = min(seconds, settings.max_timeout_seconds)
    cpu = declared.get("cpuSeconds") or math.ceil(seconds)
    return Limits(timeout_ms=int(seconds * 1000),
                  memory_mb=min(declared.get("memoryMB") or settings.default_memory_mb, settings.max_memory_mb),
                  cpu_seconds=min(cpu, settings.max_cpu_seconds),
                  processes=min(declared.get("processes") or settings.default_processes, settings.max_processes),
                  max_output_bytes=settings.max_output_bytes, max_log_bytes=settings.max_log_bytes,
                  network=declared.get("network") is not False)
