"""The management API (/v1) as a Dispatch client sees it: status codes, bodies, error texts."""
import asyncio
import datetime as dt
import io
import json
import re
import uuid

import aiohttp
import pytest
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dispatch.gateway.app import create_app
from dispatch.gateway.logs import app_runner
from dispatch.handlers.bootstrap import bootstrap
from dispatch.telemetry.logs import configure_logging
from tests.fakes import InProcessRuntime

from .conftest import HELLO, source_of

ORG = "o"
MASK = "********"


@pytest.fixture
async def client(settings, platform):
    async with TestClient(TestServer(create_app(settings, platform))) as test_client:
        yield test_client


def call(client, method: str, path: str, org: str | None = ORG, **kwargs):
    headers = {"Cookie": "unset", **kwargs.pop("headers", {})}  # what the CLI sends without a token
    if org is not None:
        headers.setdefault("X-Dispatch-Org", org)
    return client.request(method, path, headers=headers, **kwargs)


async def answer(response, status: int):
    text = await response.text()
    assert response.status == status, text
    return json.loads(text) if text else None


async def reaches(client, path: str, status: str = "READY", org: str = ORG, timeout: float = 10.0) -> dict:
    """Polls a resource the way `dispatch get` users do until it reaches a status."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await call(client, "GET", path, org=org)
        body = await response.json()
        if response.status == 200 and body.get("status") == status:
            return body
        assert asyncio.get_running_loop().time() < deadline, f"{path} stuck at {body}"
        await asyncio.sleep(0.02)


async def gone(client, path: str, org: str = ORG, timeout: float = 10.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await call(client, "GET", path, org=org)
        if response.status == 404:
            return await response.json()
        assert asyncio.get_running_loop().time() < deadline, f"{path} never went away"
        await asyncio.sleep(0.02)


async def seed_image(client, org: str = ORG) -> None:
    await answer(await call(client, "POST", "/v1/baseimage", org=org,
                            json={"name": "py-base", "dockerUrl": "python:3", "language": "python3"}), 201)
    await answer(await call(client, "POST", "/v1/image", org=org,
                            json={"name": "py", "baseImageName": "py-base"}), 201)
    await reaches(client, "/v1/image/py", org=org)


async def test_an_images_build_log_is_kept_and_shown(client):
    await answer(await call(client, "POST", "/v1/baseimage", json={"name": "py-base", "dockerUrl": "python:3",
                                                                   "language": "python3"}), 201)
    manifest = {"runtimeDependencies": {"manifest": "humanize\nno-such-package\n"}}
    await answer(await call(client, "POST", "/v1/image",
                            json={"name": "py", "baseImageName": "py-base", **manifest}), 201)
    failed = await reaches(client, "/v1/image/py", status="ERROR")
    log = await answer(await call(client, "GET", "/v1/image/py/logs"), 200)
    assert failed["status"] == "ERROR" and log["status"] == "ERROR"
    assert log["lines"] == ["Collecting humanize", "Collecting no-such-package",
                            "ERROR: No matching distribution found for no-such-package"]
    unknown = await answer(await call(client, "GET", "/v1/image/nope/logs"), 404)
    assert unknown["message"] == "image nope not found"


def function_body(name: str = "hello", source: bytes = HELLO, **fields) -> dict:
    return {"name": name, "image": "py", "handler": "", "source": source_of({"hello.py": source}), **fields}


async def ready_function(client, name: str = "hello", source: bytes = HELLO, org: str = ORG, **fields) -> dict:
    await answer(await call(client, "POST", "/v1/function", org=org, json=function_body(name, source, **fields)), 201)
    return await reaches(client, f"/v1/function/{name}", org=org)


@pytest.fixture
async def hello(client):
    await seed_image(client)
    return await ready_function(client)


# --- images and base images ---------------------------------------------------------------

async def test_a_base_image_is_created_initialized_then_reads_ready(client):
    created = await answer(await call(client, "POST", "/v1/baseimage",
                                      json={"name": "py-base", "dockerUrl": "python:3", "language": "python3"}), 201)
    assert created["status"] == "INITIALIZED" and created["kind"] == "BaseImage" and created["id"]
    assert (await reaches(client, "/v1/baseimage/py-base"))["dockerUrl"] == "python:3"


async def test_an_image_naming_a_missing_base_image_is_refused_with_400(client):
    response = await call(client, "POST", "/v1/image", json={"name": "py", "baseImageName": "x"})
    assert await answer(response, 400) == {"code": 400, "message": "Error fetching base image x"}


async def test_deleting_the_images_a_function_uses_answers_deleting_and_the_function_keeps_running(client, hello):
    """As with Dispatch's clients, which delete images and base images in any order."""
    assert (await answer(await call(client, "DELETE", "/v1/baseimage/py-base"), 200))["status"] == "DELETING"
    assert (await answer(await call(client, "DELETE", "/v1/image/py"), 200))["status"] == "DELETING"
    await gone(client, "/v1/image/py")
    await gone(client, "/v1/baseimage/py-base")
    run = await answer(await call(client, "POST", "/v1/runs?functionName=hello",
                                  json={"blocking": True, "input": {"name": "a", "place": "b"}}), 200)
    assert run["status"] == "READY" and run["output"] == {"myField": "Hello, a from b"}
    function = await answer(await call(client, "GET", "/v1/function/hello"), 200)
    assert "imageBuild" not in function


