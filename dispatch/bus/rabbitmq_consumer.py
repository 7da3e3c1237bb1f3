"""One consumer per queue. Handlers run concurrently, as many as the channel's prefetch lets
through; a delivery is acknowledged only after its handler finished and its reply, retry or dead
letter was confirmed (at-least-once). A redelivered message id gets the first outcome again."""
import asyncio
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from dispatch.errors import DispatchError, Unavailable
from dispatch.schemas.envelope import Command, Message, new_id

from . import rabbitmq_codec as codec
from .ports import AnswerFirst, Handler
from .rabbitmq_batches import BatchDelivery, is_batch
from .rabbitmq_publisher import Publisher
from .rabbitmq_topology import Topology

log = structlog.get_logger("dispatch.bus")


class Outcomes:
    """A bounded memory of handled message ids and their reply bodies. A pending entry resolves to
    None when the delivery is being retried: the retry, not the duplicate, will answer."""

    def __init__(self, remembered: int = 10_000):
        self.remembered = remembered
        self._seen: OrderedDict[str, asyncio.Future] = OrderedDict()

    def begin(self, message_id: str) -> asyncio.Future | None:
        if message_id in self._seen:
            self._seen.move_to_end(message_id)
            return self._seen[message_id]
        self._seen[message_id] = asyncio.get_running_loop().create_future()
        if len(self._seen) > self.remembered:
            self._seen.popitem(last=False)
        return None

    def settle(self, message_id: str, body: dict[str, Any] | None) -> None:
        outcome = self._seen.get(message_id)
        if outcome is not None and not outcome.done():
            outcome.set_result(body)
        if body is None:
            self._seen.pop(message_id, None)


@dataclass
class Delivery:
    """What every consumer of one bus shares."""
    topology: Topology
    publisher: Publisher
    replier: Publisher
    max_attempts: int
    tasks: set[asyncio.Task]
    prefetch: int
    dead_lettered: list[Callable[[str], None]] = field(default_factory=list)
    """Called with the kind, command or event, of each message sent to the dead letters."""

    async def bury(self, letter: aio_pika.Message, kind: str) -> None:
        """Send `letter` to the dead letters, confirmed."""
        await self.publisher.publish(self.topology.dead_letters, "", letter, mandatory=True)
        for listener in self.dead_lettered:
            listener(kind)


class Consumer(ABC):
    """Consumes a queue, settling each delivery in a task of its own."""

    def __init__(self, shared: Delivery, queue: AbstractQueue):
        self.shared = shared
        self.queue = queue
        self._tag: str | None = None

    async def start(self) -> None:
        self._tag = await self.queue.consume(self._on_delivery)

    async def stop(self) -> None:
        if self._tag is not None:
            await self.queue.cancel(self._tag)
            self._tag = None

    async def _on_delivery(self, incoming: AbstractIncomingMessage) -> None:
        # Our own task: a handler must not be cancelled because the channel that delivered it died.
        task = asyncio.ensure_future(self._settle(incoming))
        self.shared.tasks.add(task)
        task.add_done_callback(self.shared.tasks.discard)

    @abstractmethod
    async def _settle(self, incoming: AbstractIncomingMessage) -> None:
        """Acknowledge, retry or dead-letter the delivery; never raise."""


