"""The bus's CloudEvents ingress on RabbitMQ, for producers that know only AMQP and CloudEvents.

They publish to the topic exchange `<namespace>.cloudevents` with the routing key
`<organization>.<event type>`, in either content mode of the CloudEvents AMQP binding:

- structured: content type `application/cloudevents+json`, the JSON event as the body (Dispatch's
  CloudEvents 0.1 form is accepted there too);
- binary: the attributes in headers prefixed `cloudEvents:` (or `cloudEvents_`, or `ce-` as the
  RabbitMQ binding writes them), the data as the body, its media type as the content type.

The quorum queue `<namespace>.cloudevents.ingress`, bound with `#`, keeps what is published while
no events handler runs. Each event is validated and sent on as the command the bus was given; it
is acknowledged once that command is confirmed, and put back when sending fails. An invalid event
is dead-lettered with the reason and acknowledged: it never blocks the queue."""
import re
from typing import Any, Awaitable, Callable

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from dispatch.schemas import jsontext
from dispatch.schemas.cloudevents import STRUCTURED, Event, InvalidEvent, from_binary, parse_event
from dispatch.schemas.envelope import Command, new_id
from dispatch.schemas.resources import PATH_NAME_PATTERN

from . import rabbitmq_codec as codec
from .rabbitmq_consumer import Consumer, Delivery

log = structlog.get_logger("dispatch.bus")
PREFIXES = ("cloudEvents:", "cloudEvents_", "ce-")
CONSUMER = "cloudevents-ingress"
ROUTING_KEY = "x-dispatch-routing-key"
_ORGANIZATION = re.compile(PATH_NAME_PATTERN)


def received(routing_key: str, content_type: str | None, headers: dict[str, Any], body: bytes) -> tuple[str, Event]:
    """The organization and the valid event a message carries, or InvalidEvent saying why not."""
    media = (content_type or "").lower()
    if media.startswith("application/cloudevents"):
        if not media.startswith(STRUCTURED):
            raise InvalidEvent(f"event format {content_type} is not supported: use {STRUCTURED}")
        try:
            raw = jsontext.decode(body)
        except jsontext.BadJSON as error:
            raise InvalidEvent(f"the body is not a JSON event: it {error}") from None
    else:
        attributes = {name[len(prefix):]: value for name, value in headers.items()
                      for prefix in PREFIXES if name.startswith(prefix)}
        if not attributes:
            raise InvalidEvent(f"not a CloudEvent: neither structured (content type {STRUCTURED}) nor "
                               "binary (attributes in cloudEvents: headers)")
        raw = from_binary(attributes, content_type, body)
    event = parse_event(raw)
    organization, _, event_type = routing_key.partition(".")
    if not _ORGANIZATION.match(organization) or event_type != event.type:
        raise InvalidEvent(f"the routing key {routing_key!r} should be <organization>.{event.type}")
    return organization, event


class IngressConsumer(Consumer):
    def __init__(self, shared: Delivery, queue: AbstractQueue, command: Callable[[str, dict], Command],
                 send: Callable[[Command], Awaitable[None]]):
        super().__init__(shared, queue)
        self.command = command
        self.send = send

    async def _settle(self, incoming: AbstractIncomingMessage) -> None:
        headers = dict(incoming.headers or {})
        routing_key = codec.header(incoming, ROUTING_KEY) or incoming.routing_key or ""
        try:
            try:
                organization, event = received(routing_key, incoming.content_type, headers, incoming.body)
            except InvalidEvent as invalid:
                await self._refuse(incoming, headers, routing_key, str(invalid))
            else:
                await self.send(self.command(organization, event.wire()))
            await incoming.ack()
        except Exception as error:  # noqa: BLE001 - the broker delivers it again
            log.warning("cloud event not settled", queue=self.queue.name, error=repr(error))
            try:
                await incoming.nack(requeue=True)
            except Exception:  # noqa: BLE001 - a closed channel returns it anyway
                pass

    async def _refuse(self, incoming: AbstractIncomingMessage, headers: dict, routing_key: str, reason: str) -> None:
        log.info("invalid cloud event dead-lettered", routing_key=routing_key, reason=reason)
        letter = aio_pika.Message(
            incoming.body, content_type=incoming.content_type, message_id=incoming.message_id or new_id(),
            type="CloudEvent", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={**headers, codec.ERROR: f"invalid CloudEvent: {reason}"[:4000], codec.CONSUMER: CONSUMER,
                     codec.ATTEMPTS: 1, codec.QUEUE: self.queue.name, ROUTING_KEY: routing_key})
        await self.shared.bury(letter, "event")
