"""Confirmed publishing that rides out a broker outage: a publish returns only once the broker
confirmed it, waits (bounded) while the connection is being restored, and then gives up with
Unavailable. A publish retried after a lost confirm may reach the broker twice; consumers are
idempotent by message id, so that costs a duplicate delivery, never a lost message."""
import asyncio

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange
from aio_pika.exceptions import AMQPError, PublishError

from dispatch.errors import Unavailable

# Everything that means "the connection or channel is not usable right now".
_TRANSIENT = (AMQPError, ConnectionError, OSError, RuntimeError, asyncio.TimeoutError)


class Unroutable(Exception):
    """No queue is bound for the routing key (a mandatory publish came back)."""


class Publisher:
    def __init__(self, channel: AbstractChannel, outage_wait: float):
        self.channel = channel
        self.outage_wait = outage_wait
        self._exchanges: dict[str, AbstractExchange] = {}

    async def exchange(self, name: str) -> AbstractExchange:
        if name not in self._exchanges:
            self._exchanges[name] = (self.channel.default_exchange if name == "" else
                                     await self.channel.get_exchange(name, ensure=False))
        return self._exchanges[name]

    async def publish(self, exchange: str, routing_key: str, message: aio_pika.Message,
                      mandatory: bool = False) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.outage_wait
        target = await self.exchange(exchange)
        while True:
            remaining = deadline - loop.time()
            try:
                async with asyncio.timeout(max(remaining, 0.001)):
                    await target.publish(message, routing_key, mandatory=mandatory)
                return
            except PublishError:
                raise Unroutable(f"no queue for {routing_key!r} on {exchange or 'the default exchange'!r}") from None
            except _TRANSIENT as error:
                last: BaseException = error
            if loop.time() >= deadline:
                raise Unavailable(f"the message bus is unavailable: {_reason(last)}") from None
            await asyncio.sleep(min(0.25, max(deadline - loop.time(), 0)))


def _reason(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
