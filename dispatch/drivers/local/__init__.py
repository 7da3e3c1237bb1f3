"""Functions as local processes: the embedded default runtime."""
from dispatch.drivers.local.runtime import LocalRuntime

__all__ = ["LocalRuntime"]
