"""The metrics a process exposes, as a scrape reads them, with the platform built by bootstrap()
on its in-memory adapters."""
import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dispatch.drivers.docker.pool import Pool
from dispatch.errors import Unavailable
from dispatch.gateway.app import create_api_app, create_app
from dispatch.handlers.bootstrap import bootstrap
from dispatch.schemas import commands as c, events as e
from dispatch.telemetry.metrics import Metrics
from tests.fakes import InProcessRuntime

from .conftest import settled
from .metrics_text import labelled, scrape, value
from .test_gateway import answer, call, ready_function, seed_image
from .test_handlers import ORG, create_function, execute, seed
from .test_user_api import expose


@pytest.fixture
async def secrets_only(settings):
    """A process running the secrets handlers alone: nothing reacts to what it does."""
    running = bootstrap(settings.model_copy(update={"handlers": "secrets"}), runtime=InProcessRuntime())
    await running.start()
    yield running
    await running.close()


async def create_secret(platform, name: str) -> None:
    await platform.write(c.CreateSecret(organization=ORG, name=name, resource={"name": name, "secrets": {"k": "v"}}))


async def test_runs_are_counted_by_organization_function_and_status_and_timed(platform):
    await seed(platform)
    await create_function(platform)
    assert (await settled(platform, "Function", "hello"))["status"] == "READY"
    for _ in range(3):
        assert (await execute(platform, payload={"name": "Jon", "place": "Winterfell"}))["status"] == "READY"
    assert (await execute(platform, payload={}))["status"] == "ERROR"

    scraped = await scrape(platform.metrics)
    assert value(scraped, "dispatch_runs_total", organization=ORG, function="hello", status="READY") == 3
    assert value(scraped, "dispatch_runs_total", organization=ORG, function="hello", status="ERROR") == 1
    assert value(scraped, "dispatch_run_duration_seconds_count", organization=ORG, function="hello") == 4
    assert value(scraped, "dispatch_run_duration_seconds_sum", organization=ORG, function="hello") > 0


async def test_two_platforms_in_one_process_count_apart(platform, tmp_path):
    other = bootstrap(platform.settings.model_copy(update={"data_dir": tmp_path / "other"}), runtime=InProcessRuntime())
    await seed(platform)
    await create_function(platform)
    await settled(platform, "Function", "hello")
    await execute(platform, payload={"name": "Jon", "place": "Winterfell"})

    assert value(await scrape(platform.metrics), "dispatch_runs_total", organization=ORG, function="hello",
                 status="READY") == 1
    assert labelled(await scrape(other.metrics), "dispatch_runs_total") == []


async def test_builds_are_timed_by_kind(platform):
    await seed(platform)
    assert (await settled(platform, "Image", "py"))["status"] == "READY"

    scraped = await scrape(platform.metrics)
    assert value(scraped, "dispatch_build_duration_seconds_count", kind="base-image") == 1
    assert value(scraped, "dispatch_build_duration_seconds_count", kind="image") == 1


async def test_management_requests_are_counted_by_route_template_never_by_path(settings, platform):
    async with TestClient(TestServer(create_app(settings, platform))) as client:
        for name in ("nope-1", "nope-2", "nope-3"):
            await answer(await call(client, "GET", f"/v1/function/{name}"), 404)
        await answer(await call(client, "GET", "/v1/function"), 200)
        await call(client, "GET", "/no/such/path/at/all")

    scraped = await scrape(platform.metrics)
    requests = labelled(scraped, "dispatch_http_requests_total")
    assert value(scraped, "dispatch_http_requests_total", route="/v1/function/{name}", method="GET", status="404") == 3
    assert value(scraped, "dispatch_http_requests_total", route="/v1/function", method="GET", status="200") == 1
    assert {"route": "(unmatched)", "method": "GET", "status": "404"} in requests
    assert not any("nope" in labels["route"] or "such" in labels["route"] for labels in requests)
    assert value(scraped, "dispatch_http_request_duration_seconds_count", route="/v1/function/{name}",
                 method="GET") == 3


