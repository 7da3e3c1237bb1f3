"""Values the platform writes as JSON: what is wrong with one and where, and a copy of a record
that can always be written.

A run's record is written whatever its function returned or printed: a record that cannot be
encoded is never recorded, so its run stays unfinished and runs again. `problem` says what is
wrong with an output (it becomes the run's FunctionError); `recordable` is the last line, used
by every message carrying a run: strings that are not Unicode get replacement characters, NaN
and Infinity become null, values of no JSON type their text, and nesting past RECORD_DEPTH is
cut, which every encoder on the way (pydantic, orjson, json) can then write."""
import json
import math
import re
from typing import Any

import pydantic_core

from .jsontext import path_text, too_deep

RECORD_DEPTH = 200
"""Below pydantic's serialization limit (about 250 levels, the run's own fields included)."""
CUT = "(nested too deep to record)"
_SURROGATE = re.compile("[\ud800-\udfff]")
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False)


def problem(value: Any, max_depth: int) -> str | None:
    """None when `value` is JSON every store and bus can carry; else `<where>: <what>`. The
    encoder checks at C speed; only a value it refuses, or one deep enough to measure, is walked."""
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError):
        text = None
    if text is not None and not _SURROGATE.search(text) and (
            text.count("[") + text.count("{") <= max_depth or not too_deep(text, max_depth)):
        return None
    return _walk(value, max_depth) or "$: it cannot be encoded as JSON"


def _walk(value: Any, max_depth: int) -> str | None:
    stack: list[tuple[Any, list]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if what := _what(item):
            return f"{path_text(path)}: {what}"
        if isinstance(item, (dict, list, tuple)):
            if len(path) >= max_depth:
                return f"{path_text(path)}: it is nested more than {max_depth} levels deep"
            children = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            for key, child in reversed(children):
                if isinstance(item, dict) and (what := _key_problem(key)):
                    return f"{path_text([*path, str(key)])}: {what}"
                stack.append((child, [*path, key if isinstance(key, (str, int)) else str(key)]))
    return None


def _what(item: Any) -> str | None:
    if isinstance(item, str):
        lone = _SURROGATE.search(item)
        return f"the string is not valid Unicode: a lone surrogate (\\u{ord(lone.group()):04x})" if lone else None
    if item is None or isinstance(item, (bool, int, dict, list, tuple)):
        return None
    if isinstance(item, float):
        if math.isfinite(item):
            return None
        return f"{'NaN' if math.isnan(item) else 'Infinity' if item > 0 else '-Infinity'} is not a JSON number"
    return f"a {type(item).__name__} is not a JSON value"


def _key_problem(key: Any) -> str | None:
    if isinstance(key, str):
        lone = _SURROGATE.search(key)
        return f"the key is not valid Unicode: a lone surrogate (\\u{ord(lone.group()):04x})" if lone else None
    if key is None or isinstance(key, (bool, int, float)):
        return None
    return f"a key of type {type(key).__name__} is not a JSON key"


def recordable(value: Any) -> Any:
    """`value` when it encodes as it is (the common case, checked at C speed); else a repaired copy."""
    try:
        pydantic_core.to_json(value)
        return value
    except (ValueError, TypeError, RecursionError):
        return _repaired(value, 0)


def _repaired(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= RECORD_DEPTH:
        return CUT
    if isinstance(value, dict):
        return {_repaired(str(k) if not isinstance(k, str) else k, depth): _repaired(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_repaired(item, depth + 1) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return _repaired(str(value), depth)
