"""A function's processes and threads past its limit, told as such.

The kernel refuses a fork or a thread past RLIMIT_NPROC with EAGAIN, which Python shows as
"Resource temporarily unavailable" or "can't start new thread". Once `install(limit)` ran, the ways
a function starts a process or a thread (os.fork, subprocess, os.posix_spawn, threading) raise
ProcessLimit instead, still a BlockingIOError (or ThreadLimit, a RuntimeError) for code that
catches those, whose message names the limit. `exceeded()` then tells the worker to go: the
processes it left may still be forking.

A process forked by the function that returns into the function server is not the worker:
`stay_worker()` ends it, so that it never answers a call or reads the next request.
"""
import errno
import os

_limit: int | None = None
_exceeded = False
_worker = os.getpid()


def message(limit: int) -> str:
    """dispatch.drivers.ports.processes_message, which a function's container does not have."""
    return f"Function exceeded its process limit of {limit} (processes and threads)"


class ProcessLimit(BlockingIOError):
    def __str__(self) -> str:
        return str(self.strerror)  # always given: see _refused


class ThreadLimit(RuntimeError):
    pass


def install(limit: int | None) -> None:
    global _limit, _worker
    _worker = os.getpid()
    if not limit or _limit is not None:
        return
    _limit = limit
    import _posixsubprocess
    import _thread
    import subprocess
    import threading

    os.fork = _refused(os.fork)
    for name in ("posix_spawn", "posix_spawnp", "forkpty"):
        if hasattr(os, name):
            setattr(os, name, _refused(getattr(os, name)))
    # The private names the standard library calls through, which typeshed leaves out.
    _posixsubprocess.fork_exec = subprocess._fork_exec = _refused(  # type: ignore[attr-defined]
        _posixsubprocess.fork_exec)
    threading._start_new_thread = _thread.start_new_thread = _thread.start_new = _refused(  # type: ignore[attr-defined]
        _thread.start_new_thread)


def _refused(start):
    def starting(*args, **kwargs):
        global _exceeded
        try:
            return start(*args, **kwargs)
        except BlockingIOError as exc:
            if exc.errno != errno.EAGAIN:
                raise
            _exceeded = True
            raise ProcessLimit(errno.EAGAIN, message(_limit)) from None
        except RuntimeError as exc:
            if "can't start new thread" not in str(exc):
                raise
            _exceeded = True
            raise ThreadLimit(message(_limit)) from None

    starting.__wrapped__ = start
    return starting


def exceeded() -> bool:
    return _exceeded


def stay_worker() -> None:
    if os.getpid() != _worker:
        os._exit(0)
