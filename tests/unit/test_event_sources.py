"""The event sources on their own: a cron schedule on a clock the test moves (slots, catch-up after
a take-over, a failing bus), and a custom driver's local ingestion endpoint."""
import asyncio
import datetime as dt

import aiohttp
import pytest

from dispatch.drivers.events.cron import CronEvents
from dispatch.drivers.events.ingest import Ingestion
from dispatch.drivers.events.ports import DriverRejected, DriverSpec

START = dt.datetime(2030, 1, 1, 12, 0, 0, 500_000, tzinfo=dt.timezone.utc).timestamp()


class Clock:
    """Wall-clock time that passes only when the source sleeps."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def emitted(clock: Clock, spec: DriverSpec, count: int, fail: int = 0) -> tuple[list[dict], list]:
    """The first `count` events a cron source emits (after `fail` failed attempts), and its reports."""
    events: list[dict] = []
    reports: list = []

    async def emit(event: dict) -> None:
        nonlocal fail
        if fail:
            fail -= 1
            raise ConnectionError("bus down")
        events.append(event)

    async def report(reason) -> None:
        reports.append(reason)

    task = asyncio.ensure_future(CronEvents(clock, clock.sleep).run(spec, emit, report))
    while len(events) < count:
        await asyncio.sleep(0)
        assert not task.done(), task.exception()
    task.cancel()
    return events, reports


def every_second(resumed: bool = False, **config: str) -> DriverSpec:
    return DriverSpec(id="d-1", organization="o", name="tick", type="cron", resumed=resumed,
                      config={"schedule": "* * * * * *", **config}, created_time=int(START))


async def test_a_schedule_emits_one_event_per_slot_from_now_on():
    events, reports = await emitted(Clock(START), every_second(eventType="t.s", data='{"n": 1}'), 3)
    assert [e["time"] for e in events] == ["2030-01-01T12:00:01Z", "2030-01-01T12:00:02Z", "2030-01-01T12:00:03Z"]
    assert {e["type"] for e in events} == {"t.s"} and all(e["data"] == {"n": 1} for e in events)
    assert reports == [None] and len({e["id"] for e in events}) == 3


async def test_a_take_over_emits_the_slots_of_the_last_minute_again_with_the_same_ids():
    first, _ = await emitted(Clock(START), every_second(), 5)
    # the leader died after its fifth slot; another process takes over 30 seconds later
    taken_over, _ = await emitted(Clock(START + 30), every_second(resumed=True), 31)
    assert [e["id"] for e in taken_over[:5]] == [e["id"] for e in first]
    assert [e["time"] for e in taken_over[:5]] == [e["time"] for e in first]
    assert [e["time"] for e in taken_over[29:]] == ["2030-01-01T12:00:30Z", "2030-01-01T12:00:31Z"]


async def test_slots_older_than_a_minute_and_slots_before_a_new_driver_are_not_emitted():
    late, _ = await emitted(Clock(START + 300), every_second(resumed=True), 1)
    assert late[0]["time"] == "2030-01-01T12:04:01Z"
    fresh, _ = await emitted(Clock(START + 20), every_second(resumed=False), 1)
    assert fresh[0]["time"] == "2030-01-01T12:00:21Z"


async def test_a_slot_is_emitted_once_the_bus_answers_again_and_the_driver_says_why_meanwhile():
    events, reports = await emitted(Clock(START), every_second(), 3, fail=2)
    assert [e["time"] for e in events] == ["2030-01-01T12:00:01Z", "2030-01-01T12:00:02Z", "2030-01-01T12:00:03Z"]
    assert reports[0] is None and reports[1] == "cannot emit the event of 2030-01-01T12:00:01Z: bus down"
    assert reports[-1] is None


async def test_a_schedule_in_a_timezone_fires_at_its_local_time():
    spec = DriverSpec(id="d-2", organization="o", name="noon", type="cron",
                      config={"schedule": "0 12 * * *", "timezone": "Asia/Tokyo"})
    events, _ = await emitted(Clock(START), spec, 1)
    assert events[0]["time"] == "2030-01-02T03:00:00Z"


async def test_a_schedule_that_is_not_cron_is_rejected():
    spec = DriverSpec(id="d-3", organization="o", name="bad", type="cron", config={"schedule": "often"})
    with pytest.raises(DriverRejected, match="is not a cron expression"):
        await CronEvents().run(spec, None, None)


# --- the ingestion endpoint of custom drivers ------------------------------------------------------

def ce(n: int) -> str:
    return f'{{"specversion": "1.0", "id": "{n}", "source": "/ticker", "type": "ticker.tick"}}'


@pytest.fixture
async def ingestion():
    received: list = []

    async def emit(event) -> None:
        if event.id == "fail":
            raise ConnectionError("bus down")
        received.append(event.id)

    endpoint = Ingestion(emit, "secret-token", "o/ticker")
    await endpoint.start()
    endpoint.received = received
    async with aiohttp.ClientSession(f"http://{endpoint.endpoint}") as http:
        endpoint.http = http
        yield endpoint
    await endpoint.close()


async def test_the_ingestion_endpoint_takes_one_event_an_array_or_concatenated_events(ingestion):
    async with ingestion.http.get("/") as health:
        assert health.status == 200
    body = f"{ce(1)}\n[{ce(2)}, {ce(3)}] {ce(4)}"
    async with ingestion.http.post("/v1/event/ingest?authToken=secret-token", data=body) as answer:
        assert answer.status == 201 and len(await answer.json()) == 4
    async with ingestion.http.post("/", data=ce(5), headers={"Authorization": "Bearer secret-token"}) as answer:
        assert answer.status == 201
    assert ingestion.received == ["1", "2", "3", "4", "5"]


async def test_the_ingestion_endpoint_refuses_without_the_token_and_publishes_nothing_of_an_invalid_body(ingestion):
    async with ingestion.http.post("/", data=ce(1)) as answer:
        assert answer.status == 401
    invalid = f'{ce(1)} {{"specversion": "1.0", "id": "2", "type": "ticker.tick"}}'
    async with ingestion.http.post("/?authToken=secret-token", data=invalid) as answer:
        assert answer.status == 400 and "source in body is required" in (await answer.json())["message"]
    failing = '{"specversion": "1.0", "id": "fail", "source": "/t", "type": "t"}'
    async with ingestion.http.post("/?authToken=secret-token", data=failing) as answer:
        assert answer.status == 500
    assert ingestion.received == []
