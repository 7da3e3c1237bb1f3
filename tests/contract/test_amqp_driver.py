"""The amqp driver type against a real RabbitMQ broker: messages of an outside queue become events,
acknowledged once published, rejected to the queue's dead letters when they are no event, put back
when publishing fails; a missing queue or a lost connection is ERROR with the reason until it
recovers by itself. Each test has queues of its own, deleted after it."""
import asyncio
import json
import urllib.parse
import uuid
from dataclasses import dataclass, field

import aio_pika
import pytest
from aiohttp.test_utils import TestClient, TestServer

from dispatch.drivers.events.amqp import AMQPEvents
from dispatch.drivers.events.ports import DriverSpec
from dispatch.gateway.app import create_app
from dispatch.handlers.bootstrap import bootstrap
from dispatch.settings import Settings
from tests.fakes import InProcessRuntime
from tests.unit.test_gateway import answer, call, reaches, ready_function, seed_image

pytestmark = pytest.mark.rabbitmq


@dataclass
class Broker:
    url: str
    channel: aio_pika.abc.AbstractChannel
    queue: str
    dead: str

    async def publish(self, body: bytes, queue: str | None = None, **properties) -> None:
        await self.channel.default_exchange.publish(aio_pika.Message(body, **properties),
                                                    routing_key=queue or self.queue)

    async def count(self, queue: str) -> int:
        return (await self.channel.declare_queue(queue, passive=True)).declaration_result.message_count


@pytest.fixture
async def broker(amqp_url):
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    name = f"dispatch-test-driver-{uuid.uuid4().hex[:8]}"
    await channel.declare_queue(f"{name}.dead")
    await channel.declare_queue(name, arguments={"x-dead-letter-exchange": "",
                                                 "x-dead-letter-routing-key": f"{name}.dead"})
    yield Broker(amqp_url, channel, name, f"{name}.dead")
    for queue in (name, f"{name}.dead", f"{name}.late"):
        await channel.queue_delete(queue)
    await connection.close()


