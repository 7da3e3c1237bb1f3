"""Traces as an operator's collector receives them: the real server processes export with the
OpenTelemetry SDK's OTLP exporters, configured only by OTEL_* variables, to a receiver in the test
(tests/otlp.py), over HTTP/protobuf and over gRPC; and the log lines carry the trace and run ids."""
import json
import os

import pytest

from tests.otlp import Receiver

from .cluster import seeded_cluster
from .conftest import PYTHON_IMAGE, Server

pytestmark = pytest.mark.e2e

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
EVENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
EVENT_TRACEPARENT = f"00-{EVENT_TRACE}-b7ad6b7169203331-01"

HELLO = "def handle(ctx, payload):\n    return {'hello': payload.get('name'), 'traceparent': ctx.get('traceparent')}\n"
SEEN = "def handle(ctx, payload):\n    return ctx.get('event')\n"
SEED = PYTHON_IMAGE + """---
kind: Function
name: hello
image: py
sourcePath: hello.py
---
kind: Function
name: seen
image: py
sourcePath: seen.py
---
kind: Subscription
name: seen-orders
eventType: order.placed
function: seen
"""


def _server(tmp_path, monkeypatch, receiver: Receiver) -> Server:
    for name, value in receiver.environment().items():
        monkeypatch.setenv(name, value)
    (tmp_path / "hello.py").write_text(HELLO)
    (tmp_path / "seen.py").write_text(SEEN)
    (tmp_path / "seed.yaml").write_text(SEED)
    server = Server(tmp_path / "data").start()
    created = server.cli("create", "-f", "seed.yaml", "-w", str(tmp_path), "--wait")
    assert created.returncode == 0, created.stderr
    return server


def _trace(spans, trace_id):
    return [span for span in spans if span.trace_id == trace_id]


def _names(spans) -> set[str]:
    return {span.name for span in spans}


def _parent(spans, child):
    return next((span for span in spans if span.span_id == child.parent_span_id), None)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_run_continues_the_callers_trace_from_the_gateway_to_the_worker_and_the_append(
        tmp_path, monkeypatch, protocol):
    receiver = Receiver(protocol).start()
    server = _server(tmp_path, monkeypatch, receiver)
    try:
        answer = server.http("POST", "/v1/runs?functionName=hello", {"blocking": True, "input": {"name": "Ann"}},
                             headers={"traceparent": TRACEPARENT})
        assert answer.status == 200, answer.body
        run = answer.json()
        wanted = {"POST /v1/runs", "process ExecuteFunction", "run hello", "invoke", "append Run"}
        spans = _trace(receiver.wait_for(lambda s: wanted <= _names(_trace(s, CALLER_TRACE))), CALLER_TRACE)
    finally:
        server.stop()
        receiver.stop()

    assert wanted <= _names(spans), sorted(_names(spans))
    by_name = {span.name: span for span in spans}
    server_span = by_name["POST /v1/runs"]
    assert (server_span.kind, server_span.parent_span_id) == ("SERVER", CALLER_SPAN)
    assert server_span.attributes["http.response.status_code"] == 200
    assert server_span.service == "dispatch"
    consumer = by_name["process ExecuteFunction"]
    assert consumer.kind == "CONSUMER" and _parent(spans, consumer) is not None
    assert _parent(spans, by_name["run hello"]).name == "process ExecuteFunction"
    assert by_name["run hello"].attributes["dispatch.run.id"] == run["name"]
    assert _parent(spans, by_name["invoke"]).name == "run hello"
    assert by_name["append Run"].attributes["db.system.name"] == "sqlite"
    # the function itself was handed the run's context, inside the caller's trace
    assert run["output"]["traceparent"].split("-")[1] == CALLER_TRACE

    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    run_lines = [line for line in lines if line.get("event") == "run" and line.get("run") == run["name"]]
    assert run_lines and run_lines[0]["trace_id"] == CALLER_TRACE
    request_lines = [line for line in lines if line.get("event") == "request" and line.get("path") == "/v1/runs"
                     and line.get("trace_id") == CALLER_TRACE]
    assert request_lines


