"""Hostile input through real HTTP and the real CLI, on an embedded server and on a distributed
installation: bodies too deep, not Unicode or too long, archive bombs and unsafe archives as a
function's source, and function outputs no record can hold. Each is refused with a message
saying what and where, creates nothing, and leaves the server answering."""
import base64
import contextlib
import gzip
import io
import json
import os
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tally import Tally

from .cluster import seeded_cluster
from .conftest import PYTHON_IMAGE, Server

pytestmark = pytest.mark.e2e

MAX_JSON_BYTES = 8 << 20  # above the bombs below (base64 of a few MB), below max_payload_bytes
MAX_OUTPUT_BYTES = 6 * 1024 * 1024
FUNCTIONS = {
    "echo.py": "def handle(ctx, payload):\n    return payload\n",
    # calls the test's counter, so the test sees how many times it ran, then returns a lone surrogate
    "lone.py": "import urllib.request\n\ndef handle(ctx, payload):\n"
               "    urllib.request.urlopen(payload['counter'] + '/' + payload['key'], timeout=10).read()\n"
               "    return {'text': 'before \\ud800 after'}\n",
    "huge.js": "module.exports = (ctx, payload) => 'x'.repeat(payload.mb * 1024 * 1024);\n",
}
SEED = PYTHON_IMAGE + """---
kind: BaseImage
name: js-base
dockerUrl: dispatchframework/nodejs-base:0.0.12
language: nodejs
---
kind: Image
name: js
baseImageName: js-base
---
kind: Function
name: echo
image: py
sourcePath: echo.py
---
kind: Function
name: lone
image: py
sourcePath: lone.py
---
kind: Function
name: huge
image: js
sourcePath: huge.js
limits: {memoryMB: 2048}
---
kind: API
name: echo
function: echo
enabled: true
methods: [POST]
uris: [/echo]
"""
READY = ("/v1/function/echo", "/v1/function/lone", "/v1/function/huge", "/v1/api/echo")
USER_API = "/echo"
EVENT = '{"specversion": "1.0", "type": "user.created", "source": "/tests", "id": "e-1", "data": %s}'


