"""Events and subscriptions through the management API, on the embedded bus: CloudEvents 1.0 from
the `cloudevents` SDK and Dispatch's 0.1 events reach every subscribed function, once."""
import asyncio
import uuid

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from dispatch.handlers.bootstrap import bootstrap
from dispatch.schemas import commands as c
from tests.fakes import InProcessRuntime

from .test_gateway import answer, call, client, gone, reaches, ready_function, seed_image  # noqa: F401

ORG = "o"
ECHO = b'''def handle(context, payload):
    return {"payload": payload, "event": context.get("event"), "secrets": context["secrets"]}
'''


def legacy_event(event_type: str = "user.created", data=None, **fields) -> dict:
    return {"eventType": event_type, "cloudEventsVersion": "0.1", "source": "crm", "eventID": str(uuid.uuid4()),
            "contentType": "application/json", "data": {"name": "Jon"} if data is None else data, **fields}


async def subscribe(client, function: str = "echo", event_type: str = "user.created", name: str = "on-user",
                    org: str = ORG, **fields) -> dict:
    body = {"name": name, "eventType": event_type, "function": function, **fields}
    created = await answer(await call(client, "POST", "/v1/event/subscriptions", org=org, json=body), 201)
    assert created["status"] == "CREATING" and created["kind"] == "Subscription"
    return await reaches(client, f"/v1/event/subscriptions/{name}", org=org)


