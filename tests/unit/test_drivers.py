"""Event drivers through the management API, on the embedded bus: built-in and custom types, a
cron driver's events running the subscribed functions once per slot, a webhook's push URL and
token, statuses, updates, deletes, and a restart that resumes the drivers."""
import asyncio
import json
from collections import Counter

import pytest

from dispatch.handlers.bootstrap import bootstrap
from tests.fakes import InProcessRuntime

from .test_gateway import answer, call, client, gone, reaches, ready_function, seed_image  # noqa: F401

EVERY_SECOND = "* * * * * *"
ECHO = b'''def handle(context, payload):
    return {"payload": payload, "event": context.get("event")}
'''


async def subscribe(client, function: str = "echo", event_type: str = "tick.second", name: str = "on-tick") -> dict:
    body = {"name": name, "eventType": event_type, "function": function}
    await answer(await call(client, "POST", "/v1/event/subscriptions", json=body), 201)
    return await reaches(client, f"/v1/event/subscriptions/{name}")


async def runs_of(client, function: str, count: int, timeout: float = 10.0) -> list[dict]:
    """The finished runs of a function once there are `count` of them."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        runs = await answer(await call(client, "GET", f"/v1/runs?functionName={function}"), 200)
        finished = [r for r in runs if r["status"] in ("READY", "ERROR")]
        if len(finished) >= count:
            return finished
        assert asyncio.get_running_loop().time() < deadline, f"{len(finished)} of {count} runs: {runs}"
        await asyncio.sleep(0.02)


def config(**values: str) -> list[dict]:
    return [{"key": key, "value": value} for key, value in values.items()]


async def create_driver(client, name: str, driver_type: str, status: int = 201, **values: str) -> dict:
    body = {"name": name, "type": driver_type, "config": config(**values)}
    return await answer(await call(client, "POST", "/v1/event/drivers", json=body), status)


@pytest.fixture
async def echo(client):
    await seed_image(client)
    return await ready_function(client, "echo", ECHO)


# --- driver types ------------------------------------------------------------------------------

async def test_the_built_in_driver_types_are_listed_on_request_and_cannot_be_created_changed_or_deleted(client):
    listed = await answer(await call(client, "GET", "/v1/event/drivertypes?builtin=true"), 200)
    assert [(t["name"], t["builtin"], t["expose"]) for t in listed] == [
        ("cron", True, False), ("webhook", True, True), ("amqp", True, False)]
    # Dispatch's clients know no built-in types: they list (and can delete) the ones they made
    assert await answer(await call(client, "GET", "/v1/event/drivertypes"), 200) == []
    cron = await answer(await call(client, "GET", "/v1/event/drivertypes/cron"), 200)
    assert {"key": "schedule", "value": ""} in cron["config"] and cron["status"] == "READY" and "created-time" in cron
    duplicate = await call(client, "POST", "/v1/event/drivertypes", json={"name": "cron", "image": "x"})
    assert (await answer(duplicate, 409))["message"] == "driver type cron already exists (it is built in)"
    refused = await answer(await call(client, "DELETE", "/v1/event/drivertypes/webhook"), 400)
    assert refused["message"] == "driver type webhook is built in and cannot be deleted"


async def test_a_driver_type_is_ready_at_once_and_cannot_be_deleted_while_a_driver_uses_it(client):
    body = {"name": "ticker", "image": "example/ticker:1", "expose": True, "config": config(seconds="5")}
    created = await answer(await call(client, "POST", "/v1/event/drivertypes", json=body), 201)
    assert created["status"] == "READY" and created["builtin"] is False and created["created-time"] > 0
    assert "createdTime" not in created
    await create_driver(client, "tick", "ticker")
    used = await answer(await call(client, "DELETE", "/v1/event/drivertypes/ticker"), 409)
    assert used["message"] == "driver type ticker is used by driver tick"


# --- drivers: checks, statuses -------------------------------------------------------------------

async def test_a_driver_of_a_type_that_does_not_exist_is_refused_with_400(client):
    refused = await create_driver(client, "nope", "ticker", status=400)
    assert refused == {"code": 400, "message": "driver type ticker does not exist"}


@pytest.mark.parametrize("driver_type, values, reason", [
    ("cron", {}, "config schedule is required"),
    ("cron", {"schedule": "every minute"}, "schedule 'every minute' is not a cron expression"),
    ("cron", {"schedule": "* * * * *", "timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus' is unknown"),
    ("cron", {"schedule": "* * * * *", "shedule": "x"}, "config shedule is not read by cron drivers"),
    ("amqp", {"queue": "orders"}, "config url is required"),
    ("amqp", {"url": "http://broker", "queue": "orders"}, "config url is required"),
    ("amqp", {"url": "amqp://broker"}, "config queue is required"),
    ("webhook", {"eventType": "no spaces"}, "eventType 'no spaces' should match"),
])
async def test_a_built_in_driver_with_a_bad_config_is_refused_with_the_reason(client, driver_type, values, reason):
    refused = await create_driver(client, "bad", driver_type, status=400, **values)
    assert reason in refused["message"]


async def test_driver_names_are_lower_case_only(client):
    refused = await create_driver(client, "Tick_1", "cron", status=422, schedule=EVERY_SECOND)
    assert "name in body should match" in refused["message"]


async def test_a_custom_driver_without_a_docker_engine_goes_error_saying_so(client):
    await answer(await call(client, "POST", "/v1/event/drivertypes", json={"name": "ticker", "image": "x/y"}), 201)
    created = await create_driver(client, "tick", "ticker", seconds="1")
    assert created["status"] == "CREATING" and created["expose"] is False
    failed = await reaches(client, "/v1/event/drivers/tick", status="ERROR")
    assert "run their image on a Docker engine, and none is configured" in failed["reason"][0]


# --- cron --------------------------------------------------------------------------------------

async def test_a_cron_driver_runs_the_subscribed_function_once_per_slot_with_its_data(client, echo):
    await subscribe(client, event_type="tick.second")
    created = await create_driver(client, "tick", "cron", schedule=EVERY_SECOND, eventType="tick.second",
                                  data='{"n": 1}')
    assert created["status"] == "CREATING" and created["url"] == ""
    await reaches(client, "/v1/event/drivers/tick")
    runs = await runs_of(client, "echo", 3)
    assert {json.dumps(r["input"]) for r in runs} == {'{"n": 1}'}
    slots = Counter(r["event"]["time"] for r in runs)
    assert len(runs) >= 3 and max(slots.values()) == 1
    assert {r["event"]["source"] for r in runs} == {"/drivers/tick"}
    assert {r["event"]["type"] for r in runs} == {"tick.second"}


async def test_an_updated_driver_answers_updating_and_restarts_with_its_new_config(client, echo):
    await subscribe(client, event_type="tick.old", name="old")
    await subscribe(client, event_type="tick.new", name="new")
    await create_driver(client, "tick", "cron", schedule=EVERY_SECOND, eventType="tick.old")
    ready = await reaches(client, "/v1/event/drivers/tick")
    body = {"name": "tick", "type": "cron", "config": config(schedule=EVERY_SECOND, eventType="tick.new")}
    updated = await answer(await call(client, "PUT", "/v1/event/drivers/tick", json=body), 200)
    assert updated["status"] == "UPDATING" and updated["id"] == ready["id"]
    await reaches(client, "/v1/event/drivers/tick")
    await asyncio.sleep(2.2)
    runs = await answer(await call(client, "GET", "/v1/runs?functionName=echo"), 200)
    types = [r["event"]["type"] for r in sorted(runs, key=lambda r: r["event"]["time"])]
    assert types[-1] == "tick.new" and types.count("tick.new") >= 2
    changed = body | {"type": "webhook"}
    refused = await answer(await call(client, "PUT", "/v1/event/drivers/tick", json=changed), 400)
    assert refused["message"] == "the type of driver tick cannot change: delete it and create it again"


async def test_a_deleted_driver_stops_emitting_then_is_gone(client, echo):
    await subscribe(client, event_type="tick.second")
    await create_driver(client, "tick", "cron", schedule=EVERY_SECOND, eventType="tick.second")
    await runs_of(client, "echo", 1)
    deleting = await answer(await call(client, "DELETE", "/v1/event/drivers/tick"), 200)
    assert deleting["status"] == "DELETING"
    assert await gone(client, "/v1/event/drivers/tick") == {"code": 404, "message": "driver tick not found"}
    before = len(await answer(await call(client, "GET", "/v1/runs?functionName=echo"), 200))
    await asyncio.sleep(1.5)
    assert len(await answer(await call(client, "GET", "/v1/runs?functionName=echo"), 200)) == before


async def test_drivers_resume_after_a_restart_without_running_a_slot_twice(settings, tmp_path):
    from aiohttp.test_utils import TestClient, TestServer

    from dispatch.gateway.app import create_app

    for restart in range(2):
        platform = bootstrap(settings, runtime=InProcessRuntime())
        await platform.start()
        async with TestClient(TestServer(create_app(settings, platform))) as test_client:
            if restart == 0:
                await seed_image(test_client)
                await ready_function(test_client, "echo", ECHO)
                await subscribe(test_client, event_type="tick.second")
                await create_driver(test_client, "tick", "cron", schedule=EVERY_SECOND, eventType="tick.second")
                before = await runs_of(test_client, "echo", 2)
            else:
                assert (await reaches(test_client, "/v1/event/drivers/tick"))["status"] == "READY"
                after = await runs_of(test_client, "echo", len(before) + 2)
        await platform.close()
    slots = Counter(r["event"]["time"] for r in after)
    assert max(slots.values()) == 1 and len(after) >= len(before) + 2


# --- webhook -------------------------------------------------------------------------------------

async def test_a_webhook_driver_turns_requests_with_its_token_into_events(client, echo):
    await subscribe(client, event_type="github.push")
    created = await create_driver(client, "hook", "webhook", eventType="github.push")
    token, url = created["token"], created["url"]
    assert created["expose"] is True and url.endswith(f"/driver/o/{created['id']}") and len(token) >= 40
    shown = [await answer(await call(client, "GET", "/v1/event/drivers/hook"), 200),
             *await answer(await call(client, "GET", "/v1/event/drivers"), 200)]
    assert all("token" not in d and "tokenDigest" not in d and d["url"] == url for d in shown)
    await reaches(client, "/v1/event/drivers/hook")
    path = url.split("://", 1)[1].split("/", 1)[1]
    accepted = await answer(await client.post(f"/{path}", json={"ref": "main"},
                                              headers={"Authorization": f"Bearer {token}"}), 202)
    [run] = await runs_of(client, "echo", 1)
    assert run["input"] == {"ref": "main"} and run["event"]["id"] == accepted["events"][0]["id"]
    assert run["event"]["type"] == "github.push" and run["event"]["source"] == "/drivers/hook"


async def test_a_webhook_request_without_the_right_token_or_driver_is_refused(client, echo):
    await subscribe(client, event_type="webhook.received")
    created = await create_driver(client, "hook", "webhook")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Dispatch-Token": created["token"][:-1]}):
        refused = await answer(await client.post(f"/driver/o/{created['id']}", data=b"x", headers=headers), 401)
        assert refused["message"].startswith("the driver's token is missing or wrong")
    unknown = await client.post("/driver/o/nope", data=b"x", headers={"X-Dispatch-Token": created["token"]})
    assert (await answer(unknown, 404))["message"] == "driver nope not found"
    await asyncio.sleep(0.3)
    assert await answer(await call(client, "GET", "/v1/runs?functionName=echo"), 200) == []


async def test_a_cloudevent_pushed_to_a_webhook_keeps_its_type_and_id(client, echo):
    await subscribe(client, event_type="order.placed")
    created = await create_driver(client, "hook", "webhook")
    event = {"specversion": "1.0", "id": "o-1", "source": "/shop", "type": "order.placed", "data": {"n": 1}}
    await answer(await client.post("/driver/o/hook", json=event,
                                   headers={"X-Dispatch-Token": created["token"]}), 202)
    [run] = await runs_of(client, "echo", 1)
    assert run["event"]["id"] == "o-1" and run["event"]["source"] == "/shop" and run["input"] == {"n": 1}
    text = await client.post("/driver/o/hook", data=b"plain words", headers={"X-Dispatch-Token": created["token"]})
    assert (await answer(text, 202))["events"][0]["type"] == "webhook.received"


async def test_an_updated_webhook_keeps_its_token(client, echo):
    await subscribe(client, event_type="hook.v2")
    created = await create_driver(client, "hook", "webhook")
    body = {"name": "hook", "type": "webhook", "config": config(eventType="hook.v2")}
    updated = await answer(await call(client, "PUT", "/v1/event/drivers/hook", json=body), 200)
    assert "token" not in updated
    await reaches(client, "/v1/event/drivers/hook")
    await answer(await client.post("/driver/o/hook", json={"v": 2},
                                   headers={"X-Dispatch-Token": created["token"]}), 202)
    [run] = await runs_of(client, "echo", 1)
    assert run["event"]["type"] == "hook.v2"


async def test_a_webhook_driver_naming_a_secret_takes_its_token_from_it(client, echo):
    await subscribe(client, event_type="webhook.received")
    await answer(await call(client, "POST", "/v1/secret",
                            json={"name": "hook-token", "secrets": {"token": "s3cr3t"}}), 201)
    await answer(await call(client, "POST", "/v1/secret", json={"name": "other", "secrets": {"key": "v"}}), 201)
    refused = await answer(await call(client, "POST", "/v1/event/drivers", json={
        "name": "hook", "type": "webhook", "secrets": ["other"]}), 400)
    assert refused["message"].startswith("a webhook driver needs a token: name a secret holding it")
    created = await answer(await call(client, "POST", "/v1/event/drivers", json={
        "name": "hook", "type": "webhook", "secrets": ["hook-token"]}), 201)
    assert "token" not in created
    await answer(await client.post("/driver/o/hook", json={}, headers={"X-Dispatch-Token": "wrong"}), 401)
    await answer(await client.post("/driver/o/hook", json={"n": 1}, headers={"X-Dispatch-Token": "s3cr3t"}), 202)
    [run] = await runs_of(client, "echo", 1)
    assert run["input"] == {"n": 1}