# --- functions ------------------------------------------------------------------------------

async def test_a_function_is_created_initialized_and_its_source_is_never_returned(client):
    await seed_image(client)
    created = await answer(await call(client, "POST", "/v1/function", json=function_body()), 201)
    assert created["status"] == "INITIALIZED" and created["name"] == "hello"
    single = await reaches(client, "/v1/function/hello")
    listed = await answer(await call(client, "GET", "/v1/function"), 200)
    assert [f["name"] for f in listed] == ["hello"]
    for shown in (created, single, listed[0]):
        assert "source" not in shown and "sourceURL" not in shown


async def test_an_updated_function_answers_updating_then_runs_its_new_code(client, hello):
    body = function_body(source=b"def handle(c, p):\n    return 'v2'\n")
    updated = await answer(await call(client, "PUT", "/v1/function/hello", json=body), 200)
    assert updated["status"] == "UPDATING" and updated["id"] == hello["id"] and "source" not in updated
    ready = await reaches(client, "/v1/function/hello")
    assert ready["faasId"] != hello["faasId"]
    run = await answer(await call(client, "POST", "/v1/runs?functionName=hello", json={"blocking": True}), 200)
    assert run["output"] == "v2"


async def test_an_update_without_source_is_refused_with_400_and_changes_nothing(client, hello):
    body = {"name": "hello", "image": "py", "handler": ""}
    response = await call(client, "PUT", "/v1/function/hello", json=body)
    assert await answer(response, 400) == {"code": 400, "message": "either source or sourceURL must be specified"}
    assert (await answer(await call(client, "GET", "/v1/function/hello"), 200))["status"] == "READY"


async def test_a_function_without_source_is_refused_with_400(client):
    body = {"name": "hello", "image": "py", "handler": ""}
    response = await call(client, "POST", "/v1/function", json=body)
    assert await answer(response, 400) == {"code": 400, "message": "either source or sourceURL must be specified"}


async def test_a_duplicate_function_answers_409_already_exists(client, hello):
    response = await call(client, "POST", "/v1/function", json=function_body())
    assert await answer(response, 409) == {"code": 409, "message": "function hello already exists"}


async def test_an_unknown_function_answers_404_with_code_in_the_body(client):
    for method in ("GET", "PUT", "DELETE"):
        kwargs = {"json": function_body("nope")} if method == "PUT" else {}
        response = await call(client, method, "/v1/function/nope", **kwargs)
        assert await answer(response, 404) == {"code": 404, "message": "function nope not found"}, method


async def test_every_schema_violation_is_reported_in_one_422(client):
    response = await call(client, "POST", "/v1/function", json={"name": "-bad name", "source": "x"})
    body = await answer(response, 422)
    assert body["code"] == 422
    violations = body["message"].split("; ")
    assert "name in body should match '^[\\w\\d][\\w\\d\\-]*$'" in violations
    assert "image in body is required" in violations


async def test_a_missing_org_header_answers_422(client):
    response = await call(client, "GET", "/v1/function", org=None)
    assert await answer(response, 422) == {"code": 422, "message": "X-Dispatch-Org in header is required"}


