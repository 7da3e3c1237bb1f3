"""Events as a user drives them: `dispatch create subscription`, `dispatch emit`, CloudEvents 1.0
posted by the `cloudevents` SDK, and `dispatch get runs`, against a real embedded server."""
import json
import re
import time

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from .conftest import PYTHON_IMAGE, Server

pytestmark = pytest.mark.e2e

ECHO = """def handle(context, payload):
    return {"payload": payload, "event": context.get("event"), "secrets": context["secrets"]}
"""
SEED = PYTHON_IMAGE + """---
kind: Secret
name: sub-key
secrets: {token: s3cret}
---
kind: Function
name: echo
image: py
sourcePath: echo.py
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("events")
    (work / "echo.py").write_text(ECHO)
    (work / "seed.yaml").write_text(SEED)
    running = Server(work / "data", seed=work / "seed.yaml").start()
    try:
        running.wait_status("/v1/function/echo")
        yield running
    finally:
        running.stop()


def runs_of(server: Server, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = server.cli("get", "runs", "echo", "-o", "json")
        runs = [r for r in json.loads(shown.stdout or "[]") if r["status"] in ("READY", "ERROR")]
        if len(runs) >= count:
            return runs
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} runs of echo: {shown.stdout[:500]}")


def test_a_subscription_created_with_the_cli_runs_its_function_for_each_emitted_event(server):
    created = server.cli("create", "subscription", "echo", "--event-type", "user.created", "--secret", "sub-key")
    assert created.returncode == 0, created.stderr
    name = re.fullmatch(r"created subscription: ([a-z]+-[a-z]+-\d{6})\n", created.stdout).group(1)
    assert server.wait_status(f"/v1/event/subscriptions/{name}")["status"] == "READY"
    listed = server.cli("get", "subscriptions").stdout
    assert re.search(rf"{name}\s+\|\s+user.created\s+\|\s+echo\s+\|\s+READY", listed), listed

    emitted = server.cli("emit", "user.created", "--payload", '{"name": "Jon"}', "--event-id", "e-1")
    assert emitted.returncode == 0 and emitted.stdout == "event emitted\n", emitted.stderr
    [run] = runs_of(server, 1)
    assert run["status"] == "READY" and run["input"] == {"name": "Jon"}
    event = run["output"]["event"]
    assert (event["eventType"], event["eventID"], event["source"], event["data"]) == (
        "user.created", "e-1", "dispatch", None)
    assert run["output"]["secrets"] == {"token": "s3cret"}

    for mode in (ce_http.to_structured, ce_http.to_binary):
        cloud_event = CloudEvent(attributes={"type": "user.created", "source": "/sdk", "id": mode.__name__,
                                             "datacontenttype": "application/json"}, data={"name": mode.__name__})
        message = mode(cloud_event, JSONFormat())
        answer = server.http("POST", "/v1/event/", raw=message.body, headers=message.headers)
        assert answer.status == 200, answer.body
    runs = runs_of(server, 3)
    assert {r["input"]["name"] for r in runs} == {"Jon", "to_structured", "to_binary"}

    deleted = server.cli("delete", "subscription", name)
    assert deleted.returncode == 0 and f"Deleted subscription: {name}" in deleted.stdout
    deadline = time.monotonic() + 10
    while server.http("GET", f"/v1/event/subscriptions/{name}").status != 404:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    server.cli("emit", "user.created", "--payload", '{"name": "late"}')
    time.sleep(1)
    assert len(json.loads(server.cli("get", "runs", "echo", "-o", "json").stdout)) == 3


def test_emit_sends_file_data_and_refuses_an_invalid_event_with_the_reason(server, tmp_path):
    assert server.cli("create", "subscription", "echo", "--event-type", "blob.put", "--name", "blobs").returncode == 0
    server.wait_status("/v1/event/subscriptions/blobs")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\xff\x10")
    before = len(json.loads(server.cli("get", "runs", "echo", "-o", "json").stdout))
    assert server.cli("emit", "blob.put", "--data-from-file", str(blob)).returncode == 0
    runs = runs_of(server, before + 1)
    newest = max(runs, key=lambda r: (r["executedTime"], r["input"] == "AP8Q"))
    assert newest["input"] == "AP8Q" and newest["event"]["contentType"] == "application/octet-stream"

    refused = server.cli("emit", "not a type")
    assert refused.returncode == 1
    assert refused.stderr.startswith("[Code: 400] Error validating event: eventType in body should match")
