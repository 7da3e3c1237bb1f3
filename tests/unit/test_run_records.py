"""Runs as a client follows them: millisecond times and durations on each record, pages of
`GET /v1/runs`, and a function's logs streamed as server-sent events."""
import asyncio
import contextlib
import datetime as dt
import io
import json
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dispatch.gateway import run_pages
from dispatch.gateway.app import create_app
from dispatch.handlers.bootstrap import bootstrap
from dispatch.schemas.events import RunFinished
from dispatch.server import rebuild_views
from dispatch.settings import Settings
from tests.fakes import InProcessRuntime

from .test_gateway import answer, call, ready_function, seed_image

PRINTING = b'''import sys, time
def handle(context, payload):
    time.sleep(payload.get("sleep", 0))
    print("hello", payload.get("name"))
    print("careful", payload.get("name"), file=sys.stderr)
    return payload.get("name")
'''


class PrintingRuntime(InProcessRuntime):
    """Captures what a handler prints into the run's logs, as the real runtimes do."""

    async def invoke(self, faas_id, context, payload, timeout_ms):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result = await super().invoke(faas_id, context, payload, timeout_ms)
        result.stdout, result.stderr = out.getvalue().splitlines(), err.getvalue().splitlines()
        return result


@pytest.fixture
async def platform(settings):
    running = bootstrap(settings, runtime=PrintingRuntime())
    await running.start()
    yield running
    await running.close()


@pytest.fixture
async def client(settings, platform):
    async with TestClient(TestServer(create_app(settings, platform))) as test_client:
        yield test_client


@pytest.fixture
async def printing(client):
    await seed_image(client)
    return await ready_function(client, "printer", PRINTING)


def run(client, name: str, blocking: bool = True, **payload):
    return call(client, "POST", "/v1/runs?functionName=printer", json={"blocking": blocking,
                                                                        "input": {"name": name, **payload}})


def parsed(stamp: str) -> dt.datetime:
    assert stamp.endswith("Z") and len(stamp.split(".")[1]) == 4, stamp  # milliseconds, UTC
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# --- times ----------------------------------------------------------------------------------

async def test_a_run_records_its_start_and_end_to_the_millisecond_and_its_duration(client, printing):
    done = await answer(await run(client, "a", sleep=0.05), 200)
    started, finished = parsed(done["startedAt"]), parsed(done["finishedAt"])
    assert done["durationMs"] == round((finished - started).total_seconds() * 1000)
    assert 50 <= done["durationMs"] < 2000
    assert done["finishedTime"] == int(finished.timestamp()) and done["executedTime"] <= done["finishedTime"]
    listed = await answer(await call(client, "GET", f"/v1/runs/{done['name']}"), 200)
    assert (listed["startedAt"], listed["finishedAt"], listed["durationMs"]) == \
        (done["startedAt"], done["finishedAt"], done["durationMs"])


async def test_a_run_not_started_yet_has_no_start_end_or_duration_and_a_caller_cannot_set_them(client, printing):
    accepted = await answer(await call(client, "POST", "/v1/runs?functionName=printer", json={
        "input": {"name": "b", "sleep": 0.3}, "startedAt": "1999-01-01T00:00:00.000Z", "durationMs": 5}), 202)
    assert (accepted["startedAt"], accepted["finishedAt"], accepted["durationMs"]) == (None, None, None)
    assert accepted["executedTime"] > 0 and accepted["finishedTime"] == 0


# --- pages ------------------------------------------------------------------------------------

async def test_pages_of_runs_go_newest_first_and_their_tokens_reach_every_run_once(client, printing):
    names = [(await answer(await run(client, f"r{i}"), 200))["name"] for i in range(7)]
    seen, token = [], None
    while True:
        response = await call(client, "GET", "/v1/runs", params={"functionName": "printer", "limit": 3,
                                                                 **({"continue": token} if token else {})})
        page = await answer(response, 200)
        seen += [r["name"] for r in page]
        token = response.headers.get("X-Dispatch-Continue")
        assert len(page) == 3 or token is None
        if token is None:
            break
    assert seen == names[::-1]
    unpaged = await answer(await call(client, "GET", "/v1/runs?functionName=printer"), 200)
    assert [r["name"] for r in unpaged] == names  # without a limit: all, oldest first, as Dispatch lists them


async def test_a_page_counts_only_the_runs_of_the_application_asked_for(client, printing):
    for i in range(6):
        tags = [{"key": "Application", "value": "shop" if i % 3 == 0 else "blog"}]
        await answer(await call(client, "POST", "/v1/runs?functionName=printer",
                                json={"blocking": True, "input": {"name": str(i)}, "tags": tags}), 200)
    response = await call(client, "GET", "/v1/runs?limit=2&tags=Application=shop")
    assert [r["input"]["name"] for r in await answer(response, 200)] == ["3", "0"]
    assert "X-Dispatch-Continue" not in response.headers