@pytest.mark.parametrize("org", ["a/b", "../etc", "x y"])
async def test_an_org_header_outside_the_name_pattern_answers_422_and_creates_nothing(client, platform, org):
    response = await call(client, "POST", "/v1/api", org=org,
                          json={"name": "n", "function": "f", "enabled": True, "uris": ["/hi"]})
    body = await answer(response, 422)
    assert body == {"code": 422, "message": "X-Dispatch-Org in header should match '^[\\w\\d\\-]+$'"}
    assert await platform.views.list_all("API") == []


async def test_an_empty_org_header_means_the_default_organization(client, settings):
    await answer(await call(client, "POST", "/v1/secret", org="", json={"name": "s", "secrets": {"k": "v"}}), 201)
    in_default = await answer(await call(client, "GET", "/v1/secret/s", org=settings.default_organization), 200)
    assert in_default["secrets"] == {"k": "v"}
    await answer(await call(client, "GET", "/v1/secret/s", org=ORG), 404)


async def test_a_body_that_is_not_json_answers_400(client):
    response = await call(client, "POST", "/v1/secret", data=b"{not json",
                          headers={"Content-Type": "application/json"})
    body = await answer(response, 400)
    assert body["code"] == 400 and "JSON" in body["message"]


async def test_a_body_over_the_size_limit_answers_413_with_a_json_error(settings, platform):
    small = settings.model_copy(update={"max_payload_bytes": 1024})
    async with TestClient(TestServer(create_app(small, platform))) as test_client:
        response = await call(test_client, "POST", "/v1/secret", json={"name": "s", "secrets": {"k": "v" * 4096}})
        body = await answer(response, 413)
    assert body["code"] == 413 and body["message"]
    assert await platform.views.get_resource(ORG, "Secret", "s") is None


async def test_run_names_are_uuids_that_sort_in_the_order_the_runs_were_made(client, hello):
    names = []
    for _ in range(3):
        names.append((await answer(await exec_(client), 200))["name"])
        await asyncio.sleep(0.002)  # the order holds from one millisecond to the next
    assert [str(uuid.UUID(name)) for name in names] == names
    assert sorted(names) == names


async def test_a_function_and_its_runs_in_one_organization_are_not_found_in_another(client, hello):
    response = await call(client, "GET", "/v1/function/hello", org="b")
    assert await answer(response, 404) == {"code": 404, "message": "function hello not found"}
    assert await answer(await call(client, "GET", "/v1/function", org="b"), 200) == []
    run = await answer(await exec_(client), 200)
    await answer(await call(client, "GET", f"/v1/runs/{run['name']}", org="b"), 404)
    await answer(await call(client, "POST", "/v1/runs?functionName=hello", org="b", json={"blocking": True}), 404)


async def test_deleting_a_function_answers_deleting_then_404_and_its_runs_are_gone(client, hello):
    run = await answer(await call(client, "POST", "/v1/runs?functionName=hello",
                                  json={"blocking": True, "input": {"name": "a", "place": "b"}}), 200)
    deleting = await answer(await call(client, "DELETE", "/v1/function/hello"), 200)
    assert deleting["status"] == "DELETING"
    assert (await gone(client, "/v1/function/hello"))["message"] == "function hello not found"
    assert await answer(await call(client, "GET", "/v1/runs?functionName=hello"), 200) == []
    await answer(await call(client, "GET", f"/v1/runs/{run['name']}"), 404)


# --- tags -----------------------------------------------------------------------------------

async def test_the_application_tag_filter_keeps_only_tagged_resources(client):
    tagged = {"name": "tagged", "secrets": {}, "tags": [{"key": "Application", "value": "x"}]}
    await answer(await call(client, "POST", "/v1/secret", json=tagged), 201)
    await answer(await call(client, "POST", "/v1/secret", json={"name": "plain", "secrets": {}}), 201)
    listed = await answer(await call(client, "GET", "/v1/secret?tags=Application=x"), 200)
    assert [s["name"] for s in listed] == ["tagged"]
    await answer(await call(client, "GET", "/v1/secret/plain?tags=Application=x"), 404)
    await answer(await call(client, "GET", "/v1/secret/tagged?tags=app=x"), 200)


@pytest.mark.parametrize("tag, message", [
    ("foo=bar", "error parsing tag 'foo=bar': key 'foo' not exist"),
    ("bad", "error parsing tag 'bad': invalid format"),
])
async def test_an_unsupported_tag_filter_answers_400(client, tag, message):
    for path in ("/v1/function", "/v1/secret", "/v1/runs"):
        response = await call(client, "GET", path, params={"tags": tag})
        assert await answer(response, 400) == {"code": 400, "message": message}, path