class QueueConsumer(Consumer):
    def __init__(self, shared: Delivery, queue: AbstractQueue, handlers: dict[str, Handler], group: str | None):
        super().__init__(shared, queue)
        self.handlers = handlers
        self.group = group
        self.outcomes = Outcomes()
        # Batch members in flight: as many as the prefetch lets single deliveries through.
        self._members = asyncio.Semaphore(shared.prefetch)

    async def _settle(self, incoming: AbstractIncomingMessage) -> None:
        if is_batch(incoming):
            return await self._settle_batch(BatchDelivery(incoming))
        try:
            await self._process(incoming)
        except Exception as error:  # noqa: BLE001 - the broker redelivers what we could not settle
            log.warning("delivery not settled", queue=self.queue.name, error=repr(error))
            await _quietly(incoming.nack(requeue=True))

    async def _settle_batch(self, batch: BatchDelivery) -> None:
        """Each member as a delivery of its own (see rabbitmq_batches)."""
        if not batch.members:
            return await _quietly(batch.incoming.ack())

        async def member_settled(member) -> None:
            async with self._members:
                await self._settle(member)

        await asyncio.gather(*(member_settled(member) for member in batch.members))

    async def _process(self, incoming: AbstractIncomingMessage) -> None:
        attempt = codec.attempt_of(incoming)
        try:
            message = codec.decoded(incoming)
        except Exception as error:  # noqa: BLE001 - anything undecodable is a poison message
            await self._give_up(incoming, self.queue.name, f"undecodable: {codec.describe(error)}", attempt)
            return await _quietly(incoming.ack())
        if attempt > 1 or incoming.redelivered:
            message.mark_repeated()
        handler = self.handlers.get(message.type_name())
        if handler is None:
            reason = f"no handler for {message.type_name()} on {self.queue.name}"
            await self._give_up(incoming, self.queue.name, reason, attempt)
            await self._answer(incoming, codec.failure(Unavailable(reason)))
            return await _quietly(incoming.ack())
        if codec.header(incoming, codec.REPLAYED):
            self.outcomes.settle(message.message_id, None)
        earlier = self.outcomes.begin(message.message_id)
        if earlier is not None:
            body = await asyncio.shield(earlier)
            if body is not None:
                await self._answer(incoming, body)
            return await _quietly(incoming.ack())
        await self._run(incoming, message, handler, attempt)

    async def _run(self, incoming: AbstractIncomingMessage, message: Message, handler: Handler, attempt: int) -> None:
        name = message.type_name() if self.group is None else f"{self.group}.{message.type_name()}"
        started = time.perf_counter()
        error: BaseException | None = None
        then = None
        try:
            result = await handler(message)
            if isinstance(result, AnswerFirst):
                result, then = result.reply, result.then
            body = _reply_body(result)
        except DispatchError as refusal:
            error, body = refusal, codec.failure(refusal)
        except asyncio.CancelledError:
            self.outcomes.settle(message.message_id, None)
            raise
        except Exception as failure:  # noqa: BLE001 - retried, then dead-lettered
            log.warning("handler failed", consumer=name, type=message.type_name(), attempt=attempt,
                        error=repr(failure), correlation_id=message.correlation_id)
            if attempt < self.shared.max_attempts:
                self.outcomes.settle(message.message_id, None)
                await self._retry(incoming, attempt)
                return await _quietly(incoming.ack())
            await self._give_up(incoming, name, codec.describe(failure), attempt)
            error = codec.gave_up(message.type_name(), attempt, failure)
            body = codec.failure(error)
        self.outcomes.settle(message.message_id, body)
        await self._answer(incoming, body)
        if then is not None and not await self._finish(incoming, message, then, attempt, name):
            return
        await _quietly(incoming.ack())
        _log_handled(name, message, started, error)

    async def _finish(self, incoming: AbstractIncomingMessage, message: Message, then, attempt: int,
                      name: str) -> bool:
        """The work a handler left for after its answer; the message is acknowledged only once it
        is done. False when it failed and the message went to a retry or the dead letters."""
        try:
            await then
            return True
        except Exception as failure:  # noqa: BLE001 - retried, then dead-lettered, like a handler
            log.warning("work after the answer failed", consumer=name, type=message.type_name(),
                        attempt=attempt, error=repr(failure), correlation_id=message.correlation_id)
            self.outcomes.settle(message.message_id, None)
            if attempt < self.shared.max_attempts:
                await self._retry(incoming, attempt)
            else:
                await self._give_up(incoming, name, codec.describe(failure), attempt)
            await _quietly(incoming.ack())
            return False

    async def _retry(self, incoming: AbstractIncomingMessage, attempt: int) -> None:
        headers = {codec.ATTEMPT: attempt + 1, codec.DELAY: self.shared.topology.delay_after(attempt)}
        await self.shared.publisher.publish(self.shared.topology.retry, self.queue.name,
                                            codec.copy_of(incoming, headers), mandatory=True)

    async def _give_up(self, incoming: AbstractIncomingMessage, consumer: str, error: str, attempts: int) -> None:
        letter = codec.copy_of(incoming, {codec.ERROR: error[:4000], codec.CONSUMER: consumer,
                                          codec.ATTEMPTS: attempts, codec.QUEUE: self.queue.name},
                               keep_reply_to=False)
        letter.message_id = incoming.message_id or new_id()
        await self.shared.bury(letter, "command" if self.group is None else "event")

    async def _answer(self, incoming: AbstractIncomingMessage, body: dict[str, Any]) -> None:
        if incoming.reply_to and incoming.message_id:
            # Not mandatory: the broker reports a direct reply-to publish as unrouted even when
            # delivered. Not confirmed: a reply is as transient as the requester waiting for it.
            await self.shared.replier.publish("", incoming.reply_to, codec.reply(incoming.message_id, body))


def _reply_body(result: Any) -> dict[str, Any]:
    try:
        return codec.success(result)
    except TypeError as error:
        # A programming error no retry can fix: refuse at once rather than run the handler again.
        return codec.failure(DispatchError(f"the handler's reply cannot be sent: {error}"))


async def _quietly(settling) -> None:
    """Acknowledge on a channel that may be gone: the broker then redelivers the message and
    the outcome memory recognises it."""
    try:
        await settling
    except Exception as error:  # noqa: BLE001
        log.debug("could not settle a delivery", error=repr(error))


def _log_handled(name: str, message: Message, started: float, error: BaseException | None) -> None:
    """One line per command, carrying its correlation id; events are logged only when they fail."""
    if error is None and (not isinstance(message, Command) or message.logged_by_handler):
        return
    log.info("command" if isinstance(message, Command) else "event", type=message.type_name(),
             consumer=name, ms=round((time.perf_counter() - started) * 1000, 2),
             outcome="ok" if error is None else getattr(error, "message", repr(error)),
             correlation_id=message.correlation_id)
