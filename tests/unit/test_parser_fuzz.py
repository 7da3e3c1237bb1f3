"""The parsers of what comes from outside, given generated input: each either parses it or
refuses it with its own error type (never another exception), and does so quickly. Runs are
derandomized and short, so the suite stays deterministic and takes a few seconds."""
import gzip
import io
import json
import string
import tarfile
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from dispatch import yamlfiles
from dispatch.cli.manifest import ManifestError, load as load_manifest
from dispatch.errors import Rejected
from dispatch.schemas import cloudevents, jsontext, source

FUZZ = settings(derandomize=True, max_examples=300, deadline=timedelta(seconds=2), database=None,
                suppress_health_check=[HealthCheck.too_slow])
SMALL_CAPS = source.Caps(max_bytes=256 * 1024, max_files=30, max_path=200)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=40)
# Pieces JSON is made of, and the escapes and constants the decoder must refuse.
json_pieces = st.lists(st.sampled_from(
    ['[', ']', '{', '}', '"', ',', ':', '\\', '\\"', '\\u', 'd800', '\\ud800', '\\udc00', '\\ud83d\\ude00', '0',
     '-1.5e3', 'true', 'null', 'NaN', 'Infinity', ' ', '\n', '"k"', '"v"', '\x00', 'é', '\xff']),
    max_size=60).map("".join)
json_bytes = st.binary(max_size=400) | json_pieces.map(lambda text: text.encode("utf-8", "surrogatepass"))


def depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


def holds_surrogate(value) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, list):
        return any(map(holds_surrogate, value))
    if isinstance(value, dict):
        return any(holds_surrogate(k) or holds_surrogate(v) for k, v in value.items())
    return False


@FUZZ
@given(json_bytes)
def test_json_bodies_parse_as_json_does_or_are_refused_with_bad_json(data):
    try:
        value = jsontext.decode(data, max_depth=8)
    except jsontext.BadJSON:
        return
    assert value == json.loads(data) and depth(value) <= 8 and not holds_surrogate(value)


@FUZZ
@given(json_values, st.integers(min_value=1, max_value=6), st.booleans())
def test_json_values_within_the_depth_read_back_whole_and_deeper_ones_are_refused(value, max_depth, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    if depth(value) <= max_depth:
        assert jsontext.decode(text.encode(), max_depth=max_depth) == value
    else:
        with pytest.raises(jsontext.BadJSON, match=f"nested more than {max_depth} levels deep at"):
            jsontext.decode(text.encode(), max_depth=max_depth)


# CloudEvents

attribute_names = st.sampled_from(["specversion", "id", "source", "type", "time", "subject", "dataschema",
                                   "datacontenttype", "data_base64", "eventType", "cloudEventsVersion", "eventID",
                                   "eventTime", "schemaURL", "contentType", "extensions", "myext", "Bad-Name"])
attribute_values = (st.sampled_from(["1.0", "0.1", "e-1", "/src", "user.created", "2018-04-05T17:31:00Z", "not a time",
                                     "http://x/s", "", "YQ==", "application/json"]) | json_values)
content_types = st.none() | st.sampled_from(["application/json", "application/cloudevents+json", "text/plain",
                                             "text/json; charset=utf-8", "application/octet-stream", "image/png",
                                             "application/vnd.x+json", ""]) | st.text(max_size=20)


def json_ready(event: dict) -> None:
    """What a gateway does with an accepted event: publish its JSON form."""
    json.dumps(event.wire(), allow_nan=False)


@FUZZ
@given(st.dictionaries(attribute_names, attribute_values, max_size=8))
def test_structured_events_are_accepted_as_json_or_refused_with_invalid_event(body):
    try:
        event = cloudevents.parse_event(body)
    except cloudevents.InvalidEvent:
        return
    json_ready(event)


@FUZZ
@given(st.dictionaries(attribute_names, st.text(max_size=30) | st.binary(max_size=10), max_size=8), content_types,
       json_bytes, st.booleans())
def test_binary_mode_events_are_accepted_or_refused_with_invalid_event(attributes, content_type, body, guessed):
    convert = cloudevents.from_body if guessed else cloudevents.from_binary
    try:
        event = cloudevents.parse_event(convert(attributes, content_type, body, max_depth=8, max_bytes=300))
    except cloudevents.InvalidEvent:
        return
    json_ready(event)


# YAML

yaml_pieces = st.lists(st.sampled_from(
    ["a", ": ", "- ", "\n", "  ", "&x ", "*x", "&y ", "*y", "[", "]", "{", "}", ", ", "---\n", "'", '"', "!!binary ",
     "!!int ", "!!float ", "!!timestamp ", "!!set ", "!!python/object:os.system ", "2001-13-01", "1e999", "<<: ", "? ",
     "|\n", "#", "\t", "%YAML 1.1\n", "\x00", "é", "kind: Function\n", "name: f\n"]), max_size=50).map("".join)


@FUZZ
@given(yaml_pieces | st.text(max_size=200))
def test_yaml_text_is_read_or_refused_with_a_yaml_error(text):
    try:
        list(yamlfiles.load_all(text))
    except yaml.YAMLError:
        pass


names = st.text(string.ascii_letters + string.digits + "-./~", max_size=12)
manifest_documents = st.fixed_dictionaries(
    {"kind": st.sampled_from(["Function", "Image", "Secret", "API", "BaseImage", "Spaceship"]) | json_values},
    optional={"name": names | json_values, "image": names, "handler": names | json_values,
              "sourcePath": (st.sampled_from(["hello.py", "lib", "missing.py", "~nobody-here/x", "a" * 300])
                             | json_values),
              "runtimeDependencies": st.fixed_dictionaries({}, optional={"manifest": st.sampled_from(
                  ["@requirements.txt", "@missing.txt", "flask\n"]) | json_values}) | json_values,
              "secrets": json_values})


@settings(FUZZ, max_examples=150)
@given(st.lists(manifest_documents | json_values, max_size=4), st.sampled_from(["create", "update", "delete"]))
def test_manifests_are_loaded_or_refused_with_a_manifest_error(documents, verb):
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "hello.py").write_text("def handle(ctx, payload):\n    return payload\n")
        (work / "lib").mkdir()
        (work / "lib" / "words.txt").write_text("winterfell\n")
        (work / "requirements.txt").write_text("requests\n")
        (work / "manifest.yaml").write_text(yaml.safe_dump_all(documents))
        try:
            load_manifest("manifest.yaml", work, verb)
        except ManifestError:
            pass