# --- secrets --------------------------------------------------------------------------------

async def test_a_secret_is_created_with_201_and_its_values_masked_in_the_answer(client):
    created = await answer(await call(client, "POST", "/v1/secret",
                                      json={"name": "creds", "secrets": {"password": "open-sesame"}}), 201)
    assert created["name"] == "creds" and created["secrets"] == {"password": MASK}


async def test_secret_values_are_masked_in_the_list_and_shown_on_a_single_get(client):
    await answer(await call(client, "POST", "/v1/secret",
                            json={"name": "creds", "secrets": {"password": "open-sesame"}}), 201)
    listed = await answer(await call(client, "GET", "/v1/secret"), 200)
    assert listed[0]["secrets"] == {"password": MASK}
    single = await answer(await call(client, "GET", "/v1/secret/creds"), 200)
    assert single["secrets"] == {"password": "open-sesame"}


async def test_update_of_secret_answers_201_and_replaces_the_whole_map(client):
    await answer(await call(client, "POST", "/v1/secret", json={"name": "creds", "secrets": {"a": "1", "b": "2"}}), 201)
    await answer(await call(client, "PUT", "/v1/secret/creds", json={"name": "creds", "secrets": {"c": "3"}}), 201)
    assert (await answer(await call(client, "GET", "/v1/secret/creds"), 200))["secrets"] == {"c": "3"}


async def test_delete_of_secret_answers_204_with_empty_body(client):
    await answer(await call(client, "POST", "/v1/secret", json={"name": "creds", "secrets": {}}), 201)
    response = await call(client, "DELETE", "/v1/secret/creds")
    assert response.status == 204 and await response.read() == b""
    await answer(await call(client, "GET", "/v1/secret/creds"), 404)


# --- version, health, OpenAPI ---------------------------------------------------------------

async def test_version_answers_without_an_org_header_with_every_field(client):
    body = await answer(await call(client, "GET", "/v1/version", org=None), 200)
    assert set(body) == {"version", "commit", "buildDate", "goVersion", "compiler", "platform"}
    assert body["version"] and "Python" in body["goVersion"]


async def test_healthz_wraps_the_version_object(client):
    body = await answer(await call(client, "GET", "/healthz", org=None), 200)
    version = await answer(await call(client, "GET", "/v1/version", org=None), 200)
    assert body == {"version": version}


async def test_healthz_answers_500_with_the_failure_when_the_store_fails(client, platform, monkeypatch):
    async def broken(name):
        raise OSError("disk gone")
    monkeypatch.setattr(platform.views, "tracking", broken)
    body = await answer(await call(client, "GET", "/healthz", org=None), 500)
    assert body["code"] == 500 and "disk gone" in body["message"]


async def test_the_openapi_document_lists_the_management_paths(client):
    document = await answer(await call(client, "GET", "/v1/openapi.json", org=None), 200)
    assert document["openapi"].startswith("3.1")
    for path in ("/v1/function", "/v1/function/{name}", "/v1/secret/{name}", "/v1/api", "/v1/runs",
                 "/v1/runs/{name}", "/v1/baseimage", "/v1/image"):
        assert path in document["paths"], path
    function = document["components"]["schemas"]["Function"]
    assert {"name", "image"} <= set(function["required"])
    assert "201" in document["paths"]["/v1/function"]["post"]["responses"]
    assert "200" in document["paths"]["/v1/api"]["post"]["responses"]
    assert "204" in document["paths"]["/v1/secret/{name}"]["delete"]["responses"]
    assert "201" in document["paths"]["/v1/secret/{name}"]["put"]["responses"]
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs and refs <= set(document["components"]["schemas"])


# --- runs -----------------------------------------------------------------------------------

def exec_(client, function: str | None = "hello", blocking: bool = True, payload=None):
    path = "/v1/runs" if function is None else f"/v1/runs?functionName={function}"
    return call(client, "POST", path, json={"blocking": blocking, "input": payload or {"name": "Jon", "place": "W"}})


async def test_a_run_without_function_name_answers_400(client):
    body = await answer(await exec_(client, None), 400)
    assert body == {"code": 400, "message": "Bad Request: No function specified"}