async def test_a_bad_limit_token_or_since_answers_400(client, printing):
    huge = "9" * 30
    for query in ("limit=0", "limit=many", "continue=not-a-token", "continue=eyJiZWZvcmUiOiAiMSJ9",
                  f"continue={run_pages.token(int(huge))}", f"since={huge}", f"since=-{huge}&limit=2"):
        body = await answer(await call(client, "GET", f"/v1/runs?{query}"), 400)
        assert body["code"] == 400 and query.split("=")[0] in body["message"], body


# --- logs -------------------------------------------------------------------------------------

async def read_events(response, until: int, timeout: float = 10.0) -> list[tuple[str, dict]]:
    """The first `until` events of a server-sent event stream."""
    events, kind = [], None
    async with asyncio.timeout(timeout):
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
                if len(events) == until:
                    return events
    return events


async def test_a_functions_logs_are_its_runs_lines_with_run_id_and_time_then_the_stream_ends(client, printing):
    first = await answer(await run(client, "a"), 200)
    second = await answer(await run(client, "b"), 200)
    response = await call(client, "GET", "/v1/runs/logs?functionName=printer")
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    events = await read_events(response, 5)
    assert [(kind, data.get("run"), data.get("stream"), data.get("line")) for kind, data in events] == [
        ("log", first["name"], "stdout", "hello a"), ("log", first["name"], "stderr", "careful a"),
        ("log", second["name"], "stdout", "hello b"), ("log", second["name"], "stderr", "careful b"),
        ("end", None, None, None)]
    assert events[0][1]["time"] == first["startedAt"] and events[0][1]["function"] == "printer"
    since = await call(client, "GET", f"/v1/runs/logs?functionName=printer&since={second['modifiedTime']}")
    assert await read_events(since, 1) == [("end", {})]  # since is exclusive, as for listings


async def test_following_a_functions_logs_shows_each_new_run_as_it_finishes(client, printing):
    before = await answer(await run(client, "old"), 200)
    response = await call(client, "GET", "/v1/runs/logs?functionName=printer&follow=true&since=0")
    assert [(k, d.get("line")) for k, d in await read_events(response, 3)] == [
        ("log", "hello old"), ("log", "careful old"), ("following", None)]
    queued = await answer(await run(client, "queued", blocking=False, sleep=0.2), 202)
    waited = await answer(await run(client, "waited"), 200)
    lines = [(d["run"], d["line"]) for _, d in await read_events(response, 4)]
    assert sorted(lines) == sorted([(queued["name"], "hello queued"), (queued["name"], "careful queued"),
                                    (waited["name"], "hello waited"), (waited["name"], "careful waited")])
    assert before["name"] not in {name for name, _ in lines}
    response.close()


async def test_logs_of_an_unknown_function_answer_404_and_a_bad_follow_400(client, printing):
    missing = await answer(await call(client, "GET", "/v1/runs/logs?functionName=ghost"), 404)
    assert missing["message"] == "function ghost not found"
    await answer(await call(client, "GET", "/v1/runs/logs"), 400)
    await answer(await call(client, "GET", "/v1/runs/logs?functionName=printer&follow=maybe"), 400)


# --- retention --------------------------------------------------------------------------------

async def test_a_rebuild_of_the_read_models_drops_the_runs_past_retention_again(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", resync_seconds=3600)
    platform = bootstrap(settings, runtime=PrintingRuntime())
    await platform.start()
    try:
        now = int(time.time())
        for name, age in (("old", 3 * 86400), ("recent", 60)):
            body = {"name": name, "functionName": "f", "status": "READY", "modifiedTime": now - age}
            await platform.store.append(f"Run:o:{name}", 0, [RunFinished(organization="o", run=body)])
    finally:
        await platform.close()
    assert (await rebuild_views(settings))["runs"] == 2
    assert (await rebuild_views(settings.model_copy(update={"run_retention": 86400})))["runs"] == 1


async def test_a_server_with_a_run_retention_drops_the_runs_past_it_and_keeps_the_rest(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", resync_seconds=3600)
    now = int(time.time())
    for retention in (None, 86400):
        platform = bootstrap(settings.model_copy(update={"run_retention": retention}), runtime=PrintingRuntime())
        await platform.start()
        try:
            if retention is None:
                for name, age in (("old", 3 * 86400), ("recent", 60)):
                    body = {"name": name, "functionName": "f", "status": "READY", "modifiedTime": now - age}
                    await platform.store.append(f"Run:o:{name}", 0, [RunFinished(organization="o", run=body)])
                kept = ["old", "recent"]
            else:
                kept = ["recent"]
            async with asyncio.timeout(5):
                while sorted(r["name"] for r in await platform.views.list_runs("o", "f", None)) != kept:
                    await asyncio.sleep(0.01)
        finally:
            await platform.close()
