"""The `amqp` driver type: consumes a queue of an outside RabbitMQ (AMQP 0-9-1) broker and turns
each message into an event.

Config: `url` (amqp:// or amqps://; or the key `url` of one of the driver's secrets, which keeps
its password out of listings), `queue` (it must exist: the driver never declares it),
`eventType` (the type of plain messages; default: each message's `type` property) and `prefetch`
(messages in flight, default 10).

A CloudEvent is taken as it is: structured (content type application/cloudevents+json) or binary
(attributes in `cloudEvents:`, `cloudEvents_` or `ce-` headers). Any other message is the data of
an event whose id is the message id (a new one when it has none: set message ids for a message
delivered twice to run its functions once).

Acknowledgements are manual: a message is acknowledged once its event is on Dispatch's bus, put
back when publishing failed, and rejected without requeue (to the queue's dead-letter exchange,
if it has one) when it is not a valid event. A lost connection is made again, after growing
pauses; the driver is ERROR with the reason meanwhile."""
import asyncio
import uuid
from contextlib import suppress
from functools import partial

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import ChannelNotFoundEntity

from dispatch.schemas import jsontext
from dispatch.schemas.cloudevents import STRUCTURED, Event, InvalidEvent, from_binary, from_body, parse_event

from .ports import DriverRejected, DriverSpec, Emit, Report

log = structlog.get_logger("dispatch.drivers")
PREFIXES = ("cloudEvents:", "cloudEvents_", "ce-")
MOST_PAUSE = 30.0


def event_of(message: AbstractIncomingMessage, spec: DriverSpec) -> Event:
    """The event a message carries, or InvalidEvent saying why there is none."""
    content_type, body = message.content_type, message.body
    if content_type and content_type.lower().startswith("application/cloudevents"):
        if not content_type.lower().startswith(STRUCTURED):
            raise InvalidEvent(f"event format {content_type} is not supported: use {STRUCTURED}")
        try:
            raw = jsontext.decode(body)
        except jsontext.BadJSON as error:
            raise InvalidEvent(f"the body is not a JSON event: it {error}") from None
        return parse_event(raw)
    headers = dict(message.headers or {})
    attributes = {name[len(prefix):]: value for name, value in headers.items()
                  for prefix in PREFIXES if name.startswith(prefix)}
    if attributes:
        return parse_event(from_binary(attributes, content_type, body))
    event_type = spec.config.get("eventType") or message.type
    if not event_type:
        raise InvalidEvent("a plain message needs a type: set the driver's eventType, or the message's type property")
    attributes = {"specversion": "1.0", "type": event_type, "source": spec.source,
                  "id": message.message_id or str(uuid.uuid4())}
    if message.timestamp:
        attributes["time"] = message.timestamp
    return parse_event(from_body(attributes, content_type, body))


def _safe(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':')[0]}:***@{host}"


class AMQPEvents:
    """Consumes the queues of the amqp drivers this process leads, one connection each."""

    async def run(self, spec: DriverSpec, emit: Emit, report: Report) -> None:
        url = spec.secrets.get("url") or spec.config.get("url") or ""
        if not url.startswith(("amqp://", "amqps://")):
            raise DriverRejected("no broker URL: set config url, or name a secret holding the key url "
                                 "(an amqp:// or amqps:// URL)")
        pause = 1.0
        while True:
            reason = await self._consume(spec, url, emit, report)
            log.warning("amqp driver not consuming", driver=spec.name, reason=reason)
            await report(reason)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MOST_PAUSE)

    async def _consume(self, spec: DriverSpec, url: str, emit: Emit, report: Report) -> str:
        """Consume until the connection fails; why it did."""
        name = spec.config["queue"]
        try:
            connection = await aio_pika.connect(url, timeout=10)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - refused, unknown host, bad credentials: all said
            return f"cannot connect to {_safe(url)}: {error or type(error).__name__}"
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=int(spec.config.get("prefetch") or 10))
            try:
                queue = await channel.get_queue(name, ensure=True)
            except ChannelNotFoundEntity:
                return f"queue {name} does not exist on {_safe(url)}"
            await queue.consume(partial(self._settle, spec=spec, emit=emit))
            await report(None)
            await asyncio.wait([asyncio.ensure_future(connection.closed()), asyncio.ensure_future(channel.closed())],
                               return_when=asyncio.FIRST_COMPLETED)
            return f"lost the connection to {_safe(url)}"
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the broker went away mid-way
            return f"lost the connection to {_safe(url)}: {error or type(error).__name__}"
        finally:
            with suppress(Exception):
                await asyncio.shield(connection.close())

    async def _settle(self, message: AbstractIncomingMessage, spec: DriverSpec, emit: Emit) -> None:
        try:
            try:
                event = event_of(message, spec)
                await emit(event)
            except InvalidEvent as invalid:
                log.warning("amqp message is not an event; rejected", driver=spec.name, reason=str(invalid),
                            message_id=message.message_id)
                await message.reject(requeue=False)
                return
            except Exception as error:  # noqa: BLE001 - Dispatch's bus failed: the broker keeps it
                log.warning("amqp message not published; put back", driver=spec.name, error=repr(error))
                await asyncio.sleep(1.0)
                await message.nack(requeue=True)
                return
            await message.ack()
        except Exception as error:  # noqa: BLE001 - the channel closed: the broker delivers it again
            log.info("amqp message not settled", driver=spec.name, error=repr(error))

    async def discard(self, driver_id: str) -> None:
        """A consumer leaves nothing behind: the broker returns its unacknowledged messages."""

    async def close(self) -> None:
        """Connections close with their drivers."""
