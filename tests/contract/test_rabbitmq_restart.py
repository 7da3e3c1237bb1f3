"""A broker restart under a stream of sends: every send that returned is handled; a send while
the broker stays down waits, bounded, then raises Unavailable. Needs the broker's rabbitmqctl."""
import asyncio
import shutil
import subprocess
from urllib.parse import urlparse

import pytest

from dispatch.errors import Unavailable
from tests.contract.test_rabbitmq import Work, _appender, buses, eventually  # noqa: F401  (fixture)

pytestmark = pytest.mark.rabbitmq


def _broker_control(amqp_url: str) -> str | None:
    """None when this machine's rabbitmqctl controls the broker under test, else why not."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not installed"
    if urlparse(amqp_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        return "the broker under test is not local"
    status = subprocess.run(["rabbitmqctl", "status"], capture_output=True, timeout=30)
    return None if status.returncode == 0 else "rabbitmqctl cannot reach the broker"


async def _rabbitmqctl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec("rabbitmqctl", *args, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL)
    assert await asyncio.wait_for(process.wait(), 60) == 0


async def test_every_send_that_returned_is_handled_across_a_broker_restart(buses, amqp_url):
    reason = _broker_control(amqp_url)
    if reason:
        pytest.skip(f"broker restart: {reason}")
    handled: set[str] = set()
    worker, sender = buses(), buses(outage_wait=30)

    async def record(message):
        handled.add(message.text)

    worker.handle(Work, record)
    await worker.start()
    await sender.start()
    returned: list[str] = []
    refused: list[str] = []

    async def stream():
        for i in range(300):
            try:
                await sender.send(Work(text=str(i)))
                returned.append(str(i))
            except Unavailable:
                refused.append(str(i))
            await asyncio.sleep(0.01)

    sending = asyncio.ensure_future(stream())
    await eventually(lambda: len(returned) >= 50)
    try:
        await _rabbitmqctl("stop_app")
        await asyncio.sleep(1)
    finally:
        await _rabbitmqctl("start_app")
    await asyncio.wait_for(sending, 60)

    assert refused == [] and len(returned) == 300
    await eventually(lambda: handled >= set(returned), timeout=60)


async def test_a_send_during_an_outage_waits_then_raises_unavailable(buses, amqp_url):
    reason = _broker_control(amqp_url)
    if reason:
        pytest.skip(f"broker outage: {reason}")
    bus = buses(outage_wait=1.0)
    handled = []
    bus.handle(Work, _appender(handled, "after"))
    await bus.start()
    try:
        await _rabbitmqctl("stop_app")
        with pytest.raises(Unavailable, match="the message bus is unavailable"):
            await bus.send(Work(text="lost"))
    finally:
        await _rabbitmqctl("start_app")
    sent = False
    for _ in range(60):
        try:
            await bus.send(Work(text="after"))
            sent = True
            break
        except Unavailable:
            continue
    assert sent
    await eventually(lambda: handled == ["after"], timeout=30)