@dataclass
class Consuming:
    """An amqp source running one driver, with what it emitted and reported."""

    events: list = field(default_factory=list)
    reports: list = field(default_factory=list)
    failures: int = 0
    task: asyncio.Task | None = None

    async def emit(self, event) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Dispatch's bus is down")
        self.events.append(event)

    async def report(self, reason) -> None:
        self.reports.append(reason)

    async def until(self, predicate, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            assert not self.task.done(), self.task.exception()
            assert asyncio.get_running_loop().time() < deadline, f"events {self.events}, reports {self.reports}"
            await asyncio.sleep(0.02)


@pytest.fixture
async def consume():
    running: list[Consuming] = []

    def start(url: str, queue: str, **config: str) -> Consuming:
        consuming = Consuming()
        spec = DriverSpec(id=str(uuid.uuid4()), organization="o", name="orders", type="amqp",
                          config={"url": url, "queue": queue, **config})
        consuming.task = asyncio.ensure_future(AMQPEvents().run(spec, consuming.emit, consuming.report))
        running.append(consuming)
        return consuming

    yield start
    for consuming in running:
        consuming.task.cancel()
        await asyncio.gather(consuming.task, return_exceptions=True)


async def test_plain_structured_and_binary_messages_become_events_and_are_acknowledged(broker, consume):
    consuming = consume(broker.url, broker.queue, eventType="order.placed")
    await consuming.until(lambda: consuming.reports == [None])
    await broker.publish(b'{"n": 1}', message_id="m-1", content_type="application/json")
    await broker.publish(json.dumps({"specversion": "1.0", "id": "s-2", "source": "/shop", "type": "order.paid",
                                     "data": {"n": 2}}).encode(), content_type="application/cloudevents+json")
    await broker.publish(b"three", content_type="text/plain",
                         headers={"cloudEvents:specversion": "1.0", "cloudEvents:id": "b-3",
                                  "cloudEvents:source": "/shop", "cloudEvents:type": "order.shipped"})
    await consuming.until(lambda: len(consuming.events) == 3)
    assert [(e.id, e.type, e.source, e.payload) for e in consuming.events] == [
        ("m-1", "order.placed", "/drivers/orders", {"n": 1}), ("s-2", "order.paid", "/shop", {"n": 2}),
        ("b-3", "order.shipped", "/shop", "three")]
    await asyncio.sleep(0.2)
    assert await broker.count(broker.queue) == 0 and await broker.count(broker.dead) == 0


async def test_a_message_that_is_no_event_goes_to_the_dead_letters_and_the_queue_goes_on(broker, consume):
    consuming = consume(broker.url, broker.queue)
    await broker.publish(b'{"n": 1}')  # no eventType in the config, no type on the message
    await broker.publish(b'{"n": 2}', type="order.placed")
    await consuming.until(lambda: len(consuming.events) == 1)
    assert consuming.events[0].type == "order.placed" and consuming.events[0].payload == {"n": 2}
    await asyncio.sleep(0.2)
    assert await broker.count(broker.dead) == 1 and await broker.count(broker.queue) == 0


async def test_a_message_whose_event_cannot_be_published_is_put_back_and_published_later(broker, consume):
    consuming = consume(broker.url, broker.queue, eventType="order.placed")
    consuming.failures = 1
    await broker.publish(b'{"n": 1}', message_id="m-1")
    await consuming.until(lambda: len(consuming.events) == 1)
    assert consuming.events[0].id == "m-1" and consuming.failures == 0
    await asyncio.sleep(0.2)
    assert await broker.count(broker.queue) == 0 and await broker.count(broker.dead) == 0


async def test_a_missing_queue_is_an_error_saying_so_until_the_queue_exists(broker, consume):
    late = f"{broker.queue}.late"
    consuming = consume(broker.url, late, eventType="order.placed")
    await consuming.until(lambda: consuming.reports)
    host = urllib.parse.urlsplit(broker.url).hostname
    assert consuming.reports[0].startswith(f"queue {late} does not exist on amqp://") and host in consuming.reports[0]
    assert "guest:guest" not in consuming.reports[0]
    await broker.channel.declare_queue(late)
    await consuming.until(lambda: consuming.reports[-1] is None)
    await broker.publish(b'{"n": 1}', queue=late)
    await consuming.until(lambda: len(consuming.events) == 1)


async def test_a_lost_connection_is_made_again_and_the_driver_is_ready_again(broker, consume, outage):
    parts = urllib.parse.urlsplit(broker.url)
    relay = await outage(parts.hostname, parts.port or 5672)
    relayed = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{relay.port}").geturl()
    consuming = consume(relayed, broker.queue, eventType="order.placed")
    await consuming.until(lambda: consuming.reports == [None])
    await relay.cut()
    await consuming.until(lambda: len(consuming.reports) >= 2)
    assert consuming.reports[1].startswith("lost the connection to amqp://")
    await relay.restore()
    await consuming.until(lambda: consuming.reports[-1] is None, timeout=15)
    await broker.publish(b'{"n": 1}')
    await consuming.until(lambda: len(consuming.events) == 1)


async def test_an_amqp_driver_runs_the_functions_subscribed_to_its_messages(broker, tmp_path):
    platform = bootstrap(Settings(data_dir=tmp_path / "data", resync_seconds=3600), runtime=InProcessRuntime())
    await platform.start()
    try:
        async with TestClient(TestServer(create_app(platform.settings, platform))) as client:
            await seed_image(client)
            await ready_function(client, "echo", b"def handle(context, payload):\n    return payload\n")
            await answer(await call(client, "POST", "/v1/event/subscriptions", json={
                "name": "on-order", "eventType": "order.placed", "function": "echo"}), 201)
            # the broker's URL, with its password, from a secret: never shown with the driver
            await answer(await call(client, "POST", "/v1/secret", json={"name": "broker",
                                                                        "secrets": {"url": broker.url}}), 201)
            driver = {"name": "orders", "type": "amqp", "secrets": ["broker"],
                      "config": [{"key": "queue", "value": broker.queue},
                                 {"key": "eventType", "value": "order.placed"}]}
            await answer(await call(client, "POST", "/v1/event/drivers", json=driver), 201)
            shown = await reaches(client, "/v1/event/drivers/orders")
            assert broker.url not in json.dumps(shown)
            await broker.publish(b'{"n": 7}', message_id="order-7")
            for _ in range(500):
                runs = await answer(await call(client, "GET", "/v1/runs?functionName=echo"), 200)
                if runs and runs[0]["status"] == "READY":
                    break
                await asyncio.sleep(0.02)
            assert [(r["output"], r["event"]["id"]) for r in runs] == [({"n": 7}, "order-7")]
    finally:
        await platform.close()
