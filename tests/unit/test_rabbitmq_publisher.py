"""Publishing through a broker outage, on a stand-in channel whose exchange fails as a lost
connection does: tried again after growing pauses until it is back, given up at the deadline."""
import asyncio
import time
from types import SimpleNamespace

import aio_pika
import pytest
from aio_pika.exceptions import PublishError

from dispatch.bus.rabbitmq_publisher import Publisher, Unroutable
from dispatch.errors import Unavailable


class Exchange:
    """Fails the first `failures` publishes with `error`, then takes them; notes when each came."""

    def __init__(self, failures: int, error: BaseException):
        self.failures = failures
        self.error = error
        self.attempts: list[float] = []

    async def publish(self, message, routing_key, mandatory=False):  # noqa: ANN001
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.failures:
            raise self.error


def publisher(exchange: Exchange, outage_wait: float) -> Publisher:
    return Publisher(SimpleNamespace(default_exchange=exchange), outage_wait)


async def test_a_publish_during_a_short_outage_returns_once_the_broker_takes_it():
    exchange = Exchange(failures=5, error=ConnectionError("connection reset"))

    await publisher(exchange, outage_wait=5).publish("", "q", aio_pika.Message(b"x"))

    assert len(exchange.attempts) == 6
    pauses = [later - earlier for earlier, later in zip(exchange.attempts, exchange.attempts[1:], strict=False)]
    assert max(pauses) <= 0.3  # never more than the longest pause while the connection is restored


async def test_a_publish_through_a_long_outage_gives_up_at_the_deadline_naming_the_reason():
    exchange = Exchange(failures=10**6, error=ConnectionError("connection reset"))
    started = time.monotonic()

    with pytest.raises(Unavailable, match="the message bus is unavailable: ConnectionError: connection reset"):
        await publisher(exchange, outage_wait=0.6).publish("", "q", aio_pika.Message(b"x"))

    assert 0.6 <= time.monotonic() - started < 1.0
    assert len(exchange.attempts) > 3


async def test_a_returned_message_is_unroutable_at_once():
    returned = PublishError.__new__(PublishError)  # what aio-pika raises when the broker returns the message
    exchange = Exchange(failures=1, error=returned)

    with pytest.raises(Unroutable):
        await publisher(exchange, outage_wait=5).publish("", "q", aio_pika.Message(b"x"), mandatory=True)

    assert len(exchange.attempts) == 1


async def test_a_cancelled_publish_stops_trying():
    exchange = Exchange(failures=10**6, error=ConnectionError("connection reset"))
    publishing = asyncio.ensure_future(publisher(exchange, outage_wait=30).publish("", "q", aio_pika.Message(b"x")))
    await asyncio.sleep(0.3)

    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing
    tried = len(exchange.attempts)
    await asyncio.sleep(0.3)

    assert len(exchange.attempts) == tried
