"""The distributed bus on RabbitMQ (aio-pika): the same semantics as the embedded bus across
processes. Exchanges and queues are described in `rabbitmq_topology`; delivery (retries, dead
letters, idempotency, replies) in `rabbitmq_consumer`.

Sends of one command type that meet unconfirmed ones travel together (`rabbitmq_batches`).
Requests use direct reply-to: the requester's channel consumes `amq.rabbitmq.reply-to`, so a
reply reaches the requesting process whichever process handled the command. A request in flight
while the connection is being restored loses its reply channel and times out."""
import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from dispatch.errors import Unavailable
from dispatch.schemas.envelope import Command, Event

from . import rabbitmq_codec as codec, rabbitmq_dead_letters as letters
from .ports import DeadLetter, Handler
from .rabbitmq_batches import Coalescer, Encoded, batch_message
from .rabbitmq_cloudevents import IngressConsumer
from .rabbitmq_consumer import Delivery, QueueConsumer
from .rabbitmq_publisher import Publisher, Unroutable
from .rabbitmq_topology import Topology


@dataclass
class _Group:
    per_process: bool
    handlers: dict[str, Handler] = field(default_factory=dict)


class RabbitMQBus:
    durable = True  # sends are confirmed into durable quorum queues

    def __init__(self, url: str, namespace: str = "dispatch", prefetch: int = 64, max_attempts: int = 5,
                 retry_delays: tuple[float, ...] = (0.1, 0.5, 2.0, 10.0), outage_wait: float = 30.0,
                 close_wait: float = 10.0):
        if not retry_delays or max_attempts < 1:
            raise ValueError("a bus needs at least one attempt and one retry delay")
        self.url = url
        self.topology = Topology(namespace, tuple(retry_delays))
        self.prefetch = prefetch
        self.max_attempts = max_attempts
        self.outage_wait = outage_wait
        self.close_wait = close_wait
        self.instance = uuid.uuid4().hex[:12]
        self._commands: dict[str, Handler] = {}
        self._groups: dict[str, _Group] = {}
        self._ingress: Callable[[str, dict], Command] | None = None
        self._consumers: dict[str, QueueConsumer | IngressConsumer] = {}
        self._replies: dict[str, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._pending: set[asyncio.Task] = set()
        self._lock = asyncio.Lock()
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._delivery: Delivery | None = None
        self._coalescer = Coalescer(self._publish_commands)
        self.dead_lettered: list[Callable[[str], None]] = []
        """Called with the kind, command or event, of each message sent to the dead letters."""

    def handle(self, command_type: type[Command], handler: Handler) -> None:
        name = command_type.type_name()
        if name in self._commands:
            raise ValueError(f"{name} already has a handler")
        self._commands[name] = handler
        self._after_start(lambda: self._consume_command(name))

    def subscribe(self, event_type: type[Event], group: str, handler: Handler, per_process: bool = False) -> None:
        known = self._groups.setdefault(group, _Group(per_process))
        if known.per_process != per_process:
            raise ValueError(f"group {group} is {'' if known.per_process else 'not '}per process")
        known.handlers[event_type.type_name()] = handler
        self._after_start(lambda: self._consume_group(group))

    def ingest(self, command: Callable[[str, dict], Command]) -> None:
        self._ingress = command
        self._after_start(self._consume_ingress)

    async def start(self) -> None:
        if self._connection is not None:
            return
        try:
            self._connection = await aio_pika.connect_robust(
                self.url, reconnect_interval=1, client_properties={
                    "connection_name": f"dispatch {self.topology.namespace} {self.instance}"})
        except Exception as error:  # noqa: BLE001 - whatever the reason, the caller sees one error
            raise Unavailable(f"the message bus is unavailable: {error}") from None
        try:
            await self._open_channels()
            for name in list(self._commands):
                await self._consume_command(name)
            for group in list(self._groups):
                await self._consume_group(group)
            if self._ingress is not None:
                await self._consume_ingress()
        except BaseException:
            connection, self._connection, self._delivery = self._connection, None, None
            self._consumers.clear()
            await connection.close()
            raise

    async def _open_channels(self) -> None:
        connection = self._current_connection()
        self._channel = await connection.channel(publisher_confirms=False)
        await self._channel.set_qos(prefetch_count=self.prefetch)
        await self.topology.declare_base(self._channel)
        publishing = await connection.channel(publisher_confirms=True, on_return_raises=True)
        replies = await publishing.declare_queue(codec.DIRECT_REPLY_TO, passive=True)
        await replies.consume(self._on_reply, no_ack=True)
        self._delivery = Delivery(self.topology, Publisher(publishing, self.outage_wait),
                                  Publisher(self._channel, self.outage_wait), self.max_attempts, self._tasks,
                                  self.prefetch, self.dead_lettered)

    async def send(self, command: Command) -> None:
        await self._settled()
        await self._coalescer.send(command.type_name(), command)

    async def request(self, command: Command, timeout: float) -> Any:
        await self._settled()
        reply = asyncio.get_running_loop().create_future()
        self._replies[command.message_id] = reply
        try:
            async with asyncio.timeout(timeout):
                await self._send(command, reply_to=codec.DIRECT_REPLY_TO)
                body = await reply
        finally:
            self._replies.pop(command.message_id, None)
        return codec.unwrap(body)

    async def publish(self, event: Event) -> None:
        await self._settled()
        # Not mandatory: an event nobody subscribes to is a fact without readers, not an error.
        await self._running().publisher.publish(self.topology.events, event.type_name(), codec.outgoing(event))

    def reachable(self) -> bool:
        return self._connection is not None and self._connection.connected.is_set()

    async def dead_letters(self) -> list[DeadLetter]:
        self._running()
        return await letters.list_letters(self._current_connection(), self.topology)

    async def replay(self, message_id: str) -> bool:
        return await letters.replay(self._current_connection(), self.topology, self._running().publisher, message_id)

    async def close(self) -> None:
        """Stop consuming, let handlers in flight finish (bounded), then disconnect; whatever did
        not finish is redelivered to another consumer."""
        if self._connection is None:
            return
        for task in self._pending:
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        self._pending.clear()
        for consumer in self._consumers.values():
            try:
                await asyncio.wait_for(consumer.stop(), 5)
            except Exception:  # noqa: BLE001 - closing the connection cancels it anyway
                pass
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=self.close_wait)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(Unavailable("the message bus was closed"))
        connection, self._connection, self._delivery = self._connection, None, None
        self._consumers.clear()
        await connection.close()

    async def destroy(self) -> None:
        """Delete this namespace's exchanges, its shared queues and the queues of the handlers and
        groups registered here (queues only other instances declared are theirs to delete).
        For tests; closes the bus first."""
        await self.close()
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            queues = [self.topology.command_queue(name) for name in self._commands]
            queues += [self.topology.group_queue(g) for g, known in self._groups.items() if not known.per_process]
            await self.topology.destroy(channel, queues)

    def _after_start(self, declare: Callable[[], Awaitable[None]]) -> None:
        """Registrations after start take effect before the next send or publish of this bus."""
        if self._delivery is not None:
            task = asyncio.ensure_future(declare())
            self._pending.add(task)

    async def _settled(self) -> None:
        while self._pending:
            pending, self._pending = self._pending, set()
            await asyncio.gather(*pending)

    def _running(self) -> Delivery:
        if self._delivery is None:
            raise Unavailable("the message bus is not started")
        return self._delivery

    def _current_connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise Unavailable("the message bus is not started")
        return self._connection

    def _current_channel(self) -> AbstractChannel:
        if self._channel is None:
            raise Unavailable("the message bus is not started")
        return self._channel

    async def _consume_command(self, name: str) -> None:
        async with self._lock:
            queue = await self.topology.declare_command(self._current_channel(), name)
            await self._start_consumer(queue, self._commands, None)

    async def _consume_group(self, group: str) -> None:
        known = self._groups[group]
        async with self._lock:
            queue = await self.topology.declare_group(self._current_channel(), group, list(known.handlers),
                                                      self.instance if known.per_process else None)
            await self._start_consumer(queue, known.handlers, group)

    async def _consume_ingress(self) -> None:
        async with self._lock:
            queue = await self.topology.declare_ingress(self._current_channel())
            if queue.name not in self._consumers:
                assert self._ingress is not None  # consumed only once ingest() gave it
                consumer = IngressConsumer(self._running(), queue, self._ingress, self.send)
                self._consumers[queue.name] = consumer
                await consumer.start()

    async def _start_consumer(self, queue, handlers: dict[str, Handler], group: str | None) -> None:
        if queue.name not in self._consumers:
            consumer = QueueConsumer(self._running(), queue, handlers, group)
            self._consumers[queue.name] = consumer
            await consumer.start()

    async def _send(self, command: Command, reply_to: str | None) -> None:
        await self._publish([command], codec.outgoing(command, reply_to))

    async def _publish_commands(self, routing_key: str, members: list[Encoded]) -> None:
        commands = [command for command, _ in members]
        if len(members) == 1:
            await self._publish(commands, codec.outgoing(commands[0], body=members[0][1]))
        else:
            await self._publish(commands, batch_message(members))

    async def _publish(self, commands: list[Command], message: aio_pika.Message) -> None:
        delivery = self._running()
        name = commands[0].type_name()
        try:
            await delivery.publisher.publish(self.topology.commands, name, message, mandatory=True)
        except Unroutable:
            for command in commands:
                await self._refuse(delivery, command)
            raise Unavailable(f"no handler for {name}:"
                              " is a `dispatch server --role handlers` process running?") from None

    async def _refuse(self, delivery: Delivery, command: Command) -> None:
        letter = codec.outgoing(command)
        letter.headers.update({codec.ERROR: f"no handler for {command.type_name()}", codec.CONSUMER: "-",
                               codec.ATTEMPTS: 0, codec.QUEUE: self.topology.command_queue(command.type_name())})
        await delivery.bury(letter, "command")

    async def _on_reply(self, incoming: AbstractIncomingMessage) -> None:
        reply = self._replies.get(incoming.correlation_id or "")
        if reply is None or reply.done():
            return
        try:
            reply.set_result(json.loads(incoming.body))
        except ValueError as error:
            reply.set_exception(Unavailable(f"unreadable reply: {error}"))
