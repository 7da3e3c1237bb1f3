"""The requests bench/hostile.py mixes: normal runs of a Python function that tells a TCP counter of
each execution, and hostile ones, each with the answer it must get."""
import base64
import gzip
import io
import json
import tarfile
from dataclasses import dataclass, field
from typing import Callable

from harness import source_of

ECHO = """import socket
def handle(context, payload):
    with socket.create_connection(("127.0.0.1", {port}), timeout=30) as counter:
        counter.sendall(payload["mark"].encode() + b"\\n")
        counter.shutdown(socket.SHUT_WR)
        counter.recv(16)
    return payload
"""
BIG_OUTPUT = "def handle(context, payload):\n    return 'x' * (50 << 20)\n"
FORKS = """import os, time
def handle(context, payload):
    children = []
    for _ in range(1000):
        pid = os.fork()
        if pid == 0:
            time.sleep(0.5)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return len(children)
"""
SLEEPS = "import time\ndef handle(context, payload):\n    time.sleep(10)\n    return 'woke'\n"
SLEEPS_TIMEOUT_MS = 500
FUNCTIONS = {  # name: (file, code, extra fields of the function)
    "bigout": ("bigout.py", BIG_OUTPUT, {}),
    "forks": ("forks.py", FORKS, {"timeout": 60_000, "limits": {"processes": 1100}}),
    "forks-limited": ("forks.py", FORKS, {"timeout": 60_000}),  # the server's default process limit (64)
    "sleeps": ("sleeps.py", SLEEPS, {"timeout": SLEEPS_TIMEOUT_MS}),
}
OVERSIZE_BYTES = 11 << 20  # past the server's max_payload_bytes (10 MiB)


def functions(counter_port: int) -> dict[str, dict]:
    """The function bodies to create, `echo` (the normal one) first."""
    made = {"echo": {"source": source_of("echo.py", ECHO.format(port=counter_port))}}
    for name, (file, code, extra) in FUNCTIONS.items():
        made[name] = {"source": source_of(file, code), **extra}
    return {name: {"name": name, "image": "python3", **body} for name, body in made.items()}


@dataclass
class Case:
    """One kind of request: `weight` of the mix; `expected(status, body)` says whether the answer is right."""

    weight: int
    path: str
    expected: Callable[[int, object], bool]
    bodies: list[bytes] = field(default_factory=list)
    """Sent in turn; empty for the normal runs, whose body carries a fresh mark."""


def _run_error(kind: str, words: str) -> Callable[[int, object], bool]:
    def expected(status: int, body: object) -> bool:
        error = isinstance(body, dict) and body.get("error") or {}
        return status == 200 and error.get("type") == kind and words in error.get("message", "")
    return expected


def _refused(*statuses: int) -> Callable[[int, object], bool]:
    return lambda status, body: status in statuses


def _run(input: object) -> bytes:
    return json.dumps({"blocking": True, "input": input}).encode()


def hostile_cases() -> dict[str, Case]:
    deep = b'{"blocking": true, "input": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    return {
        "blocking run": Case(40, "/v1/runs?functionName=echo", lambda s, b: s == 200),
        "async run": Case(40, "/v1/runs?functionName=echo", lambda s, b: s == 202),
        "1000-deep JSON": Case(4, "/v1/runs?functionName=echo", _refused(400), [deep]),
        "lone surrogate": Case(4, "/v1/runs?functionName=echo", _refused(400),
                               [b'{"blocking": true, "input": "\\ud800"}',
                                b'{"blocking": true, "input": "\xed\xa0\x80"}']),
        "oversize body": Case(2, "/v1/runs?functionName=echo", _refused(413),
                              [_run("x" * OVERSIZE_BYTES)]),
        "gzip tar bomb source": Case(2, "/v1/function", _refused(413), tar_bombs()),
        "50 MB output": Case(2, "/v1/runs?functionName=bigout", _run_error("FunctionError", "output"), [_run({})]),
        "fork 1000 processes": Case(1, "/v1/runs?functionName=forks", lambda s, b: s == 200 and (
            isinstance(b, dict) and b.get("output") == 1000), [_run({})]),
        "fork past the limit": Case(1, "/v1/runs?functionName=forks-limited",
                                    _run_error("FunctionError", "process limit"), [_run({})]),
        "sleep past timeout": Case(3, "/v1/runs?functionName=sleeps", _run_error("FunctionError", "timeout"),
                                   [_run({})]),
    }


def _bomb(entries: int, entry_mib: int) -> str:
    """A gzip-compressed tar of `entries` files of zeros, written block by block (zeros compress ~1000:1)."""
    buffer, zeros = io.BytesIO(), bytes(1 << 20)
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as archive:
        for i in range(entries):
            info = tarfile.TarInfo(f"zeros{i}.py")
            info.size = entry_mib << 20
            archive.write(info.tobuf())
            for _ in range(entry_mib):
                archive.write(zeros)
        archive.write(bytes(2 * tarfile.BLOCKSIZE))  # the end of the archive
    return base64.b64encode(buffer.getvalue()).decode()


def tar_bombs() -> list[bytes]:
    """Function bodies whose source unpacks past max_source_bytes (100 MiB): one entry of 1 GiB
    (its header says so), and 20 entries of 8 MiB (the reader finds out after 100 MiB)."""
    return [json.dumps({"name": f"bomb{i}", "image": "python3", "source": _bomb(*shape)}).encode()
            for i, shape in enumerate([(1, 1 << 10), (20, 8)])]
