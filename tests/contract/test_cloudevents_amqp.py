"""The CloudEvents ingress of the RabbitMQ bus, as a producer that knows only AMQP and the
CloudEvents spec uses it: events built with the `cloudevents` SDK, published with aio-pika to
`<namespace>.cloudevents` under `<organization>.<event type>`, run the subscribed function."""
import asyncio
import json
import uuid

import aio_pika
import pytest
from cloudevents.core.bindings import amqp as ce_amqp, rabbitmq as ce_rabbitmq
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dispatch.handlers.bootstrap import bootstrap
from dispatch.schemas import commands as c
from dispatch.settings import Settings
from dispatch.telemetry import tracing
from tests.fakes import InProcessRuntime
from tests.unit.conftest import source_of

pytestmark = pytest.mark.rabbitmq
ORG = "o"
ECHO = b'''def handle(context, payload):
    return {"payload": payload, "event": context.get("event")}
'''


@pytest.fixture
async def platform(tmp_path, amqp_url):
    settings = Settings(data_dir=tmp_path, bus=amqp_url, namespace=f"t{uuid.uuid4().hex[:10]}", resync_seconds=3600)
    running = bootstrap(settings, runtime=InProcessRuntime())
    await running.start()
    try:
        await subscribed_echo(running)
        yield running
    finally:
        await running.bus.destroy()
        await running.close()


async def subscribed_echo(running) -> None:
    """The function `echo`, subscribed to user.created."""
    await running.write(c.CreateBaseImage(organization=ORG, name="b", resource={
        "name": "b", "dockerUrl": "python:3", "language": "python3"}))
    await running.write(c.CreateImage(organization=ORG, name="py", resource={"name": "py", "baseImageName": "b"}))
    await running.write(c.CreateFunction(organization=ORG, name="echo", source=source_of({"echo.py": ECHO}),
                                         resource={"name": "echo", "image": "py"}))
    await running.write(c.CreateSubscription(organization=ORG, name="s", resource={
        "name": "s", "eventType": "user.created", "function": "echo"}))


@pytest.fixture
async def exchange(platform, amqp_url):
    """The producer's side: its own connection, the documented exchange."""
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    yield await channel.declare_exchange(f"{platform.settings.namespace}.cloudevents", aio_pika.ExchangeType.TOPIC,
                                         durable=True)
    await connection.close()


async def runs_of(platform, count: int, timeout: float = 15.0) -> list[dict]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        runs = [r for r in await platform.views.list_runs(ORG, "echo", None) if r["status"] in ("READY", "ERROR")]
        if len(runs) >= count:
            return runs
        assert asyncio.get_running_loop().time() < deadline, f"{len(runs)} of {count} runs"
        await asyncio.sleep(0.05)


def user_created(event_id: str) -> CloudEvent:
    return CloudEvent(attributes={"type": "user.created", "source": "/crm", "id": event_id,
                                  "datacontenttype": "application/json"}, data={"name": event_id})


async def test_a_structured_event_published_on_the_exchange_runs_the_subscribed_function(platform, exchange):
    message = ce_amqp.to_structured(user_created("structured"), JSONFormat())
    await exchange.publish(aio_pika.Message(message.application_data,
                                            content_type=message.properties["content-type"]), f"{ORG}.user.created")
    [run] = await runs_of(platform, 1)
    assert run["status"] == "READY" and run["input"] == {"name": "structured"}
    assert run["output"]["event"]["id"] == "structured" and "data" not in run["output"]["event"]


def _binary(style: str, event: CloudEvent) -> aio_pika.Message:
    if style == "ce-":
        message = ce_rabbitmq.to_binary(event, JSONFormat())
        return aio_pika.Message(message.body, content_type=message.content_type, headers=message.headers)
    message = ce_amqp.to_binary(event, JSONFormat())
    headers = {name.replace("cloudEvents_", style): value for name, value in message.application_properties.items()}
    return aio_pika.Message(message.application_data, content_type=message.properties["content-type"], headers=headers)


@pytest.mark.parametrize("style", ["cloudEvents:", "cloudEvents_", "ce-"])
async def test_a_binary_event_in_each_header_style_runs_the_subscribed_function(platform, exchange, style):
    event = user_created(f"binary {style}")
    await exchange.publish(_binary(style, event), f"{ORG}.user.created")
    [run] = await runs_of(platform, 1)
    assert run["input"] == {"name": f"binary {style}"}
    assert run["output"]["event"]["time"].startswith(event.get_time().strftime("%Y-%m-%dT%H:%M:%S"))


async def test_invalid_events_are_dead_lettered_with_the_reason_and_later_ones_still_run(platform, exchange):
    missing_id = {"specversion": "1.0", "source": "/crm", "type": "user.created"}
    await exchange.publish(aio_pika.Message(json.dumps(missing_id).encode(),
                                            content_type="application/cloudevents+json", message_id="no-id"),
                           f"{ORG}.user.created")
    wrong_key = ce_amqp.to_structured(user_created("misrouted"), JSONFormat())
    await exchange.publish(aio_pika.Message(wrong_key.application_data, content_type="application/cloudevents+json",
                                            message_id="misrouted"), f"{ORG}.user.deleted")
    await exchange.publish(aio_pika.Message(b"hello", content_type="text/plain", message_id="plain"), f"{ORG}.x")
    good = ce_amqp.to_structured(user_created("after"), JSONFormat())
    await exchange.publish(aio_pika.Message(good.application_data, content_type="application/cloudevents+json"),
                           f"{ORG}.user.created")
    [run] = await runs_of(platform, 1)
    assert run["input"] == {"name": "after"}
    letters = {d.message_id: d for d in await platform.bus.dead_letters()}
    assert "id in body is required" in letters["no-id"].error
    assert "routing key 'o.user.deleted' should be <organization>.user.created" in letters["misrouted"].error
    assert "not a CloudEvent" in letters["plain"].error
    assert {d.consumer for d in letters.values()} == {"cloudevents-ingress"}


async def test_an_events_traceparent_header_is_continued_by_the_run_it_causes(tmp_path, amqp_url):
    received = InMemorySpanExporter()
    tracing.configure_tracing("dispatch-test", [received])
    settings = Settings(data_dir=tmp_path, bus=amqp_url, namespace=f"t{uuid.uuid4().hex[:10]}", resync_seconds=3600)
    traced = bootstrap(settings, runtime=InProcessRuntime())
    try:
        await traced.start()
        await subscribed_echo(traced)
        connection = await aio_pika.connect(amqp_url)
        exchange = await (await connection.channel()).declare_exchange(
            f"{settings.namespace}.cloudevents", aio_pika.ExchangeType.TOPIC, durable=True)
        event = user_created("traced")
        traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        message = _binary("cloudEvents:", event)
        message.headers["cloudEvents:traceparent"] = traceparent
        await exchange.publish(message, f"{ORG}.user.created")
        await connection.close()
        [run] = await runs_of(traced, 1)
    finally:
        await traced.bus.destroy()
        await traced.close()
        tracing.shutdown_tracing()  # exports what is buffered
    assert run["output"]["event"]["traceparent"] == traceparent  # the function sees its producer's context
    spans = {span.name: span for span in received.get_finished_spans()
             if span.context.trace_id == 0x0af7651916cd43dd8448eb211c80319c}
    assert {"process EmitEvent", "process ExecuteFunction", "run echo"} <= set(spans), sorted(spans)
    assert spans["process EmitEvent"].parent.span_id == 0xb7ad6b7169203331