@dataclass
class Installation:
    gateway: Server
    processes: list[Server]
    data_dir: Path


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def installation(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(request.param)
    config = work / "limits.yaml"
    config.write_text(f"max_json_bytes: {MAX_JSON_BYTES}\nmax_output_bytes: {MAX_OUTPUT_BYTES}\n")
    extra = ("--config-file", str(config))
    with contextlib.ExitStack() as stack:
        if request.param == "embedded":
            for name, text in FUNCTIONS.items():
                (work / name).write_text(text)
            (work / "seed.yaml").write_text(SEED)
            server = Server(work / "data", extra=extra).start()
            stack.callback(server.stop)
            created = server.cli("create", "-f", "seed.yaml", "-w", str(work))
            assert created.returncode == 0, created.stderr
            for path in READY:
                assert server.wait_status(path)["status"] == "READY", path
            yield Installation(server, [server], work / "data")
        else:
            cluster = stack.enter_context(seeded_cluster(work, FUNCTIONS, SEED, READY, extra))
            yield Installation(cluster.gateway, [cluster.gateway, *cluster.handlers], work / "data")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def send(installation: Installation, path: str, body: bytes, api: bool = False):
    return installation.gateway.http("POST", path, raw=body, api=api)


def echo_runs(installation: Installation) -> int:
    return len(installation.gateway.http("GET", "/v1/runs?functionName=echo").json())


def nothing_was_done(installation: Installation, echo_runs_before: int) -> bool:
    """No secret created, no run of echo made."""
    return (installation.gateway.http("GET", "/v1/secret/hostile").status == 404
            and echo_runs(installation) == echo_runs_before)


# Each JSON endpoint, and how its body holds a value `%s` a client chose.
BODIES = {
    "management API": ("/v1/secret", '{"name": "hostile", "secrets": {"k": %s}}', "$.secrets.k"),
    "runs": ("/v1/runs?functionName=echo", '{"blocking": true, "input": {"k": %s}}', "$.input.k"),
    "events": ("/v1/event", EVENT % '{"k": %s}', "$.data.k"),
    "user API": (USER_API, '{"k": %s}', "$.k"),
}


@pytest.mark.parametrize("endpoint", BODIES)
def test_a_body_nested_1000_deep_is_a_400_naming_where_it_goes_too_deep(installation, endpoint):
    path, template, where = BODIES[endpoint]
    before = echo_runs(installation)

    answer = send(installation, path, (template % nested(1000)).encode(), api=path == USER_API)

    assert answer.status == 400, answer.body
    assert f"nested more than 100 levels deep at {where}[0][0]" in answer.json()["message"]
    assert nothing_was_done(installation, before)


def test_a_function_whose_source_is_nested_1000_deep_is_refused_and_not_created(installation):
    body = '{"name": "deep-source", "image": "py", "source": %s}' % nested(1000)

    answer = send(installation, "/v1/function", body.encode())

    assert answer.status == 400
    assert "nested more than 100 levels deep at $.source[0]" in answer.json()["message"]
    assert installation.gateway.http("GET", "/v1/function/deep-source").status == 404


@pytest.mark.parametrize("endpoint", BODIES)
def test_an_escaped_lone_surrogate_is_a_400_naming_its_path_and_offset(installation, endpoint):
    path, template, where = BODIES[endpoint]
    escaped = "\\ud800"
    body = template % f'"{escaped}"'
    before = echo_runs(installation)

    answer = send(installation, path, body.encode(), api=path == USER_API)

    assert answer.status == 400, answer.body
    message = answer.json()["message"]
    assert f"not valid Unicode at {where}: a lone surrogate ({escaped}) at offset {body.index(escaped)}" in message
    assert nothing_was_done(installation, before)


@pytest.mark.parametrize("endpoint", BODIES)
def test_bytes_that_are_not_utf8_are_a_400_naming_their_path_and_offset(installation, endpoint):
    path, template, where = BODIES[endpoint]
    surrogate = b"\xed\xa0\x80"  # what "\ud800" would be in UTF-8, were it allowed
    body = (template % '"before-%s"').encode().replace(b"%s", surrogate)
    before = echo_runs(installation)

    answer = send(installation, path, body, api=path == USER_API)

    assert answer.status == 400, answer.body
    message = answer.json()["message"]
    assert f"not valid UTF-8 at {where}: invalid continuation byte at byte offset {body.index(surrogate)}" in message
    assert nothing_was_done(installation, before)


@pytest.mark.parametrize("endpoint", BODIES)
def test_a_json_body_longer_than_max_json_bytes_is_a_413_naming_the_setting(installation, endpoint):
    path, template, _ = BODIES[endpoint]
    body = (template % json.dumps("x" * MAX_JSON_BYTES)).encode()
    before = echo_runs(installation)

    answer = send(installation, path, body, api=path == USER_API)

    assert answer.status == 413, answer.body
    assert answer.json()["message"].endswith(
        f"is too large: {len(body)} bytes of JSON, more than the {MAX_JSON_BYTES} allowed (max_json_bytes)")
    assert nothing_was_done(installation, before)


# Archives as a function's source

def gzip_members(*members: tuple[bytes, int]) -> bytes:
    """Concatenated gzip members, each `data` repeated `times` once decompressed: a gzip stream of
    gigabytes of zeros, made from one compressed chunk without compressing gigabytes."""
    return b"".join(gzip.compress(data, 9) * times for data, times in members)


def header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


CHUNK = 64 << 20


def one_huge_entry_bomb(gib: int) -> bytes:
    """One entry of `gib` GiB of zeros."""
    return gzip_members((header("zeros.bin", gib << 30), 1), (bytes(CHUNK), (gib << 30) // CHUNK))


def many_entries_bomb(entries: int, entry_bytes: int = 1 << 20) -> bytes:
    """`entries` files of zeros, each header true to its size: no single header says the archive is too large."""
    zeros = gzip.compress(bytes(entry_bytes), 9)
    return b"".join(gzip.compress(header(f"zeros-{n}.bin", entry_bytes)) + zeros for n in range(entries))


def archive(*entries: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return buffer.getvalue()


def link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def create_function(installation: Installation, name: str, source: bytes):
    body = {"name": name, "image": "py", "handler": "hello.handle", "source": base64.b64encode(source).decode()}
    return installation.gateway.http("POST", "/v1/function", body)


def disk_used(folder: Path) -> int:
    """Bytes the files under `folder` take on disk; files that come and go meanwhile (journals) left out."""
    used = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                used += os.lstat(os.path.join(parent, name)).st_blocks * 512
    return used


def while_answering_healthz(installation: Installation, request) -> tuple[object, float]:
    """`request()` on a thread while /healthz is asked again and again: its answer, and the
    slowest /healthz meanwhile (seconds)."""
    done: list = []
    thread = threading.Thread(target=lambda: done.append(request()))
    slowest = 0.0
    thread.start()
    while True:
        started = time.monotonic()
        assert installation.gateway.http("GET", "/healthz").status == 200
        slowest = max(slowest, time.monotonic() - started)
        if not thread.is_alive():
            break
        time.sleep(0.01)
    thread.join()
    return done[0], slowest


@pytest.mark.parametrize("bomb, message", [
    (lambda: one_huge_entry_bomb(4), "entry 'zeros.bin' of 4096 MiB ends past that"),
    (lambda: many_entries_bomb(4096),
     "source archive is too large: it unpacks to more than 100 MiB (max_source_bytes)"),
], ids=["one-4-GiB-entry", "4096-entries-of-1-MiB"])
def test_a_gzip_bomb_as_source_is_a_413_creates_nothing_and_the_server_keeps_answering(installation, bomb, message):
    data = bomb()
    assert len(data) < 8 << 20  # a few MB sent, 4 GiB once unpacked
    before = disk_used(installation.data_dir)

    started = time.monotonic()
    answer, slowest_healthz = while_answering_healthz(installation, lambda: create_function(installation, "bomb", data))
    took = time.monotonic() - started

    assert answer.status == 413, answer.body
    assert message in answer.json()["message"]
    assert took < 20 and slowest_healthz < 1.0, (took, slowest_healthz)
    time.sleep(1)  # anything sent on would be settling now
    assert installation.gateway.http("GET", "/v1/function/bomb").status == 404
    assert installation.gateway.http("GET", "/v1/runs?functionName=bomb").json() in ([], None)
    assert disk_used(installation.data_dir) - before < 20 << 20


def test_a_source_of_more_entries_than_max_source_files_is_a_413(installation):
    entries = [(f"f{n}.py", b"") for n in range(10_001)]

    answer = create_function(installation, "crowded", archive(*entries))

    assert answer.status == 413, answer.body
    assert answer.json()["message"] == ("source archive is too large: it holds more than 10000 entries "
                                        "(max_source_files)")
    assert installation.gateway.http("GET", "/v1/function/crowded").status == 404


@pytest.mark.parametrize("entry, reason", [
    (("../evil.py", b"x = 1\n"), "entry '../evil.py' escapes the source folder"),
    (("/tmp/evil.py", b"x = 1\n"), "entry '/tmp/evil.py' has an absolute path"),
    (link("hello.py", "../../../../etc/passwd"), "link 'hello.py' -> '../../../../etc/passwd' points outside"),
], ids=["dot-dot", "absolute", "link-out"])
def test_an_unsafe_source_entry_is_a_400_and_the_function_is_not_created(installation, entry, reason):
    answer = create_function(installation, "unsafe", archive(("hello.py", b"def handle(c, p): return p\n"), entry))

    assert answer.status == 400, answer.body
    assert answer.json()["message"].startswith(f"invalid source archive: {reason}")
    assert installation.gateway.http("GET", "/v1/function/unsafe").status == 404


# Outputs no record can hold

@pytest.fixture(scope="module")
def counter():
    """Counts the calls a function makes: how many times it really ran, whatever the platform recorded."""
    with Tally() as tally:
        yield tally


UNRECORDABLE = ("the function's output cannot be recorded as JSON: at $.text: the string is not valid Unicode: "
                "a lone surrogate (\\ud800)")


def runs_with_key(installation: Installation, key: str) -> list[dict]:
    listed = installation.gateway.cli("get", "runs", "lone", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return [run for run in json.loads(listed.stdout) if (run.get("input") or {}).get("key") == key]


def settled_once(installation: Installation, counter: Tally, key: str) -> dict:
    """The one run of `key`, once a retry would have had time to come."""
    time.sleep(3)
    runs = runs_with_key(installation, key)
    assert len(runs) == 1 and counter.counts()[key] == 1, (runs, counter.counts())
    return runs[0]


def test_a_blocking_run_returning_a_lone_surrogate_is_recorded_once_as_a_function_error(installation, counter):
    key = f"blocking-{installation.data_dir.parent.name}"

    done = installation.gateway.cli("exec", "lone", "--input", json.dumps({"counter": counter.url, "key": key}),
                                    "--wait")

    assert done.returncode == 1  # a failed run fails the command
    run = json.loads(done.stdout)  # and prints the run as it was recorded
    assert run["status"] == "ERROR" and run["output"] is None
    assert run["error"]["type"] == "FunctionError" and run["error"]["message"] == UNRECORDABLE
    recorded = settled_once(installation, counter, key)
    assert recorded["name"] == run["name"] and recorded["status"] == "ERROR"


def test_an_async_run_returning_a_lone_surrogate_is_recorded_once_as_a_function_error(installation, counter):
    key = f"async-{installation.data_dir.parent.name}"
    body = {"input": {"counter": counter.url, "key": key}}
    accepted = installation.gateway.http("POST", "/v1/runs?functionName=lone", body)
    assert accepted.status == 202

    run = installation.gateway.wait_status(f"/v1/runs/{accepted.json()['name']}", timeout=60)

    assert run["status"] == "ERROR" and run["error"]["type"] == "FunctionError"
    assert run["error"]["message"] == UNRECORDABLE
    assert settled_once(installation, counter, key)["status"] == "ERROR"


def peak_rss(process: Server) -> int:
    """The process's largest resident set so far, in bytes (VmHWM)."""
    status = Path(f"/proc/{process.process.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024


def test_a_nodejs_output_past_max_output_bytes_is_a_function_error_and_server_memory_stays_bounded(installation):
    before = [peak_rss(process) for process in installation.processes]

    done = installation.gateway.cli("exec", "huge", "--input", '{"mb": 200}', "--wait", timeout=120)

    run = json.loads(done.stdout)
    assert run["status"] == "ERROR" and run["output"] is None
    assert run["error"] == {"type": "FunctionError", "stacktrace": [],
                            "message": f"Function output exceeded its limit of {MAX_OUTPUT_BYTES} bytes"}
    grown = [peak_rss(process) - peak for process, peak in zip(installation.processes, before, strict=True)]
    assert max(grown) < 64 << 20, grown  # the 200 MB output never reached the platform's memory
