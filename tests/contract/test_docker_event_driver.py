"""Custom event driver types on a real Docker engine: the type's image runs with the driver's config
as arguments and its secrets as environment, posts its events to its ingestion endpoint, is
READY once running and ERROR with its last words when it exits, and leaves no container behind."""
import asyncio
import hashlib
import json
import tempfile
import uuid
from pathlib import Path

import aiodocker
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from dispatch.drivers.docker import images
from dispatch.drivers.events.docker import DRIVER_ID, DRIVER_NAMESPACE, DockerDrivers
from dispatch.drivers.events.ports import DriverSpec
from dispatch.gateway.app import create_app
from dispatch.handlers.bootstrap import bootstrap
from dispatch.settings import Settings
from tests import docker_engine
from tests.fakes import InProcessRuntime
from tests.unit.test_gateway import answer, call, reaches, ready_function, seed_image

pytestmark = [pytest.mark.docker, pytest.mark.asyncio(loop_scope="module")]

# A driver as Dispatch's driver client writes one: flags, AUTH_TOKEN, posts to the endpoint it is given.
TICKER = """
import json, os, sys, time, urllib.request
flags = dict((a[2:].split("=", 1) + [""])[:2] for a in sys.argv[1:])
if "fail" in flags:
    print("cannot reach the outside world", flush=True)
    sys.exit(3)
url = "http://%s/v1/event/ingest?authToken=%s" % (flags["dispatch-api-endpoint"], os.environ["AUTH_TOKEN"])
n = 0
while True:
    n += 1
    event = {"specversion": "1.0", "id": "tick-%d" % n, "source": "/ticker", "type": "ticker.tick",
             "data": {"n": n, "args": sys.argv[1:], "key": os.environ.get("ACCESS_KEY")}}
    urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(event).encode())).read()
    time.sleep(float(flags.get("seconds") or 1))
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ticker_image():
    """The ticker's image on the test base image, built once and kept by the engine across runs."""
    docker = aiodocker.Docker(url=docker_engine.url_for_tests())
    tag = f"dispatch-test/ticker-driver:{hashlib.sha256(TICKER.encode()).hexdigest()[:12]}"
    try:
        if not await images.exists(docker, tag):
            dockerfile = f'FROM {docker_engine.BASE_IMAGE}\nCOPY ticker.py /ticker.py\nENTRYPOINT ["python3", "/ticker.py"]\n'
            with tempfile.TemporaryDirectory() as folder:
                await images.build(docker, images.context({"Dockerfile": dockerfile, "ticker.py": TICKER}), tag, {},
                                   Path(folder) / "build.log", "host")
        yield tag
    finally:
        await docker.close()


@pytest_asyncio.fixture(loop_scope="module")
async def drivers():
    source = DockerDrivers(docker_engine.url_for_tests(), namespace=f"dispatch-test-{uuid.uuid4().hex[:8]}")
    yield source
    await source.close()


async def containers_of(driver_id: str) -> list:
    async with aiodocker.Docker(url=docker_engine.url_for_tests()) as docker:
        return await docker.containers.list(all=True, filters=json.dumps({"label": [f"{DRIVER_ID}={driver_id}"]}))


async def until(predicate, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)


async def test_a_custom_driver_runs_its_image_with_its_config_and_secrets_and_publishes_its_events(
        drivers, ticker_image):
    spec = DriverSpec(id=str(uuid.uuid4()), organization="o", name="ticker", type="ticker", image=ticker_image,
                      config={"seconds": "0.2", "verbose": ""}, secrets={"access-key": "k1"})
    async with aiodocker.Docker(url=docker_engine.url_for_tests()) as docker:  # what a dead leader left
        left = await docker.containers.create({"Image": ticker_image, "Entrypoint": ["sleep", "60"], "Labels": {
            DRIVER_ID: spec.id, DRIVER_NAMESPACE: drivers.namespace}})
        await left.start()
    events, reports = [], []

    async def emit(event) -> None:
        events.append(event)

    async def report(reason) -> None:
        reports.append(reason)

    task = asyncio.ensure_future(drivers.run(spec, emit, report))
    try:
        await until(lambda: len(events) >= 2 and reports)
        assert reports == [None]
        first = events[0]
        assert (first.id, first.type, first.payload["key"]) == ("tick-1", "ticker.tick", "k1")
        assert first.payload["args"][:2] == ["--seconds=0.2", "--verbose"]
        assert first.payload["args"][2].startswith("--dispatch-api-endpoint=127.0.0.1:")
        assert [c.id for c in await containers_of(spec.id)] != [left.id]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await containers_of(spec.id) == []


async def test_a_driver_whose_container_exits_is_an_error_with_its_last_words_and_is_started_again(
        drivers, ticker_image):
    spec = DriverSpec(id=str(uuid.uuid4()), organization="o", name="broken", type="ticker", image=ticker_image,
                      config={"fail": ""})
    reports = []

    async def report(reason) -> None:
        reports.append(reason)

    task = asyncio.ensure_future(drivers.run(spec, None, report))
    try:
        await until(lambda: len(reports) >= 2)
        assert reports[:2] == ["the driver's container exited with code 3: cannot reach the outside world"] * 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await containers_of(spec.id) == []


async def test_custom_drivers_created_through_the_api_are_ready_or_error_with_the_reason(tmp_path, ticker_image):
    settings = Settings(data_dir=tmp_path / "data", resync_seconds=3600, docker_url=docker_engine.url_for_tests(),
                        namespace=f"dispatch-test-{uuid.uuid4().hex[:8]}")
    platform = bootstrap(settings, runtime=InProcessRuntime())
    await platform.start()
    try:
        async with TestClient(TestServer(create_app(settings, platform))) as client:
            await seed_image(client)
            await ready_function(client, "echo", b"def handle(context, payload):\n    return payload['n']\n")
            await answer(await call(client, "POST", "/v1/event/subscriptions", json={
                "name": "on-tick", "eventType": "ticker.tick", "function": "echo"}), 201)
            await answer(await call(client, "POST", "/v1/event/drivertypes", json={
                "name": "ticker", "image": ticker_image, "config": [{"key": "seconds", "value": "0.3"}]}), 201)
            for name, config in (("ticks", []), ("broken", [{"key": "fail", "value": ""}])):
                await answer(await call(client, "POST", "/v1/event/drivers",
                                        json={"name": name, "type": "ticker", "config": config}), 201)
            assert (await reaches(client, "/v1/event/drivers/ticks", timeout=30))["reason"] is None
            broken = await reaches(client, "/v1/event/drivers/broken", status="ERROR", timeout=30)
            assert broken["reason"] == ["the driver's container exited with code 3: cannot reach the outside world"]
            for _ in range(500):
                runs = await answer(await call(client, "GET", "/v1/runs?functionName=echo"), 200)
                if len([r for r in runs if r["status"] == "READY"]) >= 2:
                    break
                await asyncio.sleep(0.02)
            assert {1, 2} <= {r["output"] for r in runs}
    finally:
        await platform.close()
