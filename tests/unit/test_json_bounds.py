"""JSON from outside read strictly and within bounds (schemas/jsontext), and function outputs
checked before they become a run's record (schemas/jsonvalues)."""
import json
import time

import pytest

from dispatch.schemas import jsonpieces, jsontext, jsonvalues


def refusal(data: str | bytes, **bounds) -> str:
    with pytest.raises(jsontext.BadJSON) as refused:
        jsontext.decode(data.encode() if isinstance(data, str) else data, **bounds)
    return str(refused.value)


def nested(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize("text, where", [
    (nested(101), "$[0][0][0][0][0][0][0][0]…"),
    ('{"a": [1, "x,y", {"b": 2}, %s]}' % nested(100), "$.a[3][0][0][0][0][0][0]…"),
    ('{"a b": {"c": %s}}' % ('{"d": ' * 99 + "1" + "}" * 99), '$["a b"].c.d.d.d.d.d.d…'),
])
def test_nesting_past_the_bound_is_refused_naming_the_path_to_the_first_container_too_deep(text, where):
    assert refusal(text) == f"is nested more than 100 levels deep at {where}"


def test_nesting_at_the_bound_is_accepted_and_one_more_level_is_not():
    assert jsontext.decode(nested(100)) == json.loads(nested(100))
    assert "nested more than 100 levels" in refusal(nested(101))
    assert jsontext.decode(nested(5), max_depth=5) == json.loads(nested(5))
    assert "nested more than 5 levels" in refusal(nested(6), max_depth=5)


@pytest.mark.parametrize("depth", [1000, 100_000, 1_000_000])
def test_a_document_nested_a_million_deep_is_refused_at_once_without_recursion(depth):
    started = time.monotonic()
    assert "nested more than 100 levels deep at $[0]" in refusal(nested(depth))
    assert "nested more than 100 levels deep" in refusal("[" * depth)  # unbalanced as well
    assert time.monotonic() - started < 2


def test_brackets_inside_strings_are_not_nesting():
    text = json.dumps({"k": "[" * 5000, "v": ["]" * 5000, "{\\\"[["]})
    assert jsontext.decode(text.encode()) == json.loads(text)


@pytest.mark.parametrize("text, where, escape, offset", [
    ('{"name": "\\ud800"}', "$.name", "\\ud800", 10),
    ('["ok", "\\udc00"]', "$[1]", "\\udc00", 8),
    ('{"k\\uD800": 1}', '$["k\\ud800"]', "\\uD800", 3),
    ('{"a": ["\\ud800\\u0041"]}', "$.a[0]", "\\ud800", 8),
])
def test_an_escaped_lone_surrogate_is_refused_naming_its_path_and_offset(text, where, escape, offset):
    assert refusal(text) == (f"holds a string that is not valid Unicode at {where}: a lone surrogate "
                             f"({escape}) at offset {offset}")


def test_surrogate_pairs_and_an_escaped_backslash_before_u_are_text():
    assert jsontext.decode(b'["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001F600", "\\ud800"]


@pytest.mark.parametrize("data, message", [
    (b'{"name": "\xed\xa0\x80"}', "is not valid UTF-8 at $.name: invalid continuation byte at byte offset 10"),
    (b'{"a": ["ok", {"k\xff": 1}]}', 'is not valid UTF-8 at $.a[1]["k\\udcff"]: invalid start byte at byte offset 16'),
    (b'[1, \xff]', "is not valid UTF-8: invalid start byte at byte offset 4"),
])
def test_bytes_that_are_not_utf8_are_refused_naming_the_string_that_holds_them(data, message):
    with pytest.raises(jsontext.NotText):
        jsontext.decode(data)
    assert refusal(data) == message


def test_utf16_text_is_read_as_json_detection_finds_it():
    assert jsontext.decode('{"a": "é"}'.encode("utf-16")) == {"a": "é"}


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_nan_and_infinity_are_not_json(text):
    with pytest.raises(jsontext.NotJSON, match="is not JSON"):
        jsontext.decode(text.encode())


def test_a_text_longer_than_max_bytes_is_too_large():
    with pytest.raises(jsontext.TooLarge) as refused:
        jsontext.decode(b'"' + b"x" * 2000 + b'"', max_bytes=1000)
    assert str(refused.value) == "is too large: 2002 bytes of JSON, more than the 1000 allowed"


def test_a_long_text_read_piece_by_piece_is_the_value_json_reads_and_fails_where_json_does():
    records = [{"id": n, "tags": ["a", "b"], "nested": {"k": [n, [n]]}, "text": "x" * (n % 300)} for n in range(3000)]
    text = json.dumps({"records": records, "huge": "y" * (3 * jsonpieces.PIECE)})
    assert len(text) > 10 * jsonpieces.PIECE
    assert jsontext.decode(text.encode()) == json.loads(text)
    middle = text.index('"nested"', len(text) // 2)
    broken = text[:middle] + "," + text[middle:]
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(broken)
    assert f"(offset {expected.value.pos})" in refusal(broken)


@pytest.mark.parametrize("value, problem", [
    ({"a": [1, float("nan")]}, "$.a[1]: NaN is not a JSON number"),
    ([float("-inf")], "$[0]: -Infinity is not a JSON number"),
    ({"text": "before \ud800 after"}, "$.text: the string is not valid Unicode: a lone surrogate (\\ud800)"),
    ({"k\udc80": 1}, '$["k\\udc80"]: the key is not valid Unicode: a lone surrogate (\\udc80)'),
    ({"a": {1, 2}}, "$.a: a set is not a JSON value"),
    ({"a": [1, 2.5, "é", None, True], "b": {}}, None),
])
def test_an_output_that_is_not_json_is_described_with_its_path(value, problem):
    assert jsonvalues.problem(value, max_depth=100) == problem


def test_an_output_nested_past_the_bound_is_described_where_it_goes_too_deep():
    deep: list = []
    for _ in range(150):
        deep = [deep]
    assert jsonvalues.problem({"a": deep}, max_depth=100) == (
        "$.a[0][0][0][0][0][0][0]…: it is nested more than 100 levels deep")
    assert jsonvalues.problem({"a": deep}, max_depth=200) is None


def test_a_record_that_cannot_be_encoded_is_repaired_so_it_can_be_written():
    repaired = jsonvalues.recordable({"a": "x\ud800", "b": float("inf"), "c": {1}, "d": b"\xff"})
    assert repaired == {"a": "x\ufffd", "b": None, "c": "{1}", "d": "\ufffd"}
    assert json.loads(json.dumps(repaired, allow_nan=False)) == repaired
    fine = {"a": [1, 2.5, "é"], "b": None}
    assert jsonvalues.recordable(fine) is fine
