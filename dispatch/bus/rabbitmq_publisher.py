"""Confirmed publishing that rides out a broker outage: a publish returns only once the broker
confirmed it, waits (bounded) while the connection is being restored, trying again after short
jittered pauses that grow, and then gives up with Unavailable. A publish retried after a lost
confirm may reach the broker twice; consumers are idempotent by message id, so that costs a
duplicate delivery, never a lost message."""
import asyncio

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange
from aio_pika.exceptions import AMQPError, PublishError
from tenacity import AsyncRetrying, retry_if_exception_type, retry_if_not_exception_type, wait_exponential_jitter

from dispatch.errors import Unavailable

# Everything that means "the connection or channel is not usable right now"; a returned message
# (PublishError, an AMQPError too) is an answer, not an outage.
_TRANSIENT = (AMQPError, ConnectionError, OSError, RuntimeError, asyncio.TimeoutError)
_RETRIED = retry_if_exception_type(_TRANSIENT) & retry_if_not_exception_type(PublishError)
_BACKOFF = wait_exponential_jitter(multiplier=0.02, max=0.25, jitter=0.05)


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

        def remaining() -> float:
            return max(deadline - loop.time(), 0)

        async def attempt() -> None:
            async with asyncio.timeout(max(remaining(), 0.001)):
                await target.publish(message, routing_key, mandatory=mandatory)

        try:
            try:
                await attempt()  # the usual case, on the hot path: no outage, no retrying machinery
            except _TRANSIENT as error:
                if isinstance(error, PublishError):
                    raise
                await AsyncRetrying(retry=_RETRIED, stop=lambda state: remaining() == 0, reraise=True,
                                    wait=lambda state: min(_BACKOFF(state), remaining()))(attempt)
        except PublishError:
            raise Unroutable(f"no queue for {routing_key!r} on {exchange or 'the default exchange'!r}") from None
        except _TRANSIENT as error:
            raise Unavailable(f"the message bus is unavailable: {_reason(error)}") from None


def _reason(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