async def test_a_run_of_an_unknown_function_answers_404(client):
    assert await answer(await exec_(client, "ghost"), 404) == {"code": 404, "message": "function ghost not found"}


async def test_a_run_of_a_function_not_ready_answers_409_naming_its_status(client):
    await seed_image(client)
    bad_handler = function_body(source=b"def handle(only_one):\n    pass\n")
    await answer(await call(client, "POST", "/v1/function", json=bad_handler), 201)
    await reaches(client, "/v1/function/hello", "ERROR")
    body = await answer(await exec_(client), 409)
    assert body["code"] == 409 and body["message"].startswith("function hello is not READY (status ERROR")


class _FailingRuntime(InProcessRuntime):
    async def deploy(self, spec):
        raise AttributeError("module 'tarfile' has no attribute 'FilterError'")


async def test_a_deploy_that_fails_unexpectedly_ends_in_error_with_the_reason_not_creating(settings):
    running = bootstrap(settings, runtime=_FailingRuntime())
    await running.start()
    try:
        async with TestClient(TestServer(create_app(settings, running))) as failing:
            await seed_image(failing)
            await answer(await call(failing, "POST", "/v1/function", json=function_body()), 201)
            function = await reaches(failing, "/v1/function/hello", "ERROR")
    finally:
        await running.close()
    assert function["reason"] == ["the runtime could not deploy it: AttributeError: "
                                  "module 'tarfile' has no attribute 'FilterError'"]


async def test_a_blocking_run_answers_200_with_the_finished_run(client, hello):
    run = await answer(await exec_(client), 200)
    assert run["status"] == "READY" and run["output"] == {"myField": "Hello, Jon from W"}
    assert run["functionName"] == "hello" and run["name"]
    assert isinstance(run["logs"]["stdout"], list) and isinstance(run["logs"]["stderr"], list)
    assert run["finishedTime"] >= run["executedTime"] > 0


async def test_a_blocking_run_is_readable_as_soon_as_it_is_answered(client, hello):
    for _ in range(10):
        run = await answer(await exec_(client), 200)
        assert (await answer(await call(client, "GET", f"/v1/runs/{run['name']}"), 200))["status"] == "READY"


async def test_a_non_blocking_run_answers_202_initialized_then_reads_ready(client, hello):
    run = await answer(await exec_(client, blocking=False), 202)
    assert run["status"] == "INITIALIZED"
    done = await reaches(client, f"/v1/runs/{run['name']}?functionName=hello")
    assert done["output"] == {"myField": "Hello, Jon from W"} and done["finishedTime"] > 0


async def test_a_run_read_under_another_function_name_is_not_found(client, hello):
    run = await answer(await exec_(client), 200)
    response = await call(client, "GET", f"/v1/runs/{run['name']}?functionName=other")
    assert await answer(response, 404) == {"code": 404, "message": f"function run {run['name']} not found"}


async def test_runs_are_listed_per_function_and_since_keeps_only_later_ones(client, hello):
    run = await answer(await exec_(client), 200)
    listed = await answer(await call(client, "GET", "/v1/runs?functionName=hello"), 200)
    assert [r["name"] for r in listed] == [run["name"]]
    since = {"functionName": "hello", "since": run["modifiedTime"] - 1}
    assert len(await answer(await call(client, "GET", "/v1/runs", params=since), 200)) == 1
    since["since"] = run["modifiedTime"]
    assert await answer(await call(client, "GET", "/v1/runs", params=since), 200) == []
    assert await answer(await call(client, "GET", "/v1/runs?functionName=ghost"), 200) == []


async def test_a_failing_function_is_a_200_run_in_error_not_an_http_error(client):
    await seed_image(client)
    await ready_function(client, source=b"def handle(c, p):\n    raise RuntimeError('boom')\n")
    run = await answer(await exec_(client), 200)
    assert run["status"] == "ERROR" and run["error"]["type"] == "FunctionError"
    assert run["error"]["message"] == "boom" and run["reason"] == ["error running function: hello: boom"]
    assert run["finishedTime"] > 0


