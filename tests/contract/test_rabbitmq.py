"""What only a real broker shows: several bus instances (processes) on one namespace, poison
messages on the wire, durable queues, and a broker restart."""
import asyncio
import json
import uuid

import aio_pika
import pytest

from dispatch.bus.rabbitmq import RabbitMQBus
from dispatch.bus.rabbitmq_codec import error_of
from dispatch.errors import DispatchError
from dispatch.schemas.envelope import Command, Event
from dispatch.store.ports import ConcurrencyConflict

pytestmark = pytest.mark.rabbitmq


class Work(Command):
    text: str = ""


class WorkDone(Event):
    text: str = ""


@pytest.fixture
async def buses(amqp_url):
    """Makes bus instances sharing one fresh namespace, as separate processes would."""
    namespace = f"test-{uuid.uuid4().hex}"
    made: list[RabbitMQBus] = []

    def make(**options) -> RabbitMQBus:
        options = {"max_attempts": 3, "retry_delays": (0.01, 0.02), **options}
        made.append(RabbitMQBus(amqp_url, namespace=namespace, **options))
        return made[-1]

    yield make
    for bus in made:
        await bus.close()
    for bus in made:
        await bus.destroy()


async def eventually(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_an_undecodable_message_is_dead_lettered_and_the_consumer_keeps_handling(buses, amqp_url):
    bus = buses()
    bus.handle(Work, _echo)
    await bus.start()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = bus.topology.command_queue("Work")
        await channel.default_exchange.publish(aio_pika.Message(b"{not json", message_id="p-1"), queue)
        unknown = json.dumps({"type": "NoSuchMessage", "data": {}}).encode()
        await channel.default_exchange.publish(aio_pika.Message(unknown, message_id="p-2"), queue)

    assert await bus.request(Work(text="fine"), timeout=10) == {"echo": "fine"}
    letters = []
    for _ in range(200):
        letters = sorted(await bus.dead_letters(), key=lambda d: d.message_id)
        if len(letters) == 2:
            break
        await asyncio.sleep(0.02)
    assert [d.message_id for d in letters] == ["p-1", "p-2"]
    assert "JSONDecodeError" in letters[0].error and "NoSuchMessage" in letters[1].error
    assert letters[0].consumer == queue and letters[0].envelope == {"raw": "{not json"}
    assert [d.message_id for d in sorted(await bus.dead_letters(), key=lambda d: d.message_id)] == ["p-1", "p-2"]


async def _echo(message):
    return {"echo": message.text}


async def test_a_reply_reaches_the_requester_when_another_process_handles_the_command(buses):
    requester, handler = buses(), buses()

    async def answer(message):
        return {"handled_by": "second", "text": message.text}

    handler.handle(Work, answer)
    await handler.start()
    await requester.start()
    assert await requester.request(Work(text="hi"), timeout=10) == {"handled_by": "second", "text": "hi"}


async def test_a_domain_error_crosses_processes_as_the_same_class(buses):
    requester, handler = buses(), buses()

    class Refusal(DispatchError):
        status = 418

    async def refuse(message):
        if message.text == "stale":
            raise ConcurrencyConflict("stream moved on")
        raise Refusal("no tea")

    handler.handle(Work, refuse)
    await handler.start()
    await requester.start()
    with pytest.raises(ConcurrencyConflict, match="stream moved on"):
        await requester.request(Work(text="stale"), timeout=10)
    with pytest.raises(Refusal, match="no tea") as refused:
        await requester.request(Work(text="teapot"), timeout=10)
    assert refused.value.status == 418


def test_a_domain_error_of_a_class_the_requester_does_not_know_keeps_its_status():
    error = error_of({"status": 418, "type": "RefusalOnlyTheHandlerKnows", "message": "no tea"})
    assert (type(error), error.status, error.message) == (DispatchError, 418, "no tea")


async def test_a_redelivered_request_gets_the_first_answer_without_a_second_effect(buses):
    requester, handler = buses(), buses()
    calls = []

    async def count(message):
        calls.append(message.text)
        return {"calls": len(calls)}

    handler.handle(Work, count)
    await handler.start()
    await requester.start()
    request = Work(text="once")
    assert await requester.request(request, timeout=10) == {"calls": 1}
    assert await requester.request(request, timeout=10) == {"calls": 1}
    assert calls == ["once"]


async def test_a_request_nobody_answers_times_out(buses):
    bus = buses()

    async def slow(message):
        await asyncio.sleep(1)

    bus.handle(Work, slow)
    await bus.start()
    with pytest.raises(asyncio.TimeoutError):
        await bus.request(Work(), timeout=0.2)


async def test_competing_consumers_share_the_work_and_handle_each_message_once(buses):
    first, second, sender = buses(prefetch=8), buses(prefetch=8), buses()
    handled: list[tuple[str, str]] = []

    def worker(name):
        async def handle(message):
            await asyncio.sleep(0.002)
            handled.append((name, message.text))
        return handle

    first.handle(Work, worker("first"))
    second.handle(Work, worker("second"))
    for bus in (first, second, sender):
        await bus.start()
    await asyncio.gather(*(sender.send(Work(text=str(i))) for i in range(200)))

    await eventually(lambda: len(handled) >= 200, timeout=30)
    await asyncio.sleep(0.2)
    assert sorted(int(text) for _, text in handled) == list(range(200))
    assert {name for name, _ in handled} == {"first", "second"}


async def test_each_process_of_a_per_process_group_gets_the_event_and_a_shared_group_gets_it_once(buses):
    one, two = buses(), buses()
    copies: list[str] = []
    shared: list[str] = []
    for name, bus in (("one", one), ("two", two)):
        bus.subscribe(WorkDone, "routes", _appender(copies, name), per_process=True)
        bus.subscribe(WorkDone, "projections", _appender(shared, name))
        await bus.start()

    await one.publish(WorkDone(text="x"))
    await eventually(lambda: sorted(copies) == ["one", "two"] and len(shared) == 1)
    await asyncio.sleep(0.2)
    assert len(shared) == 1


def _appender(into: list, name: str):
    async def append(message):
        into.append(name)
    return append


async def test_a_command_sent_while_no_consumer_runs_is_handled_once_one_starts(buses):
    earlier = buses()
    earlier.handle(Work, _echo)
    await earlier.start()
    await earlier.close()  # the handler's process is gone; its durable queue stays

    sender = buses()
    await sender.start()
    await sender.send(Work(text="kept"))

    handled = []
    later = buses()
    later.handle(Work, _appender(handled, "later"))
    await later.start()
    await eventually(lambda: handled == ["later"])


async def test_the_admin_command_lists_and_replays_dead_letters(buses, amqp_url, tmp_path):
    from typer.testing import CliRunner

    from dispatch.cli.main import app

    bus = buses()
    buses(retry_delays=RabbitMQBus(amqp_url).topology.retry_delays)  # what the CLI declares, for clean-up
    healthy, done = [], []

    async def handler(message):
        if not healthy:
            raise RuntimeError("database down")
        done.append(message.text)

    bus.handle(Work, handler)
    await bus.start()
    sent = Work(text="again")
    await bus.send(sent)
    for _ in range(200):
        if await bus.dead_letters():
            break
        await asyncio.sleep(0.02)

    def admin(*args: str):
        where = ["--bus", amqp_url, "--namespace", bus.topology.namespace]
        return CliRunner().invoke(app, ["--config", str(tmp_path / "config.json"), *args, *where])

    listed = await asyncio.to_thread(admin, "-o", "json", "admin", "dead-letters")
    assert listed.exit_code == 0, listed.output
    [letter] = json.loads(listed.stdout)
    assert (letter["message_id"], letter["type"], letter["consumer"], letter["attempts"]) == (
        sent.message_id, "Work", "Work", 3)
    assert "database down" in letter["error"]

    healthy.append(True)
    replayed = await asyncio.to_thread(admin, "admin", "dead-letters", "--replay", sent.message_id)
    # The last line: the runner captures the whole process's stdout, this bus's log lines too.
    assert replayed.exit_code == 0 and replayed.stdout.splitlines()[-1] == f"Replayed {sent.message_id}"
    await eventually(lambda: done == ["again"])
    assert await bus.dead_letters() == []
    missing = await asyncio.to_thread(admin, "admin", "dead-letters", "--replay", "no-such-letter")
    assert missing.exit_code == 1 and "no dead letter no-such-letter" in missing.stderr


async def _queued(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        return (await channel.declare_queue(queue, passive=True)).declaration_result.message_count


async def _sender_to_an_idle_queue(buses) -> RabbitMQBus:
    """A bus sending Work to its queue while nothing consumes it (the handler's process is gone)."""
    earlier = buses()
    earlier.handle(Work, _echo)
    await earlier.start()
    await earlier.close()
    sender = buses()
    await sender.start()
    return sender


async def test_concurrent_sends_reach_the_broker_as_fewer_messages_and_each_is_handled_once(buses, amqp_url):
    sender = await _sender_to_an_idle_queue(buses)
    await asyncio.gather(*(sender.send(Work(text=str(i))) for i in range(300)))
    assert await _queued(amqp_url, sender.topology.command_queue("Work")) < 100

    handled: list[str] = []
    later = buses(prefetch=4)
    later.handle(Work, _appender_of_text(handled))
    await later.start()
    await eventually(lambda: len(handled) >= 300, timeout=30)
    await asyncio.sleep(0.2)
    assert sorted(int(text) for text in handled) == list(range(300))


def _appender_of_text(into: list):
    async def append(message):
        into.append(message.text)
    return append


async def test_large_commands_sent_together_leave_in_batches_of_a_megabyte_at_most(buses, amqp_url):
    sender = await _sender_to_an_idle_queue(buses)
    await asyncio.gather(*(sender.send(Work(text=str(i) * 400_000)) for i in range(10)))
    # The first two leave alone, the rest two by two: 400 kB each, at most 1 MiB a message.
    assert await _queued(amqp_url, sender.topology.command_queue("Work")) == 6

    handled: list[str] = []
    later = buses()
    later.handle(Work, _appender_of_text(handled))
    await later.start()
    await eventually(lambda: len(handled) >= 10, timeout=30)
    assert sorted(text[0] for text in handled) == [str(i) for i in range(10)]


async def test_a_failing_command_sent_with_others_is_retried_and_dead_lettered_alone(buses, amqp_url):
    sender = await _sender_to_an_idle_queue(buses)
    sent = [Work(text="poison" if i == 7 else str(i)) for i in range(50)]
    await asyncio.gather(*(sender.send(command) for command in sent))
    assert await _queued(amqp_url, sender.topology.command_queue("Work")) < 50

    attempts: list[str] = []

    async def handler(message):
        attempts.append(message.text)
        if message.text == "poison":
            raise RuntimeError("cannot digest")

    later = buses()
    later.handle(Work, handler)
    await later.start()
    for _ in range(500):
        if await later.dead_letters():
            break
        await asyncio.sleep(0.02)
    [letter] = await later.dead_letters()
    assert (letter.message_id, letter.type, letter.attempts) == (sent[7].message_id, "Work", 3)
    assert "cannot digest" in letter.error and letter.envelope["data"]["text"] == "poison"
    assert attempts.count("poison") == 3
    assert sorted(t for t in attempts if t != "poison") == sorted(str(i) for i in range(50) if i != 7)
    await later.close()  # what was not acknowledged would be back in the queue now
    assert await _queued(amqp_url, later.topology.command_queue("Work")) == 0
