"""Reading what a worker writes: protocol lines on the response pipe, and the tail of stdout/stderr."""
import asyncio
from collections import deque
from typing import Callable

_TAIL_BYTES = 64 * 1024


class LineReader(asyncio.Protocol):
    """Splits the response pipe into lines: the first goes to whoever awaits `next_line()` (the
    ready line), the rest to the listener given to `listen()` (answers, matched by id). A line
    longer than `max_line` bytes is never held whole: the reader calls `overflowed` and stops."""

    def __init__(self, max_line: int | None = None):
        self._max_line = max_line
        self.overflowed: Callable[[], None] = lambda: None
        self._partial = bytearray()
        self._lines: deque[bytes] = deque()
        self._waiting: asyncio.Future | None = None
        self._listener: Callable[[bytes], None] | None = None
        self._closed = False
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if self._max_line and len(self._partial) + end - start > self._max_line:
                return self._overflow()
            if self._partial:
                self._partial += data[start:end]
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = data[start:end]
            self._deliver(line)
            start = end + 1
        if start < len(data):
            if self._max_line and len(self._partial) + len(data) - start > self._max_line:
                return self._overflow()
            self._partial += data[start:]

    def _overflow(self) -> None:
        self._partial.clear()
        self.overflowed()
        self.close()

    def eof_received(self) -> bool:
        self.fail_pending()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail_pending()

    def next_line(self) -> asyncio.Future:
        """A future for the next line; it fails with EOFError once the worker is gone."""
        answer = asyncio.get_running_loop().create_future()
        if self._lines:
            answer.set_result(self._lines.popleft())
        elif self._closed:
            answer.set_exception(EOFError())
        else:
            self._waiting = answer
        return answer

    def listen(self, listener: Callable[[bytes], None]) -> None:
        """From now on, hand every line to `listener`, starting with those already read."""
        self._listener = listener
        while self._lines:
            listener(self._lines.popleft())

    @property
    def closed(self) -> bool:
        return self._closed

    def fail_pending(self) -> None:
        self._closed = True
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_exception(EOFError())

    def close(self) -> None:
        self.fail_pending()
        if self._transport is not None:
            self._transport.close()

    def _deliver(self, line: bytes) -> None:
        if self._listener is not None:
            self._listener(line)
            return
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.done():
            waiting.set_result(line)
        else:
            self._lines.append(line)


class OutputTail:
    """The last bytes a worker wrote straight to stdout or stderr, outside the per-call capture."""

    def __init__(self):
        self._data = bytearray()

    async def follow(self, stream: asyncio.StreamReader) -> None:
        """Keep reading so the pipe never fills and blocks the worker."""
        while chunk := await stream.read(65536):
            self._data += chunk
            if len(self._data) > _TAIL_BYTES:
                del self._data[: len(self._data) - _TAIL_BYTES]

    def clear(self) -> None:
        if self._data:
            self._data.clear()

    def text(self) -> str:
        return self._data.decode("utf-8", "replace").strip()

    def lines(self) -> list[str]:
        text = self._data.decode("utf-8", "replace")
        return text.splitlines()