@pytest.mark.parametrize("body", [b'["not", "a", "run"]', b'{"blocking": true, "input": NaN}', b"{nope"])
async def test_a_run_body_that_is_not_a_json_run_answers_400_invalid_payload(client, hello, body):
    response = await call(client, "POST", "/v1/runs?functionName=hello", data=body,
                          headers={"Content-Type": "application/json"})
    assert await answer(response, 400) == {"code": 400, "message": "Bad Request: Invalid Payload"}
    assert await answer(await call(client, "GET", "/v1/runs?functionName=hello"), 200) == []


async def test_a_run_with_a_bad_tag_filter_answers_400_and_runs_nothing(client, hello):
    for path in ("/v1/runs?functionName=hello&tags=foo=bar", "/v1/runs/any-run?tags=foo=bar"):
        response = await call(client, "POST" if "functionName" in path else "GET", path, json={"blocking": True})
        body = await answer(response, 400)
        assert body == {"code": 400, "message": "error parsing tag 'foo=bar': key 'foo' not exist"}, path
    assert await answer(await call(client, "GET", "/v1/runs?functionName=hello"), 200) == []


async def test_exec_within_an_application_finds_only_its_functions_and_tags_the_run(client):
    await seed_image(client)
    await ready_function(client, tags=[{"key": "Application", "value": "shop"}])
    response = await call(client, "POST", "/v1/runs?functionName=hello&tags=Application=blog", json={"blocking": True})
    assert await answer(response, 404) == {"code": 404, "message": "function hello not found"}
    run = await answer(await call(client, "POST", "/v1/runs?functionName=hello&tags=Application=shop",
                                  json={"blocking": True, "input": {"name": "a", "place": "b"}}), 200)
    assert run["status"] == "READY"
    listed = await answer(await call(client, "GET", "/v1/runs?functionName=hello&tags=Application=shop"), 200)
    assert [r["name"] for r in listed] == [run["name"]]
    await answer(await call(client, "GET", f"/v1/runs/{run['name']}?tags=Application=shop"), 200)
    await answer(await call(client, "GET", f"/v1/runs/{run['name']}?tags=Application=blog"), 404)


def test_log_lines_are_json_with_level_utc_time_and_the_traceback_of_an_exception():
    saved = structlog.get_config()
    written = io.BytesIO()
    try:
        configure_logging("info")
        structlog.configure(logger_factory=structlog.BytesLoggerFactory(file=written))
        log = structlog.get_logger("test")
        log.debug("hidden")
        log.info("run", run="r-1", value=object())
        try:
            raise KeyError("gone")
        except KeyError:
            log.exception("handler failed", consumer="runs")
        log.warn("slow", ms=1500.0)
    finally:
        structlog.configure(**saved)
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [
        ("run", "info"), ("handler failed", "error"), ("slow", "warning")]
    assert lines[0]["run"] == "r-1" and lines[0]["value"].startswith("<object object at")
    assert "KeyError: 'gone'" in lines[1]["exception"] and "exc_info" not in lines[1]
    stamped = dt.datetime.fromisoformat(lines[2]["timestamp"].replace("Z", "+00:00"))
    assert lines[2]["timestamp"].endswith("Z") and abs(stamped - dt.datetime.now(dt.timezone.utc)).total_seconds() < 60


async def test_each_request_is_logged_once_after_its_answer_with_the_request_id_it_answered(settings, platform):
    runner = app_runner(create_app(settings, platform))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with structlog.testing.capture_logs() as logged:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/v1/function",
                                       headers={"X-Request-Id": "req-7", "X-Dispatch-Org": ORG}) as given:
                    assert given.status == 200 and given.headers["X-Request-Id"] == "req-7"
                async with session.get(f"http://127.0.0.1:{port}/v1/function/nope",
                                       headers={"X-Dispatch-Org": ORG}) as missing:
                    assert missing.status == 404
                    generated = missing.headers["X-Request-Id"]
            for _ in range(100):
                if len([line for line in logged if line["event"] == "request"]) == 2:
                    break
                await asyncio.sleep(0.01)
    finally:
        await runner.cleanup()
    lines = [line for line in logged if line["event"] == "request"]
    assert [(line["method"], line["path"], line["status"], line["correlation_id"]) for line in lines] == [
        ("GET", "/v1/function", 200, "req-7"), ("GET", "/v1/function/nope", 404, generated)]
    assert all(isinstance(line["ms"], float) and line["ms"] >= 0 for line in lines)
    assert uuid.UUID(generated).version == 4