async def runs_of(client, function: str, count: int, org: str = ORG, timeout: float = 10.0) -> list[dict]:
    """The finished runs of a function once there are `count` of them (and a moment later, to
    see any extra one)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        runs = await answer(await call(client, "GET", f"/v1/runs?functionName={function}", org=org), 200)
        finished = [r for r in runs if r["status"] in ("READY", "ERROR")]
        if len(finished) >= count:
            await asyncio.sleep(0.2)
            return await answer(await call(client, "GET", f"/v1/runs?functionName={function}", org=org), 200)
        assert asyncio.get_running_loop().time() < deadline, f"{len(finished)} of {count} runs: {runs}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def echo(client):
    await seed_image(client)
    await answer(await call(client, "POST", "/v1/secret", json={"name": "fn-key", "secrets": {"a": "1"}}), 201)
    await answer(await call(client, "POST", "/v1/secret", json={"name": "sub-key", "secrets": {"b": "2"}}), 201)
    return await ready_function(client, "echo", ECHO, secrets=["fn-key"])


async def test_a_legacy_event_runs_the_subscribed_function_with_its_data_and_the_event_in_context(client, echo):
    await subscribe(client, secrets=["sub-key"])
    event = legacy_event(tags=[{"key": "k", "value": "v"}])
    echoed = await answer(await call(client, "POST", "/v1/event/", json=event), 200)
    assert echoed == event
    [run] = await runs_of(client, "echo", 1)
    assert run["status"] == "READY" and run["blocking"] is False and run["input"] == {"name": "Jon"}
    context_event = {k: v for k, v in event.items() if k != "tags"} | {"data": None}
    assert run["event"] == context_event
    assert run["output"] == {"payload": {"name": "Jon"}, "event": context_event, "secrets": {"a": "1", "b": "2"}}


@pytest.mark.parametrize("mode", ["structured", "binary"])
async def test_a_cloudevents_1_0_event_from_the_sdk_reaches_the_subscription(client, echo, mode):
    await subscribe(client)
    event = CloudEvent(attributes={"type": "user.created", "source": "/crm", "id": f"sdk-{mode}",
                                   "datacontenttype": "application/json", "subject": "jon"}, data={"name": "Jon"})
    message = (ce_http.to_structured if mode == "structured" else ce_http.to_binary)(event, JSONFormat())
    response = await call(client, "POST", "/v1/event", data=message.body, headers=message.headers)
    assert (await answer(response, 200))["id"] == f"sdk-{mode}"
    [run] = await runs_of(client, "echo", 1)
    assert run["input"] == {"name": "Jon"}
    assert run["output"]["event"]["specversion"] == "1.0" and run["output"]["event"]["subject"] == "jon"
    assert "data" not in run["output"]["event"] and run["output"]["event"]["id"] == f"sdk-{mode}"


async def test_binary_data_reaches_the_function_as_base64(client, echo):
    await subscribe(client, event_type="blob.put")
    event = CloudEvent(attributes={"type": "blob.put", "source": "/s", "datacontenttype": "application/octet-stream"},
                       data=b"\x00\x01\x02")
    message = ce_http.to_binary(event, JSONFormat())
    await answer(await call(client, "POST", "/v1/event/", data=message.body, headers=message.headers), 200)
    [run] = await runs_of(client, "echo", 1)
    assert run["input"] == "AAEC" and run["event"]["datacontenttype"] == "application/octet-stream"


async def test_a_batch_runs_the_function_once_per_event(client, echo):
    await subscribe(client)
    batch = [{"specversion": "1.0", "id": str(n), "source": "/crm", "type": "user.created", "data": {"n": n}}
             for n in range(3)]
    response = await call(client, "POST", "/v1/event/", json=batch,
                          headers={"Content-Type": "application/cloudevents-batch+json"})
    assert await answer(response, 200) == batch
    runs = await runs_of(client, "echo", 3)
    assert sorted(r["input"]["n"] for r in runs) == [0, 1, 2]


@pytest.mark.parametrize("event, reason", [
    ({"eventType": "user.created", "source": "crm", "eventID": "1"}, "cloudEventsVersion in body is required"),
    ({**legacy_event(), "cloudEventsVersion": "0.2"}, "cloudEventsVersion in body should be '0.1'"),
    ({**legacy_event(), "eventType": "no spaces"}, "eventType in body should match"),
    ({**legacy_event(), "eventTime": "yesterday"}, "eventTime in body: should be an RFC 3339 date-time"),
    ({"event-type": "user.created", "cloudEventsVersion": "0.1", "source-id": "crm", "eventID": "1"},
     "eventType in body is required; source in body is required"),
    ({"specversion": "1.0", "source": "/s", "type": "t"}, "id in body is required"),
    ({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "Bad": 1}, "extension attribute 'Bad'"),
])
async def test_an_invalid_event_answers_400_with_every_reason_and_runs_nothing(client, echo, event, reason):
    await subscribe(client)
    body = await answer(await call(client, "POST", "/v1/event/", json=event), 400)
    assert body["code"] == 400 and body["message"].startswith("Error validating event: ") and reason in body["message"]
    await asyncio.sleep(0.2)
    assert await answer(await call(client, "GET", "/v1/runs?functionName=echo"), 200) == []


async def test_events_never_reach_another_organizations_subscriptions(client, echo):
    await seed_image(client, org="other")
    await ready_function(client, "echo", ECHO, org="other")
    await subscribe(client, org="other")
    await subscribe(client)
    await answer(await call(client, "POST", "/v1/event/", json=legacy_event()), 200)
    assert len(await runs_of(client, "echo", 1)) == 1
    assert await answer(await call(client, "GET", "/v1/runs?functionName=echo", org="other"), 200) == []


COUNTED = b'''def handle(context, payload):
    with open(payload["calls"], "a") as calls:
        calls.write(context["event"]["id"] + "\\n")
'''


async def test_an_event_delivered_many_times_runs_each_subscribed_function_once(client, echo, platform, tmp_path):
    await ready_function(client, "counted", COUNTED)
    await subscribe(client, "counted", name="first")
    await subscribe(client, "counted", name="second")
    calls = tmp_path / "calls"
    event = {"specversion": "1.0", "id": "same", "source": "/crm", "type": "user.created",
             "data": {"calls": str(calls)}}
    await asyncio.gather(*(platform.bus.send(c.EmitEvent(organization=ORG, event=event)) for _ in range(8)))
    await answer(await call(client, "POST", "/v1/event/", json=event), 200)
    runs = await runs_of(client, "counted", 2)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"READY"}
    assert calls.read_text() == "same\n" * 2


async def test_a_subscription_lives_creating_ready_updating_deleting_then_is_gone(client, echo):
    ready = await subscribe(client)
    assert ready["eventType"] == "user.created" and ready["function"] == "echo" and ready["createdTime"] > 0
    listed = await answer(await call(client, "GET", "/v1/event/subscriptions"), 200)
    assert [s["name"] for s in listed] == ["on-user"]
    body = {"name": "on-user", "eventType": "user.updated", "function": "echo"}
    updated = await answer(await call(client, "PUT", "/v1/event/subscriptions/on-user", json=body), 200)
    assert updated["status"] == "UPDATING" and updated["id"] == ready["id"]
    assert (await reaches(client, "/v1/event/subscriptions/on-user"))["eventType"] == "user.updated"
    deleting = await answer(await call(client, "DELETE", "/v1/event/subscriptions/on-user"), 200)
    assert deleting["status"] == "DELETING"
    assert await gone(client, "/v1/event/subscriptions/on-user") == {
        "code": 404, "message": "subscription on-user not found"}
    await answer(await call(client, "POST", "/v1/event/", json=legacy_event()), 200)
    await answer(await call(client, "POST", "/v1/event/", json=legacy_event("user.updated")), 200)
    await asyncio.sleep(0.3)
    assert await answer(await call(client, "GET", "/v1/runs?functionName=echo"), 200) == []


async def test_subscription_names_and_event_types_are_checked_and_duplicates_refused(client, echo):
    await subscribe(client)
    duplicate = {"name": "on-user", "eventType": "user.created", "function": "echo"}
    assert await answer(await call(client, "POST", "/v1/event/subscriptions", json=duplicate), 409) == {
        "code": 409, "message": "subscription on-user already exists"}
    bad = {"name": "-bad", "eventType": "a b", "function": "echo"}
    message = (await answer(await call(client, "POST", "/v1/event/subscriptions", json=bad), 422))["message"]
    assert "name in body should match" in message and "eventType in body should match" in message


async def test_an_event_for_a_missing_function_ends_in_a_failed_run_that_says_so(client):
    await subscribe(client, function="ghost")
    await answer(await call(client, "POST", "/v1/event/", json=legacy_event()), 200)
    [run] = await runs_of(client, "ghost", 1)
    assert run["status"] == "ERROR" and run["reason"] == ["error running function: ghost: function ghost not found"]


class GatedRuntime(InProcessRuntime):
    """Deploys wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def deploy(self, spec) -> None:
        await self.gate.wait()
        await super().deploy(spec)


