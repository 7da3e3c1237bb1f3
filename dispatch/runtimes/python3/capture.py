"""Per-invocation capture of what a function prints, each stream capped at a byte budget.

`sys.stdout` and `sys.stderr` are replaced once, before the function's module is imported, by routers
that send writes to the running call's buffers and to the real streams between calls. Handles taken at
import time (a `logging.StreamHandler()`, `print(file=sys.stderr)` bound early) are therefore captured
too, and a thread that prints after the call returned cannot leak lines into the next call's logs.

When several calls run at once (a worker with concurrency above 1), each call's buffers live in a
context variable instead: an asyncio task or a thread serving one call sees only its own. Output of
threads the function starts itself then goes to the real streams, as they do not inherit the context.
"""
import io
import sys
import threading
from contextvars import ContextVar, Token

_CALL: ContextVar[tuple["CapturedLines", "CapturedLines"] | None] = ContextVar("dispatch_call_logs", default=None)


class CapturedLines:
    """Text written during one call; keeps the head up to `limit` bytes and counts what it dropped."""

    def __init__(self, limit: int):
        self._limit = limit
        self._room = limit
        self._parts: list[str] = []
        self._dropped = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
        with self._lock:
            if size <= self._room:
                self._parts.append(text)
                self._room -= size
            else:
                head = text.encode("utf-8", "replace")[: self._room].decode("utf-8", "ignore")
                self._parts.append(head)
                self._dropped += size - len(head.encode("utf-8", "replace"))
                self._room = 0
        return len(text)

    def text(self) -> str:
        return "".join(self._parts)

    def lines(self) -> list[str]:
        text = self.text()
        lines = text.split("\n") if text else []
        if lines and lines[-1] == "":
            lines.pop()
        if self._dropped:
            lines.append(f"... log truncated: {self._dropped} bytes over the {self._limit}-byte limit")
        return lines


class StreamRouter(io.TextIOBase):
    """Stands in for sys.stdout or sys.stderr: writes go to the running call's buffer, else to `real`."""

    def __init__(self, real, index: int = 0):
        super().__init__()
        self.real = real
        self.index = index
        self.target: CapturedLines | None = None

    def write(self, text: str) -> int:
        call = _CALL.get()
        target = self.target if call is None else call[self.index]
        if target is not None:
            return target.write(text)
        written = self.real.write(text)
        self.real.flush()
        return written

    def flush(self) -> None:
        if self.target is None and _CALL.get() is None:
            self.real.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.real.fileno()

    # Class attributes, not properties: typeshed has them as plain attributes of TextIOBase.
    encoding = "utf-8"
    errors = "replace"

    @property
    def buffer(self) -> "_BytesToRouter":
        return _BytesToRouter(self)


class _BytesToRouter(io.RawIOBase):
    """`sys.stdout.buffer` for code that writes bytes; decoded and routed like text."""

    def __init__(self, router: StreamRouter):
        super().__init__()
        self._router = router

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._router.write(bytes(data).decode("utf-8", "replace"))
        return len(data)


class Capture:
    """Routes both streams into fresh buffers for the duration of a `with` block."""

    def __init__(self, stdout: StreamRouter, stderr: StreamRouter, limit: int, shared: bool = False):
        """`shared`: other calls run at the same time, so the buffers go in the call's context."""
        self._routers = (stdout, stderr)
        self.stdout = CapturedLines(limit)
        self.stderr = CapturedLines(limit)
        self._shared = shared
        self._token: Token[tuple[CapturedLines, CapturedLines] | None] | None = None

    def __enter__(self) -> "Capture":
        if self._shared:
            self._token = _CALL.set((self.stdout, self.stderr))
        else:
            self._routers[0].target = self.stdout
            self._routers[1].target = self.stderr
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._shared:
            assert self._token is not None  # set on entering
            _CALL.reset(self._token)
        else:
            for router in self._routers:
                router.target = None
        if exc_type is not None:
            # The worker is going down (sys.exit, KeyboardInterrupt): hand the call's output to the real
            # streams so whoever supervises the process can still show it.
            self._routers[0].write(self.stdout.text())
            self._routers[1].write(self.stderr.text())


def install() -> tuple[StreamRouter, StreamRouter]:
    """Replace sys.stdout/sys.stderr by routers; call once, before importing the function."""
    stdout, stderr = StreamRouter(sys.stdout, 0), StreamRouter(sys.stderr, 1)
    sys.stdout, sys.stderr = stdout, stderr
    return stdout, stderr