def test_an_events_runs_continue_the_trace_its_traceparent_extension_names(tmp_path, monkeypatch):
    receiver = Receiver().start()
    server = _server(tmp_path, monkeypatch, receiver)
    try:
        with_context = {"specversion": "1.0", "id": "o-1", "source": "shop", "type": "order.placed",
                        "traceparent": EVENT_TRACEPARENT, "data": {"n": 1}}
        without = {**with_context, "id": "o-2"}
        del without["traceparent"]
        for event in (with_context, without):
            answer = server.http("POST", "/v1/event", raw=json.dumps(event).encode(),
                                 headers={"Content-Type": "application/cloudevents+json"})
            assert answer.status == 200, answer.body
        runs = _finished_runs(server, "seen", 2)
        spans = _trace(receiver.wait_for(lambda s: "run seen" in _names(_trace(s, EVENT_TRACE))), EVENT_TRACE)
    finally:
        server.stop()
        receiver.stop()

    assert {"process EmitEvent", "process ExecuteFunction", "run seen"} <= _names(spans), sorted(_names(spans))
    emitted = next(span for span in spans if span.name == "process EmitEvent")
    assert emitted.parent_span_id == "b7ad6b7169203331"
    seen = {run["output"]["id"]: run["output"] for run in runs}
    assert seen["o-1"]["traceparent"] == EVENT_TRACEPARENT  # as its producer sent it
    # the event that came without one was given the context of the request that emitted it
    given = seen["o-2"]["traceparent"].split("-")
    assert len(given) == 4 and given[1] not in (EVENT_TRACE, "0" * 32)


def _finished_runs(server: Server, function: str, count: int) -> list[dict]:
    import time
    deadline = time.monotonic() + 60
    while True:
        runs = server.http("GET", f"/v1/runs?functionName={function}").json()
        finished = [run for run in runs if run["status"] in ("READY", "ERROR")]
        if len(finished) >= count or time.monotonic() > deadline:
            assert [run["status"] for run in finished] == ["READY"] * count, runs
            return finished
        time.sleep(0.2)


def test_without_otel_variables_nothing_is_traced_and_lines_carry_no_trace_ids(tmp_path, monkeypatch):
    receiver = Receiver().start()
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    (tmp_path / "hello.py").write_text(HELLO)
    (tmp_path / "seed.yaml").write_text(SEED.split("---\nkind: Function\nname: seen")[0])
    server = Server(tmp_path / "data").start()
    try:
        assert server.cli("create", "-f", "seed.yaml", "-w", str(tmp_path), "--wait").returncode == 0
        answer = server.http("POST", "/v1/runs?functionName=hello", {"blocking": True, "input": {}},
                             headers={"traceparent": TRACEPARENT})
        assert answer.status == 200 and answer.json()["output"]["traceparent"] is None
    finally:
        server.stop()
        receiver.stop()
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    assert lines and not any("trace_id" in line for line in lines)
    assert '"tracing":false' in server.log.read_text().replace(" ", "")


def test_a_trace_crosses_rabbitmq_from_the_gateway_process_to_a_handler_process(tmp_path, monkeypatch):
    receiver = Receiver("grpc").start()
    for name, value in receiver.environment().items():
        monkeypatch.setenv(name, value)
    try:
        with seeded_cluster(tmp_path, {"hello.py": HELLO}, PYTHON_IMAGE + "---\nkind: Function\nname: hello\n"
                            "image: py\nsourcePath: hello.py\n", ("/v1/function/hello",)) as cluster:
            answer = cluster.gateway.http("POST", "/v1/runs?functionName=hello",
                                          {"blocking": True, "input": {"name": "Bo"}},
                                          headers={"traceparent": TRACEPARENT})
            assert answer.status == 200, answer.body
            wanted = {"POST /v1/runs", "process ExecuteFunction", "run hello", "append Run"}
            spans = _trace(receiver.wait_for(lambda s: wanted <= _names(_trace(s, CALLER_TRACE))), CALLER_TRACE)
    finally:
        receiver.stop()
    assert wanted <= _names(spans), sorted(_names(spans))
    by_name = {span.name: span for span in spans}
    assert by_name["POST /v1/runs"].service == "dispatch-gateway"
    assert by_name["process ExecuteFunction"].service == "dispatch-handlers"
    assert by_name["process ExecuteFunction"].attributes["messaging.system"] == "rabbitmq"
    assert by_name["append Run"].attributes["db.system.name"] == "postgresql"
