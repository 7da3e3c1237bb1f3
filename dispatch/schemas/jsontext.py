"""JSON text from outside the platform, read strictly and within bounds.

Every body a client sends (management API, runs, events, user APIs, webhook pushes) and the JSON
data of every CloudEvent is read here. Refused, saying where: more than `max_bytes`; bytes that
are not UTF-8 (nor UTF-16/32, which RFC 8259 detection finds); NaN and Infinity, which Python
would read and which come back as null; strings that are not Unicode (a lone surrogate, raw or
escaped as `\\ud800`: it has no UTF-8 form, so no record could hold it); nesting deeper than
`max_depth`. The depth is measured on the text before it is parsed, at the speed of `re` and
`str.replace`, so a deep document never reaches the parser's recursion; a long text is parsed a
piece at a time (jsonpieces), so that no call of the parser holds the GIL for long."""
import json
import re
from typing import Any

from . import jsonpieces

MAX_DEPTH = 100
MAX_BYTES = 10 * 1024 * 1024

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(set(range(128)) - set(b"[]{}"))
_RUNS = re.compile(rb"\[+|\]+")
_PASSES = 16
"""Passes before the runs are summed: after `k`, every run left is at least `k` long."""
_PIECE = re.compile(r'(?:"[^"\\]*(?:\\.[^"\\]*)*"|[^"\[\]{}]+)+|[\[\]{}]|"', re.DOTALL)
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
# From the start: every escape consumed whole (so `\\ud800`, a backslash and text, is no escape),
# surrogate pairs and other escapes skipped; stops before the first lone surrogate escape.
_UNTIL_LONE = re.compile(r"(?:[^\\]++|\\[^u]|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4}"
                         r"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})*+\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHOWN_STEPS = 8


class BadJSON(ValueError):
    """Why a JSON text is refused, saying where."""


class NotJSON(BadJSON):
    """The text is not JSON at all (a syntax error, NaN, Infinity)."""


class NotText(BadJSON):
    """The bytes are not text in the encoding JSON detection found (UTF-8, mostly)."""


class TooLarge(BadJSON):
    """The text is longer than its bound."""


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_not_json)


def decode(data: bytes | str, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """The value of a JSON text, or BadJSON (NotJSON, TooLarge) saying what is wrong and where, as
    a predicate: `is nested more than 100 levels deep at $.a[3]…`."""
    if len(data) > max_bytes:
        raise TooLarge(f"is too large: {len(data)} bytes of JSON, more than the {max_bytes} allowed")
    text = _text(data) if isinstance(data, (bytes, bytearray)) else _checked_text(data)
    if text.count("[") + text.count("{") > max_depth and too_deep(text, max_depth):
        raise BadJSON(_deep_at(text, max_depth))
    try:
        value = _parse(text)
    except json.JSONDecodeError as error:
        raise NotJSON(f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno} "
                      f"(offset {error.pos})") from None
    except ValueError as error:  # NaN, Infinity
        raise NotJSON(f"is not valid JSON: {error}") from None
    except RecursionError:  # unbalanced, so not measured above, and deeper than the parser goes
        raise BadJSON(_deep_at(text, max_depth)) from None
    if _ESCAPED_SURROGATE.search(text) and (lone := _UNTIL_LONE.match(text)):
        where = path_text(_lone_surrogate_at(value) or [])
        start = lone.end() - 4
        raise BadJSON(f"holds a string that is not valid Unicode at {where}: a lone surrogate "
                      f"({text[start:start + 6]}) at offset {start}")
    return value


def too_deep(text: str, max_depth: int) -> bool:
    """Whether the JSON text nests containers more than `max_depth` deep, measured on its
    brackets outside strings (`[` for `{` too): a few passes remove the innermost pairs, each
    taking a level off every container, and what is left, a few long runs of brackets, is
    summed run by run. Unbalanced brackets are not JSON, which the parser then says."""
    skeleton = _STRING.sub("", text).encode("ascii", "ignore").translate(_BRACKETS, _NOT_BRACKETS)
    passes = 0
    while skeleton and passes < min(max_depth, _PASSES):
        reduced = skeleton.replace(b"[]", b"")
        if reduced == skeleton:
            break
        skeleton, passes = reduced, passes + 1
    depth = deepest = 0
    for run in _RUNS.findall(skeleton):
        depth += len(run) if run[0] == 91 else -len(run)  # 91: "["
        deepest = max(deepest, depth)
    return passes + deepest > max_depth


def path_text(path: list[str | int]) -> str:
    """`$.a.b[3]`: its first steps, and `…` when it is longer."""
    steps = [f"[{step}]" if isinstance(step, int) else f".{step}" if _NAME.match(step) else
             f"[{json.dumps(step)}]" for step in path[:_SHOWN_STEPS]]
    return "$" + "".join(steps) + ("…" if len(path) > _SHOWN_STEPS else "")


def _lone_surrogate_at(value: Any) -> list[str | int] | None:
    """The path of the first string or key of a decoded value that holds a lone surrogate."""
    stack: list[tuple[Any, list]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return path
        elif isinstance(item, (dict, list)):
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in reversed(list(children)):
                if isinstance(key, str) and _SURROGATE.search(key):
                    return [*path, key]
                stack.append((child, [*path, key]))
    return None


def _parse(text: str) -> Any:
    if len(text) <= jsonpieces.PIECE:
        return _DECODER.decode(text)
    return jsonpieces.parse(_DECODER.scan_once, text)  # type: ignore[attr-defined]  # set in __init__; not in typeshed


def _text(data: bytes) -> str:
    encoding = json.detect_encoding(data)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        where = _undecodable_at(data, encoding)
        raise NotText(f"is not valid {error.encoding.upper()}{where}: {error.reason} at byte offset "
                      f"{error.start}") from None


def _undecodable_at(data: bytes, encoding: str) -> str:
    """` at $.a[3]`: the string holding the first bytes that are not text, when the rest is JSON.
    Those bytes are read as lone surrogates (surrogateescape), which are then looked for."""
    try:
        path = _lone_surrogate_at(_parse(data.decode(encoding, "surrogateescape")))
    except (ValueError, RecursionError):  # not JSON besides, or too deep: the offset alone says where
        return ""
    return "" if path is None else f" at {path_text(path)}"


def _checked_text(text: str) -> str:
    if raw := _SURROGATE.search(text):
        raise BadJSON(f"is not valid Unicode: a lone surrogate at offset {raw.start()}")
    return text


def _deep_at(text: str, max_depth: int) -> str:
    """`is nested more than N levels deep at $.a[3]…`: the path to the first container too deep.
    Brackets one at a time; what lies between two of them (strings, numbers, commas) as one
    piece, its commas counted and its last key found by `re`."""
    path: list[str | int] = []
    for token in _PIECE.finditer(text):
        piece = token.group()
        if piece in ("[", "{"):
            if len(path) >= max_depth:
                return f"is nested more than {max_depth} levels deep at {path_text(path)}"
            path.append(0 if piece == "[" else "")
        elif piece in ("]", "}"):
            if path:
                path.pop()
        elif path and isinstance(path[-1], int):
            path[-1] += _STRING.sub("", piece).count(",")
        elif path and (keys := _STRING.findall(piece)):
            path[-1] = _key(keys[-1])
    return f"is nested more than {max_depth} levels deep"


def _key(token: str) -> str:
    try:
        return str(json.loads(token))
    except ValueError:
        return token[1:-1]