async def test_user_api_requests_are_counted_by_the_api_they_reach(settings, platform):
    echo = b"def handle(context, payload):\n    return payload\n"
    async with TestClient(TestServer(create_app(settings, platform))) as client, \
            TestClient(TestServer(create_api_app(settings, platform))) as caller:
        await seed_image(client)
        await ready_function(client, "echo", echo)
        await expose(client, "greet", "echo", uris=("/{name}/{{who}}",))
        for who in ("arya", "sansa"):
            assert (await caller.post(f"/{ORG}/greet/{who}", json={})).status == 200

    scraped = await scrape(platform.metrics)
    assert value(scraped, "dispatch_http_requests_total", route=f"{ORG}/greet", method="POST", status="200") == 2
    assert not any("arya" in labels["route"] for labels in labelled(scraped, "dispatch_http_requests_total"))


async def test_appends_to_the_event_log_are_counted_and_timed(secrets_only):
    before = value(await scrape(secrets_only.metrics), "dispatch_event_log_appends_total") or 0
    await create_secret(secrets_only, "s1")

    scraped = await scrape(secrets_only.metrics)
    assert value(scraped, "dispatch_event_log_appends_total") == before + 1
    assert value(scraped, "dispatch_event_log_append_seconds_count") == before + 1


async def test_bus_messages_are_counted_by_direction_and_kind_dead_letters_included(secrets_only):
    def bus(scraped, direction, kind):
        return value(scraped, "dispatch_bus_messages_total", direction=direction, kind=kind)

    await create_secret(secrets_only, "s1")
    with pytest.raises(Unavailable):  # nobody here handles images: the command is dead-lettered
        await secrets_only.bus.request(c.CreateBaseImage(organization=ORG, name="b", resource={
            "name": "b", "dockerUrl": "python:3", "language": "python3"}), 5)

    async def fails(event):
        raise RuntimeError("a reaction that keeps failing")
    secrets_only.bus.subscribe(e.SecretCreated, "always-failing", fails)
    await create_secret(secrets_only, "s2")
    scraped = await eventually(secrets_only.metrics, lambda s: bus(s, "dead_lettered", "event") == 1)

    assert bus(scraped, "published", "command") == 3 and bus(scraped, "consumed", "command") == 2
    assert bus(scraped, "dead_lettered", "command") == 1
    assert bus(scraped, "published", "event") == 2  # SecretCreated, twice: the relay's publications
    assert bus(scraped, "consumed", "event") == 5  # the failing reaction, once per attempt


async def test_projection_lag_comes_back_to_zero_when_the_log_goes_quiet(secrets_only):
    for name in ("s1", "s2", "s3"):  # in quick succession: the relay puts off saving its position
        await create_secret(secrets_only, name)

    def lag(scraped, projection):
        return value(scraped, "dispatch_projection_lag_events", projection=projection)
    scraped = await eventually(secrets_only.metrics, lambda s: lag(s, "relay") == 0)
    assert lag(scraped, "relay") == 0 and lag(scraped, "views") == 0


async def test_docker_replicas_started_for_waiting_calls_are_cold_starts():
    started = []

    async def start():
        await asyncio.sleep(0.01)
        return object()

    async def stop(replica):
        pass
    pool = Pool(start, stop, min_replicas=0, max_replicas=2, concurrency=1, idle_seconds=300,
                cold_start=lambda: started.append("cold"))
    await pool.warm()
    first = await pool.acquire()
    second = await pool.acquire()  # the one replica is busy: this call waits for a new one
    assert started == ["cold"] and len(pool.members) == 2
    pool.release(first), pool.release(second)
    await pool.close()


async def eventually(metrics: Metrics, holds, timeout: float = 5.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        scraped = await scrape(metrics)
        if holds(scraped) or asyncio.get_running_loop().time() > deadline:
            return scraped
        await asyncio.sleep(0.05)
