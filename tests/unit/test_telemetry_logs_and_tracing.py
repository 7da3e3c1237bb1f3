"""What an operator reads: the JSON lines of libraries and of runs, their trace ids, and which
OTEL_* settings turn tracing on, with which exporter, or are refused with a reason."""
import io
import json
import logging

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dispatch.errors import Rejected
from dispatch.telemetry import logs, tracing


@pytest.fixture
def written():
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    lines = io.BytesIO()
    try:
        logs.configure_logging("info")
        structlog.configure(logger_factory=structlog.BytesLoggerFactory(file=lines))
        yield lambda: [json.loads(line) for line in lines.getvalue().splitlines()]
    finally:
        structlog.configure(**saved)
        root.handlers, root.level = handlers, level
        tracing.shutdown_tracing()


def test_a_librarys_standard_logging_becomes_the_same_json_lines_from_warning_up(written):
    logging.getLogger("aio_pika.robust_connection").info("connection opened")
    logging.getLogger("aio_pika.robust_connection").warning("connection to %s lost", "amqp://mq")
    try:
        raise ConnectionResetError("reset by peer")
    except ConnectionResetError:
        logging.getLogger("asyncpg.pool").exception("pool connection failed")

    lines = written()
    assert [(line["event"], line["level"], line["logger"]) for line in lines] == [
        ("connection to amqp://mq lost", "warning", "aio_pika.robust_connection"),
        ("pool connection failed", "error", "asyncpg.pool")]
    assert "ConnectionResetError: reset by peer" in lines[1]["exception"]
    assert all(line["timestamp"].endswith("Z") for line in lines)


def test_lines_written_while_a_run_runs_carry_its_id_and_later_ones_do_not(written):
    log = structlog.get_logger("dispatch.drivers")
    with logs.bound(run_id="run-1"):
        log.warning("worker restarted")
        with logs.bound(function="hello"):
            log.warning("slow start")
    log.warning("idle")

    assert [(line["event"], line.get("run_id"), line.get("function")) for line in written()] == [
        ("worker restarted", "run-1", None), ("slow start", "run-1", "hello"), ("idle", None, None)]


def test_lines_written_within_a_span_carry_its_trace_and_span_ids(written):
    spans = InMemorySpanExporter()
    assert tracing.configure_tracing("dispatch-test", [spans])
    log = structlog.get_logger("dispatch.runs")
    parent = tracing.context_of(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    with tracing.span("run hello", parent=parent) as span:
        log.info("run", run="r-1")
        handed_on = tracing.traceparent()
    log.info("after")
    tracing.shutdown_tracing()

    inside, outside = written()
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert handed_on == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{inside['span_id']}-01"
    assert "trace_id" not in outside
    [finished] = spans.get_finished_spans()
    assert finished.parent.span_id == 0x00f067aa0ba902b7


@pytest.mark.parametrize("environ, exporter", [
    ({}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"},
     "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
      "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"),
    ({"OTEL_TRACES_EXPORTER": "console"}, "opentelemetry.sdk.trace.export"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
])
def test_otel_variables_choose_the_exporter_and_without_them_nothing_is_traced(environ, exporter):
    found = tracing.exporters_from(environ)
    assert [type(each).__module__ for each in found] == ([] if exporter is None else [exporter])


@pytest.mark.parametrize("environ, reason", [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "'zipkin' is not an exporter Dispatch has; use otlp, console or none"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
     "OTEL_EXPORTER_OTLP_PROTOCOL=http/json: Dispatch exports traces over http/protobuf or grpc"),
])
def test_an_exporter_or_protocol_dispatch_lacks_is_refused_naming_what_works(environ, reason):
    with pytest.raises(Rejected) as refused:
        tracing.exporters_from(environ)
    assert reason in refused.value.message


def test_a_bad_or_absent_traceparent_starts_no_trace_of_its_own():
    assert tracing.context_of(traceparent="00-zz-00f067aa0ba902b7-01") is None
    assert tracing.context_of({"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}) is None
    assert tracing.context_of({}) is None
