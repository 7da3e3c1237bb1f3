"""The ports, traced: wrapped only when tracing is on, like metered.py's wrappers they are the
port they wrap. A message handed to a handler of this process is handled in a consumer span that
continues the context the message carries; a message sent, published or appended without one
takes the current span's, so what a handler decides carries the span that decided it."""
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from dispatch.bus.ports import AnswerFirst, Handler, MessageBus
from dispatch.drivers.ports import Invocation
from dispatch.schemas.envelope import Command, Event, Message
from dispatch.store.ports import EventLog

from . import tracing
from .metered import PortWrapper


def _carry(message: Message) -> Message:
    if message.traceparent is None:
        message.traceparent = tracing.traceparent()
    return message


class TracedBus(PortWrapper):
    def __init__(self, bus: MessageBus, system: str):
        super().__init__(bus)
        self._system = system

    def handle(self, command_type: type[Command], handler: Handler) -> None:
        self.wrapped.handle(command_type, self._traced(handler, None))

    def subscribe(self, event_type: type[Event], group: str, handler: Handler, per_process: bool = False) -> None:
        self.wrapped.subscribe(event_type, group, self._traced(handler, group), per_process)

    async def send(self, command: Command) -> None:
        await self.wrapped.send(_carry(command))

    async def request(self, command: Command, timeout: float) -> Any:
        return await self.wrapped.request(_carry(command), timeout)

    async def publish(self, event: Event) -> None:
        await self.wrapped.publish(_carry(event))

    def _traced(self, handler: Handler, group: str | None) -> Handler:
        system = self._system

        async def traced(message: Message) -> Any:
            attributes = {"messaging.system": system, "messaging.operation.type": "process",
                          "messaging.destination.name": message.type_name(),
                          "messaging.message.id": message.message_id}
            if message.correlation_id:
                attributes["messaging.message.conversation_id"] = message.correlation_id
            if group:
                attributes["messaging.consumer.group.name"] = group
            span = tracing.start_span(f"process {message.type_name()}", SpanKind.CONSUMER,
                                      tracing.context_of(traceparent=message.traceparent), attributes)
            try:
                with trace.use_span(span, end_on_exit=False):
                    result = await handler(message)
            except BaseException:
                span.end()
                raise
            if isinstance(result, AnswerFirst):  # the rest of its work belongs to the same span
                return AnswerFirst(result.reply, _ending(span, result.then))
            span.end()
            return result
        return traced


async def _ending(span: Span, then) -> None:
    with trace.use_span(span, end_on_exit=True):
        await then


class TracedLog(PortWrapper):
    """An append is a span of its own; the events appended carry the context they were decided in."""

    def __init__(self, events: EventLog, system: str):
        super().__init__(events)
        self._system = system

    async def append(self, stream: str, expected_version: int, events: list[Event]) -> int:
        for event in events:
            _carry(event)
        attributes = {"db.system.name": self._system, "db.operation.name": "append", "dispatch.stream": stream,
                      "dispatch.events": [event.type_name() for event in events]}
        with tracing.span(f"append {stream.partition(':')[0]}", SpanKind.CLIENT, attributes=attributes):
            return await self.wrapped.append(stream, expected_version, events)


class TracedExecutor(PortWrapper):
    """A run is a span, named for its function, that ends with the run's status."""

    async def run(self, organization: str, function: dict, run: dict) -> dict:
        attributes = {"faas.invoked_name": run.get("functionName", ""), "dispatch.organization": organization,
                      "dispatch.run.id": run.get("name", "")}
        with tracing.span(f"run {run.get('functionName')}", attributes=attributes) as span:
            record = await self.wrapped.run(organization, function, run)
            if span is not None:
                span.set_attribute("dispatch.run.status", record.get("status", ""))
                if record.get("error"):
                    span.set_status(Status(StatusCode.ERROR, (record["error"].get("message") or "")[:500]))
            return record


class TracedRuntime(PortWrapper):
    """The call into the function's worker is a span; the function gets its context as
    `context["traceparent"]`, so that its own spans can continue the run's trace."""

    async def invoke(self, faas_id: str, context: dict, payload: Any, timeout_ms: int) -> Invocation:
        with tracing.span("invoke", SpanKind.CLIENT, attributes={"faas.instance": faas_id}) as span:
            result = await self.wrapped.invoke(faas_id, {**context, "traceparent": tracing.traceparent()},
                                               payload, timeout_ms)
            if span is not None and result.error is not None:
                span.set_status(Status(StatusCode.ERROR, str(result.error.get("type", "error"))))
            return result
