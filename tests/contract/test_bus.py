"""The MessageBus contract, run against every adapter."""
import asyncio
import uuid

import pytest

from dispatch.bus.memory import InMemoryBus
from dispatch.bus.ports import AnswerFirst
from dispatch.errors import NotFound, Unavailable
from dispatch.schemas.envelope import Command, Event


class Ping(Command):
    text: str = ""


class Pinged(Event):
    text: str = ""


class Unhandled(Command):
    pass


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def bus(request):
    if request.param == "memory":
        adapter = InMemoryBus(max_attempts=3, retry_delay=0.001)
    else:
        from dispatch.bus.rabbitmq import RabbitMQBus

        adapter = RabbitMQBus(request.getfixturevalue("amqp_url"), namespace=f"test-{uuid.uuid4().hex}",
                              max_attempts=3, retry_delays=(0.01, 0.02))
    await adapter.start()
    yield adapter
    await adapter.close()
    if request.param == "rabbitmq":
        await adapter.destroy()


async def eventually(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def test_request_returns_the_handlers_reply(bus):
    async def ping(message):
        return {"echo": message.text}

    bus.handle(Ping, ping)
    assert await bus.request(Ping(text="hi"), timeout=5) == {"echo": "hi"}


async def test_a_command_reaches_exactly_one_handler(bus):
    seen = []
    bus.handle(Ping, lambda m: _record(seen, m))
    with pytest.raises(ValueError):
        bus.handle(Ping, lambda m: _record(seen, m))
    await bus.send(Ping(text="once"))
    await eventually(lambda: seen == ["once"])


async def _record(seen, message):
    seen.append(message.text)


async def test_every_subscriber_group_gets_each_event_once(bus):
    a, b = [], []
    bus.subscribe(Pinged, "a", lambda m: _record(a, m))
    bus.subscribe(Pinged, "b", lambda m: _record(b, m))
    await bus.publish(Pinged(text="x"))
    await eventually(lambda: a == ["x"] and b == ["x"])


async def test_a_redelivered_message_has_no_second_effect(bus):
    seen = []
    bus.subscribe(Pinged, "a", lambda m: _record(seen, m))
    event = Pinged(text="dup")
    await bus.publish(event)
    await bus.publish(event)
    await asyncio.sleep(0.05)
    assert seen == ["dup"]


async def test_a_failing_handler_is_retried_until_it_succeeds(bus):
    attempts = []

    async def flaky(message):
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("transient")
        return "done"

    bus.handle(Ping, flaky)
    assert await bus.request(Ping(), timeout=5) == "done"
    assert len(attempts) == 3


async def test_a_retried_message_tells_its_handler_it_may_repeat_an_earlier_attempt(bus):
    seen = []

    async def flaky(message):
        seen.append(message.repeated)
        if len(seen) < 2:
            raise RuntimeError("transient")
        return "done"

    bus.handle(Ping, flaky)
    assert await bus.request(Ping(), timeout=5) == "done"
    assert seen == [False, True]


async def test_a_poison_message_is_dead_lettered_and_the_consumer_keeps_going(bus):
    async def handler(message):
        if message.text == "poison":
            raise RuntimeError("cannot digest")
        return message.text

    bus.handle(Ping, handler)
    with pytest.raises(Unavailable):
        await bus.request(Ping(text="poison"), timeout=5)
    assert await bus.request(Ping(text="fine"), timeout=5) == "fine"
    letters = await bus.dead_letters()
    assert [(d.type, d.attempts) for d in letters] == [("Ping", 3)]
    assert "cannot digest" in letters[0].error


async def test_a_domain_refusal_reaches_the_requester_without_retries(bus):
    attempts = []

    async def refuse(message):
        attempts.append(1)
        raise NotFound("function nope not found")

    bus.handle(Ping, refuse)
    with pytest.raises(NotFound, match="function nope not found"):
        await bus.request(Ping(), timeout=5)
    assert attempts == [1]
    assert await bus.dead_letters() == []


async def test_a_command_without_handler_is_refused_and_dead_lettered(bus):
    with pytest.raises(Unavailable):
        await bus.send(Unhandled())
    assert [d.type for d in await bus.dead_letters()] == ["Unhandled"]


async def test_handlers_receive_the_message_as_sent_over_the_wire(bus):
    received = []

    async def handler(message):
        received.append(message)

    bus.handle(Ping, handler)
    sent = Ping(text="wire", correlation_id="c-1")
    await bus.request(sent, timeout=5)
    assert received[0] == sent and received[0] is not sent


async def test_a_dead_letter_can_be_replayed_once_the_fault_is_fixed(bus):
    healthy, done = [], []

    async def handler(message):
        if not healthy:
            raise RuntimeError("database down")
        done.append(message.text)

    bus.handle(Ping, handler)
    await bus.send(Ping(text="again"))
    letters = []
    for _ in range(500):
        letters = await bus.dead_letters()
        if letters:
            break
        await asyncio.sleep(0.01)
    assert [d.type for d in letters] == ["Ping"] and done == []
    healthy.append(True)
    assert await bus.replay(letters[0].message_id) is True
    await eventually(lambda: done == ["again"])
    assert await bus.dead_letters() == []
    assert await bus.replay("no-such-letter") is False


async def test_a_message_that_keeps_failing_is_attempted_exactly_max_attempts_times(bus):
    calls = []

    async def broken(message):
        calls.append(message.message_id)
        raise RuntimeError("still broken")

    bus.handle(Ping, broken)
    await bus.send(Ping())
    for _ in range(500):
        if await bus.dead_letters():
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert len(calls) == 3 and len(await bus.dead_letters()) == 1


async def test_a_handler_can_answer_before_it_finishes_its_work(bus):
    release, done = asyncio.Event(), []

    async def later():
        await release.wait()
        done.append(True)

    async def handler(message):
        return AnswerFirst({"accepted": True}, later())

    bus.handle(Ping, handler)
    assert await bus.request(Ping(), timeout=5) == {"accepted": True}
    assert done == []
    release.set()
    await eventually(lambda: done == [True])


async def test_work_after_the_answer_that_fails_is_retried(bus):
    tries = []

    async def later():
        tries.append(1)
        if len(tries) < 2:
            raise RuntimeError("transient")

    async def handler(message):
        return AnswerFirst("accepted", later())

    bus.handle(Ping, handler)
    assert await bus.request(Ping(), timeout=5) == "accepted"
    await eventually(lambda: len(tries) == 2, timeout=15)
    assert await bus.dead_letters() == []


async def test_a_request_not_answered_in_time_times_out_and_its_handler_still_finishes(bus):
    release, done = asyncio.Event(), []

    async def handler(message):
        await release.wait()
        done.append(message.text)
        return "late"

    bus.handle(Ping, handler)
    with pytest.raises(asyncio.TimeoutError):
        await bus.request(Ping(text="slow"), timeout=0.2)
    release.set()
    await eventually(lambda: done == ["slow"])
    assert await bus.request(Ping(text="next"), timeout=5) == "late"


async def test_a_request_repeated_after_its_answer_gets_the_same_answer_without_running_again(bus):
    runs = []

    async def handler(message):
        runs.append(message.text)
        return {"run": {"name": message.text, "output": [len(runs), 2 ** 70]}}

    bus.handle(Ping, handler)
    sent = Ping(text="once")
    first = await bus.request(sent, timeout=5)
    again = await bus.request(sent, timeout=5)
    assert first == again == {"run": {"name": "once", "output": [1, 2 ** 70]}}
    assert runs == ["once"]


async def test_every_dead_letter_is_reported_to_listeners_with_its_kind(bus):
    reported = []
    bus.dead_lettered.append(reported.append)

    async def poison(message):
        raise RuntimeError("cannot digest")

    bus.handle(Ping, poison)
    bus.subscribe(Pinged, "eaters", poison)
    with pytest.raises(Unavailable):
        await bus.request(Ping(), timeout=5)
    with pytest.raises(Unavailable):
        await bus.send(Unhandled())
    await bus.publish(Pinged())
    await eventually(lambda: len(reported) == 3)
    assert sorted(reported) == ["command", "command", "event"]


async def test_a_started_bus_is_reachable_and_a_closed_one_is_not(bus):
    assert bus.reachable()
    await bus.close()
    assert not bus.reachable()