# Function sources

def packed(entries: list[tuple[str, bytes, bytes]]) -> bytes:
    """A tar (not compressed) of (name, type, content or link target) entries."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, content in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = content.decode(errors="replace")
                tar.addfile(info)
            elif kind == tarfile.DIRTYPE:
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


entry_names = st.lists(st.sampled_from(["a", "b", "..", ".", "", "lib", "x.py", "/etc"]), min_size=1, max_size=4).map(
    "/".join)
entries = st.lists(st.tuples(entry_names, st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                                                           tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE]),
                             st.binary(max_size=600) | entry_names.map(str.encode)), min_size=1, max_size=6)
mutations = st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=6)


def mutated(data: bytes, changes: list[tuple[int, int]], cut: int | None) -> bytes:
    buffer = bytearray(data)
    for where, byte in changes:
        if buffer:
            buffer[where % len(buffer)] = byte
    return bytes(buffer[:cut])


def unpacked_safely(archive: bytes) -> None:
    """Extract into a folder of a folder: it either works or is Rejected, and nothing lands beside it."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        try:
            source.extract(archive, root / "src", SMALL_CAPS)
        except Rejected:
            pass
        assert [path.name for path in root.iterdir()] in ([], ["src"])


@FUZZ
@given(st.binary(max_size=2000) | st.binary(max_size=40).map(lambda tail: b"\x1f\x8b\x08\x00" + tail))
def test_random_bytes_as_a_source_archive_are_refused_with_rejected(data):
    with pytest.raises(Rejected):
        source.validate(data, SMALL_CAPS)


@FUZZ
@given(entries, mutations, st.none() | st.integers(min_value=0, max_value=6000), st.booleans())
def test_mutated_archives_are_read_or_rejected_and_never_write_outside_their_folder(listed, changes, cut, before_gzip):
    tar = packed(listed)
    archive = gzip.compress(mutated(tar, changes, cut)) if before_gzip else mutated(gzip.compress(tar), changes, cut)
    try:
        source.validate(archive, SMALL_CAPS)
    except Rejected:
        pass
    unpacked_safely(archive)


@FUZZ
@given(st.integers(min_value=1, max_value=64), st.integers(min_value=0, max_value=4 << 20))
def test_archives_past_the_caps_are_too_large_however_they_are_built(files, size):
    archive = gzip.compress(packed([(f"f{n}", tarfile.REGTYPE, bytes(size // files)) for n in range(files)]))
    try:
        names = source.validate(archive, SMALL_CAPS)
    except Rejected as refused:
        assert refused.status == 413 and str(refused).startswith("source archive is too large")
        return
    assert len(names) == files <= SMALL_CAPS.max_files and size <= SMALL_CAPS.max_bytes

