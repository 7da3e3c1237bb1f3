"""Traces: OpenTelemetry spans from the gateway through the bus to the handler, the function's
worker and the event log's append, configured by the standard OTEL_* variables.

Tracing is on when OTEL_TRACES_EXPORTER names an exporter (`otlp`, `console`), or when an OTLP
endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and the exporter
is left to its default; OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turns it off. OTLP goes
over HTTP/protobuf or gRPC (OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL); the exporters, the batch
processor (OTEL_BSP_*), the sampler (OTEL_TRACES_SAMPLER) and the resource (OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES) read the rest of their variables themselves.

The context crosses the bus as a W3C `traceparent` in each message's envelope (set where the
message is created, so an event appended to the log carries the span that decided it) and, on
RabbitMQ, in the message's headers as well. Off, nothing is wrapped and nothing is measured."""
import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Mapping, MutableMapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dispatch.errors import Rejected

PROTOCOLS = ("http/protobuf", "grpc")
_W3C = TraceContextTextMapPropagator()


class _State:
    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None


def configure_tracing(service: str, exporters: list[SpanExporter] | None = None) -> bool:
    """Set this process's tracing up from OTEL_* (or with the `exporters` given): True when spans
    are exported. `service` is the service name unless OTEL_SERVICE_NAME or
    OTEL_RESOURCE_ATTRIBUTES give one."""
    exporters = exporters_from(os.environ) if exporters is None else exporters
    if not exporters:
        return False
    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named else {SERVICE_NAME: service}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    _State.provider, _State.tracer = provider, provider.get_tracer("dispatch")
    return True


def shutdown_tracing() -> None:
    """Export what is still buffered, then stop (at the end of the process)."""
    if _State.provider is not None:
        _State.provider.shutdown()
        _State.provider = _State.tracer = None


def enabled() -> bool:
    return _State.tracer is not None


def exporters_from(environ: Mapping[str, str]) -> list[SpanExporter]:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    chosen = environ.get("OTEL_TRACES_EXPORTER") or ("otlp" if endpoint else "none")
    exporters: list[SpanExporter] = []
    for name in (part.strip().lower() for part in chosen.split(",")):
        if name == "otlp":
            exporters.append(_otlp(environ))
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name not in ("none", ""):
            raise Rejected(f"OTEL_TRACES_EXPORTER={chosen}: {name!r} is not an exporter Dispatch has; "
                           "use otlp, console or none")
    return exporters


def _otlp(environ: Mapping[str, str]) -> SpanExporter:
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip().lower()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
        return Grpc()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http
        return Http()
    raise Rejected(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: Dispatch exports traces over "
                   f"{' or '.join(PROTOCOLS)}")


def span(name: str, kind: SpanKind = SpanKind.INTERNAL, parent: Context | None = None,
         attributes: dict[str, Any] | None = None,
         links: list[trace.Link] | None = None) -> AbstractContextManager[Span | None]:
    """A span current for the block (None, and nothing done, when tracing is off). `parent`:
    the context to continue instead of the current one."""
    if _State.tracer is None:
        return nullcontext()
    return _State.tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes, links=links)


def start_span(name: str, kind: SpanKind, parent: Context | None, attributes: dict[str, Any]) -> Span:
    """A span the caller ends itself (one that outlives the block that starts it); tracing is on."""
    assert _State.tracer is not None
    return _State.tracer.start_span(name, context=parent, kind=kind, attributes=attributes)


def traceparent() -> str | None:
    """The current span's context as a W3C traceparent; None with no span (or tracing off)."""
    if _State.tracer is None:
        return None
    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        return None
    # What TraceContextTextMapPropagator.inject writes, without its carrier and setter (per message)
    return f"00-{current.trace_id:032x}-{current.span_id:016x}-{current.trace_flags:02x}"


def event_traceparent(event: dict[str, Any]) -> str | None:
    """The context a CloudEvent's processing continues: its own `traceparent` extension (the
    context it was created in) when that is valid W3C trace context; else the current span's,
    which an event without one then carries (a 0.1 event: in its `extensions`) to the functions
    it runs."""
    if _State.tracer is None:
        return None
    extensions = event.get("extensions") if "specversion" not in event else event
    own = extensions.get("traceparent") if isinstance(extensions, dict) else None
    if isinstance(own, str) and context_of(traceparent=own) is not None:
        return own
    current = traceparent()
    if current is not None and own is None:  # one that is there but unreadable stays as sent
        if "specversion" in event:
            event["traceparent"] = current
        else:
            event["extensions"] = {**(event.get("extensions") or {}), "traceparent": current}
    return current


def context_of(headers: Mapping[str, Any] | None = None, traceparent: str | None = None) -> Context | None:
    """The context a caller sent (in `headers`, or as a bare traceparent); None when it sent none
    or one that is not valid W3C trace context."""
    if traceparent:
        headers = {"traceparent": traceparent}
    if not headers:
        return None
    found = _W3C.extract({k.lower(): v for k, v in headers.items() if isinstance(v, str)})
    return found if trace.get_current_span(found).get_span_context().is_valid else None


def link_to_current() -> list[trace.Link]:
    current = trace.get_current_span().get_span_context()
    return [trace.Link(current)] if current.is_valid else []


def log_ids(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: the current trace and span ids on every line written within a span."""
    if _State.tracer is not None:
        current = trace.get_current_span().get_span_context()
        if current.is_valid:
            event.setdefault("trace_id", format(current.trace_id, "032x"))
            event.setdefault("span_id", format(current.span_id, "016x"))
    return event
