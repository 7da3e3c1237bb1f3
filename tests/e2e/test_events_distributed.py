"""Events in distributed mode: a gateway and two handler processes on RabbitMQ and PostgreSQL.
CloudEvents published straight to RabbitMQ (and emitted over HTTP) run each subscribed function
once per event, duplicates included, and events published while no handler runs are run once
the handlers are back."""
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aio_pika
import pytest
from cloudevents.core.bindings import amqp as ce_amqp
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from tests.tally import CALL, Tally

from .cluster import AMQP, seeded_cluster
from .conftest import PYTHON_IMAGE

pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq, pytest.mark.postgres]

ORG = "dispatch"  # the server's default organization, which the seed's resources are created in
COUNT = CALL + """
def handle(context, payload):
    tally(payload["calls"], context["event"]["id"])
    return payload["n"]
"""
SEED = PYTHON_IMAGE + """---
kind: Function
name: count
image: py
sourcePath: count.py
---
kind: Subscription
name: first
eventType: order.placed
function: count
---
kind: Subscription
name: second
eventType: order.placed
function: count
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ready = ("/v1/function/count", "/v1/event/subscriptions/first", "/v1/event/subscriptions/second")
    with seeded_cluster(tmp_path_factory.mktemp("events-cluster"), {"count.py": COUNT}, SEED, ready) as running:
        yield running


async def publish(namespace: str, events: list[CloudEvent], binary: bool) -> None:
    """What an outside producer does: the SDK's AMQP binding, aio-pika, the documented exchange."""
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(f"{namespace}.cloudevents", aio_pika.ExchangeType.TOPIC,
                                                  durable=True)
        for event in events:
            message = (ce_amqp.to_binary if binary else ce_amqp.to_structured)(event, JSONFormat())
            await exchange.publish(aio_pika.Message(message.application_data, headers=message.application_properties,
                                                    content_type=message.properties["content-type"]),
                                   f"{ORG}.{event.get_type()}")


@pytest.fixture
def calls():
    """Counts each event's executions, which the sandboxed function reports over HTTP."""
    with Tally() as tally:
        yield tally


def orders(calls: Tally, prefix: str, count: int) -> list[CloudEvent]:
    return [CloudEvent(attributes={"type": "order.placed", "source": "/shop", "id": f"{prefix}-{n}",
                                   "datacontenttype": "application/json"}, data={"calls": calls.url, "n": n})
            for n in range(count)]


def calls_per_event(calls: Tally, expected: set[str], timeout: float = 60) -> dict[str, int]:
    """How many times the function ran for each event, once every expected event ran twice (one
    per subscription) and a moment passed for any extra run to show."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = calls.counts()
        if all(counts.get(event_id, 0) >= 2 for event_id in expected):
            time.sleep(1.5)
            return dict(calls.counts())
        time.sleep(0.2)
    raise AssertionError(f"{sum(counts.get(e, 0) >= 2 for e in expected)} of {len(expected)} events ran twice")


def test_each_event_runs_each_subscribed_function_once_across_two_handler_processes(cluster, calls):
    structured, binary = orders(calls, "s", 15), orders(calls, "b", 15)
    asyncio.run(publish(cluster.namespace, structured + structured[:5], binary=False))  # 5 published twice
    asyncio.run(publish(cluster.namespace, binary, binary=True))
    for n in range(3):
        emitted = cluster.gateway.http("POST", "/v1/event/", {
            "specversion": "1.0", "id": f"h-{n}", "source": "/shop", "type": "order.placed",
            "data": {"calls": calls.url, "n": n}}, headers={"X-Dispatch-Org": ORG})
        assert emitted.status == 200, emitted.body
    expected = {f"s-{n}" for n in range(15)} | {f"b-{n}" for n in range(15)} | {f"h-{n}" for n in range(3)}
    assert calls_per_event(calls, expected) == {event_id: 2 for event_id in expected}
    runs = cluster.gateway.http("GET", "/v1/runs?functionName=count", headers={"X-Dispatch-Org": ORG}).json()
    assert len(runs) == 2 * len(expected) and all(r["status"] == "READY" for r in runs)


def test_events_published_while_no_handler_runs_are_run_once_the_handlers_are_back(cluster, calls):
    for handler in cluster.handlers:
        handler.stop()
    try:
        asyncio.run(publish(cluster.namespace, orders(calls, "late", 10), binary=True))
        time.sleep(0.5)
        assert not calls.counts()
    finally:
        for handler in cluster.handlers:
            handler.start()
    expected = {f"late-{n}" for n in range(10)}
    assert calls_per_event(calls, expected) == {event_id: 2 for event_id in expected}
    shown = cluster.gateway.cli("get", "subscriptions", "-o", "json")
    assert sorted(s["name"] for s in json.loads(shown.stdout)) == ["first", "second"]


def test_the_readmes_aio_pika_example_reaches_every_subscription(cluster):
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("**Publishing straight to RabbitMQ.**"):]
    start = section.index("```python") + len("```python")
    example = section[start:section.index("```\n", section.index("```python") + 9)]
    example = (example.replace('NAMESPACE = "dispatch"', f'NAMESPACE = "{cluster.namespace}"')
               .replace("amqp://guest:guest@127.0.0.1:5672/", AMQP))
    script = Path(tempfile.mkdtemp(prefix="dispatch-readme-")) / "publish.py"
    script.write_text(example)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = cluster.gateway.http("GET", "/v1/runs?functionName=count", headers={"X-Dispatch-Org": ORG}).json()
        orders_seen = sorted(r["input"]["order"] for r in runs
                             if isinstance(r["input"], dict) and "order" in r["input"])
        if len(orders_seen) >= 4:
            break
        time.sleep(0.2)
    assert orders_seen == [42, 42, 43, 43]  # both messages, each run by both subscriptions
