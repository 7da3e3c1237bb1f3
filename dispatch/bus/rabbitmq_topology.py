"""The RabbitMQ bus's exchanges and queues. Every name is derived from the namespace and the
message classes, never typed by hand:

- `<ns>.commands` (direct, routing key = command type) → one quorum queue per command type,
  `<ns>.command.<Type>`; its consumers compete.
- `<ns>.events` (topic, routing key = event type) → one quorum queue per subscriber group,
  `<ns>.group.<group>`, bound to each event type the group subscribes to; a per-process group
  gets an exclusive auto-delete queue `<ns>.group.<group>.<instance>` instead.
- `<ns>.retry` (headers) → one classic queue per delay, `<ns>.retry.<ms>ms`, whose TTL expires
  messages into the default exchange under the routing key they were published with: the name of
  the queue they came from. So one queue per delay serves every consumer queue.
- `<ns>.cloudevents` (topic, routing key = `<organization>.<event type>`) → the quorum queue
  `<ns>.cloudevents.ingress`, bound with `#`: CloudEvents from producers outside Dispatch (see
  `rabbitmq_cloudevents`). Declared with the rest, so events wait for an events handler.
- `<ns>.dead-letters` (fanout) → the classic queue `<ns>.dead-letters`. Classic on purpose: it is
  listed by get-and-requeue, and a quorum queue's delivery limit would drop letters that were
  listed often enough.
"""
from dataclasses import dataclass
from typing import Iterable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from .rabbitmq_codec import DELAY


@dataclass(frozen=True)
class Topology:
    namespace: str
    retry_delays: tuple[float, ...]

    @property
    def commands(self) -> str:
        return f"{self.namespace}.commands"

    @property
    def events(self) -> str:
        return f"{self.namespace}.events"

    @property
    def retry(self) -> str:
        return f"{self.namespace}.retry"

    @property
    def cloudevents(self) -> str:
        return f"{self.namespace}.cloudevents"

    @property
    def ingress(self) -> str:
        return f"{self.namespace}.cloudevents.ingress"

    @property
    def dead_letters(self) -> str:
        return f"{self.namespace}.dead-letters"

    def command_queue(self, type_name: str) -> str:
        return f"{self.namespace}.command.{type_name}"

    def group_queue(self, group: str, instance: str | None = None) -> str:
        return f"{self.namespace}.group.{group}" + (f".{instance}" if instance else "")

    def delays_ms(self) -> list[int]:
        return sorted({max(1, round(delay * 1000)) for delay in self.retry_delays})

    def delay_after(self, failed_attempt: int) -> str:
        """The retry-queue header value for the wait after the n-th failed attempt."""
        delay = self.retry_delays[min(failed_attempt, len(self.retry_delays)) - 1]
        return str(max(1, round(delay * 1000)))

    def retry_queue(self, ms: int) -> str:
        return f"{self.namespace}.retry.{ms}ms"

    async def declare_base(self, channel: AbstractChannel) -> None:
        await channel.declare_exchange(self.commands, aio_pika.ExchangeType.DIRECT, durable=True)
        await channel.declare_exchange(self.events, aio_pika.ExchangeType.TOPIC, durable=True)
        retry = await channel.declare_exchange(self.retry, aio_pika.ExchangeType.HEADERS, durable=True)
        dead = await channel.declare_exchange(self.dead_letters, aio_pika.ExchangeType.FANOUT, durable=True)
        letters = await channel.declare_queue(self.dead_letters, durable=True)
        await letters.bind(dead, routing_key="")
        for ms in self.delays_ms():
            queue = await channel.declare_queue(self.retry_queue(ms), durable=True, arguments={
                "x-message-ttl": ms, "x-dead-letter-exchange": ""})
            await queue.bind(retry, routing_key="", arguments={"x-match": "all", DELAY: str(ms)})
        await self.declare_ingress(channel)

    async def declare_ingress(self, channel: AbstractChannel) -> AbstractQueue:
        exchange = await channel.declare_exchange(self.cloudevents, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(self.ingress, durable=True, arguments=self._quorum())
        await queue.bind(exchange, routing_key="#")
        return queue

    async def declare_command(self, channel: AbstractChannel, type_name: str) -> AbstractQueue:
        queue = await channel.declare_queue(self.command_queue(type_name), durable=True,
                                            arguments=self._quorum())
        await queue.bind(self.commands, routing_key=type_name)
        return queue

    async def declare_group(self, channel: AbstractChannel, group: str, event_types: Iterable[str],
                            instance: str | None) -> AbstractQueue:
        if instance is None:
            queue = await channel.declare_queue(self.group_queue(group), durable=True, arguments=self._quorum())
        else:
            # Exclusive queues cannot be quorum queues; this one lives and dies with the process.
            queue = await channel.declare_queue(self.group_queue(group, instance), exclusive=True,
                                                auto_delete=True,
                                                arguments={"x-dead-letter-exchange": self.dead_letters})
        for type_name in event_types:
            await queue.bind(self.events, routing_key=type_name)
        return queue

    def _quorum(self) -> dict:
        # The broker's own dead-lettering (a delivery limit, a policy) lands in our letters too.
        return {"x-queue-type": "quorum", "x-dead-letter-exchange": self.dead_letters}

    async def destroy(self, channel: AbstractChannel, queues: Iterable[str]) -> None:
        names = [*queues, self.ingress, self.dead_letters, *(self.retry_queue(ms) for ms in self.delays_ms())]
        for name in dict.fromkeys(names):
            await channel.queue_delete(name)
        for exchange in (self.commands, self.events, self.cloudevents, self.retry, self.dead_letters):
            await channel.exchange_delete(exchange)
