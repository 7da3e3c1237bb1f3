"""Request bodies: every JSON one decoded by one strict decoder (schemas/jsontext) within the
server's bounds, and off the event loop when it is large.

A JSON body that is too deep, holds a string that is not Unicode or is not JSON at all is a 400
saying where; one longer than max_json_bytes is a 413.

Bodies past IN_THREAD_BYTES are parsed on a thread, with the cyclic garbage collector paused: the
checks around the parser (depth, Unicode, where a problem is) then leave the event loop free, and
the parser, which holds the GIL for as long as it builds the value, builds it three to five times
faster without the collections its millions of new objects would trigger (10 MiB of small arrays:
about 0.15 s instead of 0.55 s, during which the loop waits). Nothing is collected meanwhile that
reference counting would not free anyway; the collector runs again once the last large body is
parsed."""
import asyncio
import gc
import threading
from typing import Any, Callable, TypeVar

from aiohttp import web

from dispatch.errors import Rejected, TooLarge
from dispatch.schemas import jsontext

from .context import SETTINGS

IN_THREAD_BYTES = 64 * 1024
T = TypeVar("T")


def loads(request: web.Request, body: bytes, not_json: str | None = None, what: str = "request body") -> Any:
    """The JSON value of `body`. `not_json`: the message of a body that is no JSON at all, where
    Dispatch's own wording is kept (`Bad Request: Invalid Payload`)."""
    settings = request.app[SETTINGS]
    try:
        return jsontext.decode(body, settings.max_json_depth, settings.max_json_bytes)
    except jsontext.TooLarge as error:
        raise TooLarge(f"{what} {error} (max_json_bytes)") from None
    except jsontext.NotJSON as error:
        raise Rejected(not_json or f"{what} {error}") from None
    except jsontext.BadJSON as error:
        raise Rejected(f"{what} {error}" if not_json is None else f"{not_json}: {what} {error}") from None


def json_bounds(request: web.Request) -> dict[str, int]:
    """The bounds `loads` applies, for the parsers that take them (CloudEvents' binary mode)."""
    settings = request.app[SETTINGS]
    return {"max_depth": settings.max_json_depth, "max_bytes": settings.max_json_bytes}


async def off_loop(body: bytes, parse: Callable[..., T], *args: Any) -> T:
    """`parse(*args)`, on a thread with the collector paused when `body` is large."""
    if len(body) > IN_THREAD_BYTES:
        return await asyncio.to_thread(_collector.paused, parse, *args)
    return parse(*args)


class _Collector:
    """Pauses the cyclic garbage collector while any large body is parsed, on whichever thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsing = 0
        self._was_enabled = False

    def paused(self, parse: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._parsing == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._parsing += 1
        try:
            return parse(*args)
        finally:
            with self._lock:
                self._parsing -= 1
                if self._parsing == 0 and self._was_enabled:
                    gc.enable()


_collector = _Collector()


async def read_json(request: web.Request, default: Any = None, not_json: str | None = None) -> Any:
    """The request's JSON body; `default` for an empty one (None: an empty body is refused)."""
    body = await request.read()
    if not body.strip():
        if default is None:
            raise Rejected("request body is empty; a JSON object is required")
        return default
    return await off_loop(body, loads, request, body, not_json)
