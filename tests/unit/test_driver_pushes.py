"""Push URLs of exposed custom driver types: shown in `url`, forwarded to the driver's container
wherever its leader reports it listens, with 404, 409 and 502 saying why a push went nowhere.
The Docker engine is stood for by an event source whose "containers" are small HTTP servers."""
import asyncio
import socket
from functools import partial

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dispatch.gateway.app import create_api_app

from .test_drivers import config, create_driver
from .test_gateway import answer, call, client, reaches  # noqa: F401


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PushContainers:
    """Custom driver types on a pretend engine: an exposed driver's container answers every request
    with what it received (GET /move restarts it on another port); config `fail` makes it exit,
    `silent` makes it listen nowhere."""

    async def run(self, spec, emit, report) -> None:
        runners: list[web.AppRunner] = []
        try:
            if "fail" in spec.config:
                await report("the driver's container exited with code 1")
            elif not spec.expose:
                await report(None)
            elif "silent" in spec.config:
                await report(None, address=f"127.0.0.1:{closed_port()}")
            else:
                await self._serve(report, runners)
            await asyncio.Event().wait()
        finally:
            for runner in runners:
                await runner.cleanup()

    @staticmethod
    async def _serve(report, runners: list[web.AppRunner]) -> None:
        async def start() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", partial(seen, len(runners) + 1))
            runner = web.AppRunner(app)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            await report(None, address=f"127.0.0.1:{runner.addresses[0][1]}")

        async def seen(container: int, request: web.Request) -> web.Response:
            if request.path == "/move":
                await start()
            answer = {"method": request.method, "path": request.raw_path, "body": (await request.read()).decode(),
                      "headers": dict(request.headers), "container": container}
            response = web.json_response(answer, status=207, headers={"X-Container": "yes", "Connection": "close"})
            response.set_cookie("a", "1")
            response.set_cookie("b", "2")
            return response

        await start()

    async def discard(self, driver_id: str) -> None:
        """Nothing is left."""

    async def close(self) -> None:
        """Each driver's servers go with it."""


@pytest.fixture
async def engine(platform):
    platform.drivers.sources.custom = PushContainers()
    platform.drivers.start_grace = 0
    return platform


async def exposed_driver(client, name: str = "push", **values: str) -> dict:
    types = await answer(await call(client, "GET", "/v1/event/drivertypes"), 200)
    if "pusher" not in {t["name"] for t in types}:
        await answer(await call(client, "POST", "/v1/event/drivertypes",
                                json={"name": "pusher", "image": "example/pusher:1", "expose": True}), 201)
    return await create_driver(client, name, "pusher", **values)


async def test_an_exposed_driver_shows_its_push_url_and_its_container_gets_what_is_pushed_there(
        client, engine, settings):
    created = await exposed_driver(client)
    prefix = f"/driver/o/{created['id']}"
    assert created["expose"] is True and created["url"] == f"http://{client.host}:{client.port}{prefix}"
    ready = await reaches(client, "/v1/event/drivers/push")
    assert ready["url"] == created["url"] and "pushAddress" not in ready
    forwarded = await client.put(f"{prefix}/hooks/a%20b?x=1&x=2", data=b"ping",
                                 headers={"X-Signature": "s1", "Connection": "keep-alive, X-Private",
                                          "X-Private": "hop", "Keep-Alive": "timeout=5"})
    seen = await answer(forwarded, 207)
    assert (seen["method"], seen["path"], seen["body"]) == ("PUT", "/hooks/a%20b?x=1&x=2", "ping")
    assert seen["headers"]["X-Signature"] == "s1" and seen["headers"]["X-Forwarded-Prefix"] == prefix
    assert not {"X-Private", "Keep-Alive"} & set(seen["headers"])
    assert forwarded.headers["X-Container"] == "yes" and len(forwarded.headers.getall("Set-Cookie")) == 2
    async with TestClient(TestServer(create_api_app(settings, engine))) as api_port:  # by name, on the user-API port
        seen = await answer(await api_port.delete("/driver/o/push"), 207)
        assert (seen["method"], seen["path"], seen["body"]) == ("DELETE", "/", "")


async def test_a_driver_listening_elsewhere_after_a_restart_gets_the_next_push_there(client, engine):
    await exposed_driver(client)
    await reaches(client, "/v1/event/drivers/push")
    assert (await answer(await client.get("/driver/o/push/move"), 207))["container"] == 1
    for _ in range(200):
        seen = await answer(await client.get("/driver/o/push/where"), 207)
        if seen["container"] == 2:
            break
        await asyncio.sleep(0.02)
    assert seen["container"] == 2


async def test_a_driver_whose_container_fails_stays_creating_for_its_grace_then_reads_error(client, engine):
    """As Dispatch's drivers did while their pod retried: a start that fails may yet succeed."""
    engine.drivers.start_grace = 2
    await exposed_driver(client, "broken", fail="")
    await asyncio.sleep(1)
    assert (await answer(await call(client, "GET", "/v1/event/drivers/broken"), 200))["status"] == "CREATING"
    failed = await reaches(client, "/v1/event/drivers/broken", status="ERROR")
    assert failed["reason"] == ["the driver's container exited with code 1"]


async def test_a_push_to_a_driver_unknown_unexposed_not_ready_or_silent_says_why(client, engine):
    await answer(await call(client, "POST", "/v1/event/drivertypes", json={"name": "quiet", "image": "x/y"}), 201)
    hidden = await create_driver(client, "hidden", "quiet")
    assert hidden["url"] == ""
    await exposed_driver(client, "broken", fail="")
    await exposed_driver(client, "silent", silent="")
    await reaches(client, "/v1/event/drivers/hidden")
    await reaches(client, "/v1/event/drivers/broken", status="ERROR")
    await reaches(client, "/v1/event/drivers/silent")
    for key in ("nope", "hidden"):
        assert await answer(await client.post(f"/driver/o/{key}", data=b"x"), 404) == {
            "code": 404, "message": f"driver {key} not found"}
    not_ready = await answer(await client.post("/driver/o/broken/events", data=b"x"), 409)
    assert not_ready["message"] == "driver broken is not READY (status ERROR): its push URL answers once it is"
    silent = await answer(await client.post("/driver/o/silent", data=b"x"), 502)
    assert silent["message"] == ("the container of driver silent did not answer: "
                                 "it refused the connection or cannot be reached")
    webhook = await answer(await call(client, "POST", "/v1/event/drivers", json={
        "name": "hook", "type": "webhook", "config": config()}), 201)
    assert (await answer(await client.get(f"/driver/o/{webhook['id']}"), 405))["message"] == "driver " \
        f"{webhook['id']} takes POST only"
