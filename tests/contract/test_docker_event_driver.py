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


# A push-style driver: serves on PORT, and posts what it is sent as an event's data to its endpoint.
PUSHER = """
import json, os, sys, urllib.error, urllib.request, uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
flags = dict((a[2:].split("=", 1) + [""])[:2] for a in sys.argv[1:])
url = "http://%s/v1/event/ingest?authToken=%s" % (flags["dispatch-api-endpoint"], os.environ["AUTH_TOKEN"])
class Pushed(BaseHTTPRequestHandler):
    def do_POST(self):
        data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/pusher", "type": "pusher.pushed",
                 "data": {"data": data, "path": self.path}}
        try:
            status = urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(event).encode())).status
        except urllib.error.HTTPError as error:
            status = error.code
        self.send_response(status)
        self.end_headers()
HTTPServer(("", int(os.environ["PORT"])), Pushed).serve_forever()
"""


async def image_of(name: str, script: str) -> str:
    """A driver image running `script` on the test base image, built once and kept by the engine across runs."""
    tag = f"dispatch-test/{name}-driver:{hashlib.sha256(script.encode()).hexdigest()[:12]}"
    async with aiodocker.Docker(url=docker_engine.url_for_tests()) as docker:
        if not await images.exists(docker, tag):
            dockerfile = (f'FROM {docker_engine.BASE_IMAGE}\nCOPY driver.py /driver.py\n'
                          'ENTRYPOINT ["python3", "/driver.py"]\n')
            with tempfile.TemporaryDirectory() as folder:
                await images.build(docker, images.context({"Dockerfile": dockerfile, "driver.py": script}), tag, {},
                                   Path(folder) / "build.log", "host")
    return tag


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ticker_image():
    return await image_of("ticker", TICKER)


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

    async def report(reason, address=None) -> None:
        reports.append(reason if address is None else (reason, address))

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

    async def report(reason, address=None) -> None:
        reports.append(reason if address is None else (reason, address))

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


async def test_a_push_to_an_exposed_drivers_url_reaches_its_container_whose_event_runs_the_subscribed_function(
        tmp_path):
    settings = Settings(data_dir=tmp_path / "data", resync_seconds=3600, docker_url=docker_engine.url_for_tests(),
                        namespace=f"dispatch-test-{uuid.uuid4().hex[:8]}")
    platform = bootstrap(settings, runtime=InProcessRuntime())
    await platform.start()
    try:
        async with TestClient(TestServer(create_app(settings, platform))) as client:
            await seed_image(client)
            await ready_function(client, "echo", b"def handle(context, payload):\n    return payload\n")
            await answer(await call(client, "POST", "/v1/event/subscriptions", json={
                "name": "on-push", "eventType": "pusher.pushed", "function": "echo"}), 201)
            await answer(await call(client, "POST", "/v1/event/drivertypes", json={
                "name": "pusher", "image": await image_of("pusher", PUSHER), "expose": True}), 201)
            created = await answer(await call(client, "POST", "/v1/event/drivers",
                                              json={"name": "pushes", "type": "pusher"}), 201)
            await reaches(client, "/v1/event/drivers/pushes", timeout=30)
            path = created["url"].split("://", 1)[1].split("/", 1)[1]
            await answer(await client.post(f"/{path}/orders", json={"n": 7}), 201)
            for _ in range(500):
                runs = await answer(await call(client, "GET", "/v1/runs?functionName=echo"), 200)
                if runs and runs[0]["status"] == "READY":
                    break
                await asyncio.sleep(0.02)
            assert [r["output"] for r in runs] == [{"data": {"n": 7}, "path": "/orders"}]
    finally:
        await platform.close()
