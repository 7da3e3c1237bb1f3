"""JSON encoding on the hot path: run records, envelopes, log lines and answers are encoded once
or more per run, and the standard library's encoder costs ten times what orjson does.

Only encoding: orjson reads an integer beyond 64 bits as a float, which would change a user's
payload, so reading stays with the standard library. A value orjson refuses to encode (such an
integer, a key that is not a string) is encoded by the standard library instead, with the same
result a reader sees."""
import json
from typing import Any, Callable

import orjson


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact JSON, UTF-8; `default` turns what JSON has no type for into what it has."""
    try:
        return orjson.dumps(value, default=default)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=default).encode()


def dumps_text(value: Any, default: Callable[[Any], Any] | None = None, **_: Any) -> str:
    """As `dumps`, as text (the signature aiohttp's and structlog's `dumps` hooks call)."""
    return dumps(value, default).decode()