async def test_an_event_for_a_function_still_deploying_runs_once_it_is_ready(settings):
    from aiohttp.test_utils import TestClient, TestServer

    from dispatch.gateway.app import create_app

    from .conftest import source_of

    runtime = GatedRuntime()
    platform = bootstrap(settings, runtime=runtime)
    await platform.start()
    try:
        async with TestClient(TestServer(create_app(settings, platform))) as test_client:
            await seed_image(test_client)
            function = {"name": "echo", "image": "py", "source": source_of({"echo.py": ECHO})}
            await answer(await call(test_client, "POST", "/v1/function", json=function), 201)
            await subscribe(test_client)
            await answer(await call(test_client, "POST", "/v1/event/", json=legacy_event()), 200)
            await asyncio.sleep(0.3)
            assert (await answer(await call(test_client, "GET", "/v1/function/echo"), 200))["status"] == "CREATING"
            runtime.gate.set()
            [run] = await runs_of(test_client, "echo", 1)
            assert run["status"] == "READY" and run["output"]["payload"] == {"name": "Jon"}
    finally:
        await platform.close()


async def test_a_fan_out_that_fails_is_retried_and_after_the_last_attempt_dead_lettered(client, echo, platform,
                                                                                         monkeypatch):
    await subscribe(client)
    listing = platform.views.list_resources
    failures = {"left": 1}

    async def flaky(org, kind):
        if kind == "Subscription" and failures["left"]:
            failures["left"] -= 1
            raise OSError("database gone")
        return await listing(org, kind)

    monkeypatch.setattr(platform.views, "list_resources", flaky)
    await answer(await call(client, "POST", "/v1/event/", json=legacy_event(data={"n": 1})), 200)
    [run] = await runs_of(client, "echo", 1)
    assert run["input"] == {"n": 1}

    failures["left"] = 1000
    # The embedded bus keeps nothing across a restart, so an event is answered once its runs are
    # recorded: one that cannot be fanned out is refused, and its letter kept.
    refused = await answer(await call(client, "POST", "/v1/event/", json=legacy_event(data={"n": 2})), 503)
    assert "database gone" in refused["message"]
    deadline = asyncio.get_running_loop().time() + 10
    while not (letters := await platform.bus.dead_letters()):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert letters[0].type == "EmitEvent" and "database gone" in letters[0].error
    assert letters[0].envelope["data"]["event"]["data"] == {"n": 2}


async def test_a_second_update_while_updating_or_delete_while_deleting_is_refused_with_400(settings):
    """Driven through the handlers alone, so that nothing moves the subscription on in between."""
    from dispatch.errors import Rejected
    from dispatch.handlers import subscriptions

    store = bootstrap(settings, runtime=InProcessRuntime()).store
    await store.start()
    try:
        body = {"name": "s", "eventType": "user.created", "function": "echo"}
        await subscriptions.create_subscription(c.CreateSubscription(organization=ORG, name="s", resource=body), store)
        update = c.UpdateSubscription(organization=ORG, name="s", resource=body)
        assert (await subscriptions.update_subscription(update, store))["resource"]["status"] == "UPDATING"
        with pytest.raises(Rejected, match="^subscription s is already being updated$"):
            await subscriptions.update_subscription(update, store)
        await subscriptions.activate_subscription(c.ActivateSubscription(organization=ORG, name="s"), store)
        delete = c.DeleteSubscription(organization=ORG, name="s")
        assert (await subscriptions.delete_subscription(delete, store))["resource"]["status"] == "DELETING"
        with pytest.raises(Rejected, match="^subscription s is already being deleted$"):
            await subscriptions.delete_subscription(delete, store)
    finally:
        await store.close()


async def test_an_event_answered_on_the_embedded_bus_already_has_its_runs_recorded(client, echo):
    await subscribe(client)
    await subscribe(client, name="on-user-too")
    await answer(await call(client, "POST", "/v1/event/", json=legacy_event(data={"n": 3})), 200)
    # nothing awaited in between: a stop now would still find both runs and run them at the next start
    listed = await answer(await call(client, "GET", "/v1/runs?functionName=echo"), 200)
    assert [run["input"] for run in listed] == [{"n": 3}, {"n": 3}]
