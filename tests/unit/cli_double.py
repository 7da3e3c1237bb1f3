"""A stand-in Dispatch management API on a real local port, recording what the CLI sends.

It keeps resources in memory and answers with the contract's success codes and error bodies,
so CLI tests observe real HTTP traffic rather than mocked calls.
"""
import json
import os
import threading
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from typer.testing import CliRunner, Result

from dispatch.cli.main import app

LABELS = {
    "/v1/baseimage": "base image",
    "/v1/image": "image",
    "/v1/function": "function",
    "/v1/secret": "secret",
    "/v1/api": "api",
    "/v1/event/subscriptions": "subscription",
    "/v1/event/drivers": "event driver",
    "/v1/event/drivertypes": "event driver type",
    "/v1/iam/organization": "organization",
    "/v1/iam/policy": "policy",
    "/v1/iam/serviceaccount": "service account",
}
CREATED = {"/v1/baseimage": "INITIALIZED", "/v1/image": "INITIALIZED", "/v1/function": "INITIALIZED",
           "/v1/api": "CREATING", "/v1/event/subscriptions": "CREATING", "/v1/event/drivers": "CREATING"}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeDispatch:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    store: dict[str, dict[str, dict]] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    # (method, path) -> (status, body): answered instead of the normal behaviour.
    overrides: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    # path of one resource -> statuses returned by successive GETs (the last one repeats).
    statuses: dict[str, list[str]] = field(default_factory=dict)
    # path of one resource -> `reason` reported once it is in ERROR.
    reasons: dict[str, list[str]] = field(default_factory=dict)
    version: str = "0.2.0-test"
    # what GET /v1/audit pages through, by position
    audit: list[dict] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def sent(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]

    def answer(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        if (method, path) in self.overrides:
            return self.overrides[(method, path)]
        if path == "/v1/version":
            return 200, {"version": self.version, "commit": "abc"}
        if path.startswith("/v1/runs"):
            return self._runs(method, path, query, body)
        if path == "/v1/audit":
            return self._audit(query)
        collection, _, name = path.rpartition("/")
        if collection in LABELS:
            return self._one(method, collection, urllib.parse.unquote(name), body)
        if path in LABELS:
            return self._collection(method, path, body)
        return 404, {"code": 404, "message": f"no route {path}"}

    def _collection(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        items = self.store.setdefault(path, {})
        if method == "GET":
            return 200, list(items.values())
        if body["name"] in items:
            return 409, {"code": 409, "message": f"{LABELS[path]} {body['name']} already exists"}
        resource = {**body, "id": str(uuid.uuid4()), "createdTime": 1_700_000_000}
        if path in CREATED:
            resource["status"] = CREATED[path]
        resource.pop("source", None)
        items[body["name"]] = resource
        return (200 if path == "/v1/api" else 201), resource

    def _one(self, method: str, collection: str, name: str, body: Any) -> tuple[int, Any]:
        items = self.store.setdefault(collection, {})
        if name not in items:
            return 404, {"code": 404, "message": f"{LABELS[collection]} {name} not found"}
        if method == "GET":
            sequence = self.statuses.get(f"{collection}/{name}")
            if sequence:
                items[name]["status"] = sequence.pop(0) if len(sequence) > 1 else sequence[0]
            if items[name].get("status") == "ERROR":
                items[name]["reason"] = self.reasons.get(f"{collection}/{name}")
            return 200, items[name]
        if method == "PUT":
            items[name] = {**items[name], **body, "status": "UPDATING"}
            return (201 if collection == "/v1/secret" else 200), items[name]
        deleted = items.pop(name)
        return (204, None) if collection == "/v1/secret" else (200, {**deleted, "status": "DELETING"})

    def _audit(self, query: dict) -> tuple[int, Any]:
        after, limit = int((query.get("after") or ["0"])[0]), int((query.get("limit") or ["100"])[0])
        later = [e for e in self.audit if e["position"] > after]
        page = later[:limit]
        return 200, {"entries": page, "next": page[-1]["position"] if len(later) > limit else None}

    def _runs(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        function = (query.get("functionName") or [None])[0]
        if method == "POST":
            if function not in self.store.get("/v1/function", {}):
                return 404, {"code": 404, "message": f"function {function} not found"}
            run = {"name": str(uuid.uuid4()), "functionName": function, "input": body.get("input"),
                   "status": "READY" if body.get("blocking") else "INITIALIZED", "executedTime": 1_700_000_100}
            self.runs.append(run)
            return (200 if body.get("blocking") else 202), run
        runs = [r for r in self.runs if function is None or r["functionName"] == function]
        if path == "/v1/runs":
            since = int((query.get("since") or ["0"])[0])
            return 200, [r for r in runs if r.get("modifiedTime", r["executedTime"]) > since]
        wanted = [r for r in runs if r["name"] == path.rsplit("/", 1)[1]]
        if not wanted:
            return 404, {"code": 404, "message": f"function run {path.rsplit('/', 1)[1]} not found"}
        return 200, wanted[0]


def _handler(fake: FakeDispatch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            query = urllib.parse.parse_qs(parts.query)
            fake.requests.append(Recorded(self.command, parts.path, query, dict(self.headers), body))
            status, answer = fake.answer(self.command, parts.path, query, body)
            payload = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def start(fake: FakeDispatch) -> Callable[[], None]:
    """Serve `fake` on a free local port; answer a function that stops it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop


@dataclass
class Cli:
    """Runs `dispatch` against the double, with its own config file."""

    fake: FakeDispatch
    config: Path

    def __call__(self, *args: str, env: dict | None = None, target: bool = True, input: str | None = None) -> Result:
        """`input` is what the command reads on its standard input."""
        prefix = ["--config", str(self.config)]
        if target:
            prefix += ["--port", str(self.fake.port)]
        return CliRunner().invoke(app, [*prefix, *args], env=env, input=input)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDispatch]:
    for variable in list(os.environ):
        if variable.startswith("DISPATCH_"):
            monkeypatch.delenv(variable)
    double = FakeDispatch()
    stop = start(double)
    yield double
    stop()


@pytest.fixture
def cli(fake: FakeDispatch, tmp_path: Path) -> Cli:
    return Cli(fake, tmp_path / "config.json")
