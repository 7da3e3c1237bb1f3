"""A long JSON text parsed a piece at a time.

The C parser holds the GIL for as long as one call builds its value: 10 MiB of small arrays is a
few hundred milliseconds during which no other thread runs, the event loop included, wherever
the call is made. Here a container is first tried on a slice of the text just longer than its
neighbours were (at most PIECE); one that does not fit is taken apart in Python, its elements
parsed the same way. No single call then parses more than PIECE characters, except a string or
a number, which the parser copies at memory speed, and the threads waiting get their turn
between two calls. Errors are json's own, at the same positions."""
import re
from json import JSONDecodeError
from json.decoder import scanstring  # type: ignore[attr-defined]  # there at run time; typeshed omits it
from typing import Any, Callable

PIECE = 64 * 1024
_FIRST_TRY = 256
_WHITESPACE = re.compile(r"[ \t\n\r]*")
Scan = Callable[[str, int], tuple[Any, int]]


def parse(scan: Scan, text: str) -> Any:
    """As json.JSONDecoder.decode, whose `scan_once` is `scan`."""
    value, end = _value(scan, text, _skip(text, 0), 0)
    end = _skip(text, end)
    if end != len(text):
        raise JSONDecodeError("Extra data", text, end)
    return value


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    assert match is not None  # a starred pattern matches anywhere
    return match.end()


def _scan(scan: Scan, text: str, index: int) -> tuple[Any, int]:
    try:
        return scan(text, index)
    except StopIteration as stop:
        raise JSONDecodeError("Expecting value", text, stop.value) from None


def _value(scan: Scan, text: str, index: int, hint: int) -> tuple[Any, int]:
    """The value at `index` and where it ends; `hint`: how long the previous sibling was."""
    opening = text[index:index + 1]
    if opening not in ("[", "{"):
        return _scan(scan, text, index)
    size = min(max(4 * hint, _FIRST_TRY), PIECE)
    while True:
        if index + size >= len(text):
            return _scan(scan, text, index)  # the rest of the text is no longer than a piece
        try:
            value, end = scan(text[index:index + size], 0)
            return value, index + end
        except (JSONDecodeError, StopIteration):
            if size >= PIECE:
                break
            size = PIECE
    return _array(scan, text, index) if opening == "[" else _object(scan, text, index)


def _array(scan: Scan, text: str, index: int) -> tuple[list, int]:
    items: list = []
    index = _skip(text, index + 1)
    if text[index:index + 1] == "]":
        return items, index + 1
    hint = 0
    while True:
        start = index
        value, index = _value(scan, text, index, hint)
        hint = index - start
        items.append(value)
        index = _skip(text, index)
        following = text[index:index + 1]
        if following == "]":
            return items, index + 1
        if following != ",":
            raise JSONDecodeError("Expecting ',' delimiter", text, index)
        index = _skip(text, index + 1)


def _object(scan: Scan, text: str, index: int) -> tuple[dict, int]:
    pairs: dict = {}
    index = _skip(text, index + 1)
    if text[index:index + 1] == "}":
        return pairs, index + 1
    hint = 0
    while True:
        if text[index:index + 1] != '"':
            raise JSONDecodeError("Expecting property name enclosed in double quotes", text, index)
        key, index = scanstring(text, index + 1)
        index = _skip(text, index)
        if text[index:index + 1] != ":":
            raise JSONDecodeError("Expecting ':' delimiter", text, index)
        index = _skip(text, index + 1)
        start = index
        pairs[key], index = _value(scan, text, index, hint)
        hint = index - start
        index = _skip(text, index)
        following = text[index:index + 1]
        if following == "}":
            return pairs, index + 1
        if following != ",":
            raise JSONDecodeError("Expecting ',' delimiter", text, index)
        index = _skip(text, index + 1)
