"""APIs: their management endpoints, and the user-API port as an HTTP caller sees it (routes,
request → input, answers, CORS, https-only)."""
import asyncio
import io
import time

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from dispatch.gateway.app import create_api_app, create_app

from .test_gateway import ORG, answer, call, reaches, ready_function, seed_image

ECHO = b"def handle(context, payload):\n    return payload\n"
CONTEXT = b"def handle(context, payload):\n    return context['httpContext']\n"
BOOM = b"def handle(context, payload):\n    raise RuntimeError('boom')\n"
PICKY = b"def handle(context, payload):\n    raise ValueError('name is required')\n"


@pytest.fixture
async def client(settings, platform):
    async with TestClient(TestServer(create_app(settings, platform))) as test_client:
        yield test_client


@pytest.fixture
async def caller(settings, platform):
    async with TestClient(TestServer(create_api_app(settings, platform))) as test_client:
        yield test_client


@pytest.fixture
async def functions(client):
    await seed_image(client)
    for name, source in (("echo", ECHO), ("context", CONTEXT), ("boom", BOOM), ("picky", PICKY)):
        await ready_function(client, name, source)


async def expose(client, name: str, function: str, uris=("/{name}",), methods=("GET", "POST"), **fields) -> dict:
    body = {"name": name, "function": function, "enabled": True, "uris": [u.format(name=name) for u in uris],
            "methods": list(methods), **fields}
    await answer(await call(client, "POST", "/v1/api", json=body), 200)
    return await reaches(client, f"/v1/api/{name}")


async def runs_of(client, function: str) -> list[dict]:
    return await answer(await call(client, "GET", f"/v1/runs?functionName={function}"), 200)


# --- APIs on the management API ------------------------------------------------------------

async def test_an_api_is_created_with_200_and_its_uris_prefixed_by_the_organization(client):
    body = {"name": "greet", "function": "hello", "enabled": True, "uris": ["/hello", "hi"], "methods": ["POST"]}
    created = await answer(await call(client, "POST", "/v1/api", json=body), 200)
    assert created["uris"] == ["/o/hello", "/o/hi"]
    fetched = await answer(await call(client, "GET", "/v1/api/greet"), 200)
    assert fetched["uris"] == ["/o/hello", "/o/hi"]


async def test_putting_back_a_fetched_api_does_not_prefix_its_uris_twice(client):
    body = {"name": "greet", "function": "hello", "enabled": True, "uris": ["/hello"]}
    await answer(await call(client, "POST", "/v1/api", json=body), 200)
    fetched = await reaches(client, "/v1/api/greet")
    updated = await answer(await call(client, "PUT", "/v1/api/greet", json=fetched), 200)
    assert updated["uris"] == ["/o/hello"] and updated["status"] == "UPDATING"
    assert (await reaches(client, "/v1/api/greet"))["uris"] == ["/o/hello"]


async def test_api_list_filters_by_function(client):
    for name, function in (("a1", "hello"), ("a2", "other")):
        body = {"name": name, "function": function, "enabled": True, "uris": [f"/{name}"]}
        await answer(await call(client, "POST", "/v1/api", json=body), 200)
    listed = await answer(await call(client, "GET", "/v1/api?function=other"), 200)
    assert [a["name"] for a in listed] == ["a2"]


async def test_an_api_sent_without_enabled_is_stored_disabled_and_not_routed(client, caller, functions):
    """What Dispatch's CLI sends for `create api --disable`: Go leaves a false `enabled` out."""
    body = {"authentication": "public", "function": "echo", "hosts": [], "methods": ["GET"], "name": "off",
            "protocols": ["http", "https"], "tags": [], "uris": ["/off"]}
    created = await answer(await call(client, "POST", "/v1/api", json=body), 200)
    assert created["enabled"] is False
    await reaches(client, "/v1/api/off")
    assert (await caller.get(f"/{ORG}/off")).status == 404
    await answer(await call(client, "PUT", "/v1/api/off", json={**body, "enabled": True}), 200)
    await reaches(client, "/v1/api/off")
    assert (await caller.get(f"/{ORG}/off?who=me")).status == 200


# --- answers --------------------------------------------------------------------------------

async def test_a_post_answers_only_the_runs_output_with_the_run_id_in_a_header(client, caller, functions):
    await expose(client, "hello", "echo")
    response = await caller.post(f"/{ORG}/hello", json={"name": "Jon"})
    assert response.status == 200 and response.content_type == "application/json"
    assert await response.json() == {"name": "Jon"}
    run = await answer(await call(client, "GET", f"/v1/runs/{response.headers['X-Dispatch-Run']}"), 200)
    assert run["functionName"] == "echo" and run["output"] == {"name": "Jon"}


async def test_a_run_made_by_an_api_is_recorded_with_every_field_of_a_run_made_on_v1_runs(client, caller, functions):
    await expose(client, "hello", "echo")
    response = await caller.post(f"/{ORG}/hello", json={"name": "Jon"})
    by_api = await answer(await call(client, "GET", f"/v1/runs/{response.headers['X-Dispatch-Run']}"), 200)
    by_exec = await answer(await call(client, "POST", "/v1/runs?functionName=echo",
                                      json={"blocking": True, "input": {"name": "Jon"}}), 200)
    assert by_api.keys() == by_exec.keys()
    varying = {"name", "httpContext", "executedTime", "finishedTime", "modifiedTime", "startedAt", "finishedAt",
               "durationMs"}
    assert ({k: v for k, v in by_api.items() if k not in varying}
            == {k: v for k, v in by_exec.items() if k not in varying})
    assert by_api["httpContext"]["uri"] == f"/{ORG}/hello" and by_exec["httpContext"] is None


async def test_a_get_turns_the_query_into_the_input_with_repeated_keys_as_arrays(client, caller, functions):
    await expose(client, "hello", "echo")
    response = await caller.get(f"/{ORG}/hello?a=1&a=2&b=3", data=b"ignored")
    assert await response.json() == {"a": ["1", "2"], "b": "3"}
    assert await (await caller.get(f"/{ORG}/hello")).json() == {}


async def test_a_form_body_becomes_an_object_of_its_fields(client, caller, functions):
    await expose(client, "hello", "echo")
    response = await caller.post(f"/{ORG}/hello", data=[("a", "1"), ("a", "2"), ("b", "3")])
    assert await response.json() == {"a": ["1", "2"], "b": "3"}


async def test_a_multipart_form_becomes_an_object_with_uploaded_files_as_text(client, caller, functions):
    await expose(client, "hello", "echo")
    form = FormData(default_to_multipart=True)
    for name, value in (("b", "3"), ("c", "4"), ("c", "5")):
        form.add_field(name, value)
    form.add_field("notes", io.BytesIO(b"line one\n"), filename="notes.txt", content_type="text/plain")
    response = await caller.post(f"/{ORG}/hello", data=form)
    assert response.status == 200, await response.text()
    assert await response.json() == {"b": "3", "c": ["4", "5"], "notes": "line one\n"}


@pytest.mark.parametrize("body", [
    b"no boundary here",
    b"--x\r\nnot a header\r\n\r\nbar\r\n--x--\r\n",
    b"--x\r\nContent-Disposition: form-data; name=a\r\nContent-Type: text/plain; charset=nope\r\n\r\nbar\r\n--x--\r\n",
])
async def test_a_malformed_multipart_body_answers_400(client, caller, functions, body):
    await expose(client, "hello", "echo")
    response = await caller.post(f"/{ORG}/hello", data=body,
                                 headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert response.status == 400 and "not a valid form" in (await response.json())["message"]
    assert await runs_of(client, "echo") == []


async def test_a_raw_body_without_content_type_is_passed_as_a_string(client, caller, functions):
    await expose(client, "hello", "echo")
    response = await caller.post(f"/{ORG}/hello", data=b"just text", skip_auto_headers=["Content-Type"])
    assert await response.json() == "just text"


async def test_an_empty_post_is_an_empty_object(client, caller, functions):
    await expose(client, "hello", "echo")
    assert await (await caller.post(f"/{ORG}/hello")).json() == {}


async def test_a_null_output_is_an_empty_200(client, caller, functions):
    await expose(client, "hello", "echo")
    response = await caller.post(f"/{ORG}/hello", data=b"null", headers={"Content-Type": "application/json"})
    assert response.status == 200 and await response.read() == b""


@pytest.mark.parametrize("form", [False, True])
async def test_a_body_over_the_size_limit_answers_413_with_a_json_message(client, settings, platform, functions, form):
    await expose(client, "hello", "echo")
    small = settings.model_copy(update={"max_payload_bytes": 1024})
    async with TestClient(TestServer(create_api_app(small, platform))) as small_caller:
        data = FormData({"a": "x" * 4096}, default_to_multipart=True) if form else b'"' + b"x" * 4096 + b'"'
        response = await small_caller.post(f"/{ORG}/hello", data=data,
                                           headers={} if form else {"Content-Type": "application/json"})
        assert response.status == 413 and "too large" in (await response.json())["message"]
    assert await runs_of(client, "echo") == []


@pytest.mark.parametrize("content_type", ["text/plain", "unsupported-content-type"])
async def test_an_unsupported_content_type_answers_415_naming_it_and_runs_nothing(client, caller, functions,
                                                                                  content_type):
    await expose(client, "hello", "echo")
    response = await caller.post(f"/{ORG}/hello", data=b"x", headers={"Content-Type": content_type})
    assert response.status == 415
    assert await response.json() == {"message": f"request body type is not supported: {content_type}"}
    assert await runs_of(client, "echo") == []


@pytest.mark.parametrize("content_type, body", [("application/json", b"{nope"), ("application/vnd.api+json", b"{nope"),
                                                ("application/json", b'{"a": NaN}'), ("application/json", b"Infinity")])
async def test_a_json_content_type_with_a_body_that_is_not_json_answers_400(client, caller, functions,
                                                                            content_type, body):
    await expose(client, "hello", "echo")
    response = await caller.post(f"/{ORG}/hello", data=body, headers={"Content-Type": content_type})
    assert response.status == 400 and await response.json() == {"message": "request body is not json"}


async def test_a_json_suffix_content_type_is_parsed(client, caller, functions):
    await expose(client, "hello", "echo")
    response = await caller.post(f"/{ORG}/hello", data=b'{"a": 1}',
                                 headers={"Content-Type": "application/vnd.api+json"})
    assert await response.json() == {"a": 1}


# --- routing --------------------------------------------------------------------------------

async def test_an_unknown_path_answers_404_no_api_found(client, caller, functions):
    await expose(client, "hello", "echo")
    for path in (f"/{ORG}/nothing", "/nothing", "/hello", f"/{ORG}/hello/more"):
        response = await caller.get(path)
        assert response.status == 404, path
        assert await response.json() == {"message": "no API found with those values"}


async def test_a_method_the_api_does_not_list_answers_404(client, caller, functions):
    await expose(client, "hello", "echo", methods=["GET"])
    response = await caller.delete(f"/{ORG}/hello")
    assert response.status == 404 and await response.json() == {"message": "no API found with those values"}
    assert await runs_of(client, "echo") == []


async def test_a_disabled_api_is_not_routed(client, caller, functions):
    await expose(client, "hello", "echo", enabled=False)
    response = await caller.get(f"/{ORG}/hello")
    assert response.status == 404 and await response.json() == {"message": "no API found with those values"}


async def test_a_deleted_api_stops_being_routed(client, caller, functions):
    await expose(client, "hello", "echo")
    assert (await caller.get(f"/{ORG}/hello")).status == 200
    assert (await answer(await call(client, "DELETE", "/v1/api/hello"), 200))["status"] == "DELETING"
    deadline = time.monotonic() + 10
    while (await caller.get(f"/{ORG}/hello")).status != 404:
        assert time.monotonic() < deadline, "still routed after delete"
        await asyncio.sleep(0.02)


async def test_an_api_with_hosts_keeps_its_uris_and_answers_only_those_hosts(client, caller, functions):
    api = await expose(client, "hello", "echo", uris=["/hello"], hosts=["api.example.com"])
    assert api["uris"] == ["/hello"]
    response = await caller.get("/hello?a=1", headers={"Host": "API.example.com:8081"})
    assert response.status == 200 and await response.json() == {"a": "1"}
    assert (await caller.get("/hello", headers={"Host": "other.example.com"})).status == 404


async def test_an_api_of_a_function_that_does_not_exist_passes_the_404_through(client, caller):
    await expose(client, "hello", "ghost")
    response = await caller.get(f"/{ORG}/hello")
    assert response.status == 404 and (await response.json())["message"] == "function ghost not found"


# --- runs behind the API --------------------------------------------------------------------

async def test_a_non_blocking_request_answers_empty_at_once_and_the_run_is_recorded(client, caller, functions):
    await expose(client, "hello", "echo")
    response = await caller.post(f"/{ORG}/hello", json={"n": 1}, headers={"x-dispatch-blocking": "false"})
    assert response.status == 200 and await response.read() == b""
    run = await reaches(client, f"/v1/runs/{response.headers['X-Dispatch-Run']}?functionName=echo")
    assert run["output"] == {"n": 1} and run["blocking"] is False


async def test_a_function_that_raises_answers_502_with_the_error_and_the_run(client, caller, functions):
    await expose(client, "hello", "boom")
    response = await caller.post(f"/{ORG}/hello", json={})
    assert response.status == 502
    body = await response.json()
    assert body == {"message": "boom", "type": "FunctionError", "run": response.headers["X-Dispatch-Run"]}
    run = await answer(await call(client, "GET", f"/v1/runs/{body['run']}"), 200)
    assert run["status"] == "ERROR"


async def test_a_value_error_in_the_function_answers_400_input_error(client, caller, functions):
    await expose(client, "hello", "picky")
    response = await caller.post(f"/{ORG}/hello", json={})
    assert response.status == 400
    assert await response.json() == {"message": "name is required", "type": "InputError",
                                      "run": response.headers["X-Dispatch-Run"]}


async def test_a_platform_that_does_not_answer_gives_a_json_503(client, caller, platform, functions, monkeypatch):
    await expose(client, "hello", "echo")

    async def silent(command, timeout=30.0):
        raise TimeoutError
    monkeypatch.setattr(platform, "write", silent)
    response = await caller.post(f"/{ORG}/hello", json={}, headers={"x-dispatch-blocking": "false"})
    assert response.status == 503 and (await response.json())["type"] == "SystemError"


async def test_a_cors_api_answers_options_with_200_and_every_answer_allows_any_origin(client, caller, functions):
    await expose(client, "hello", "echo", methods=["POST"], cors=True)
    preflight = await caller.options(f"/{ORG}/hello", headers={"Origin": "https://example.com",
                                                                "Access-Control-Request-Method": "POST"})
    assert preflight.status == 200 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert await runs_of(client, "echo") == []
    response = await caller.post(f"/{ORG}/hello", json={"a": 1})
    assert response.headers["Access-Control-Allow-Origin"] == "*" and await response.json() == {"a": 1}


async def test_an_api_without_cors_does_not_answer_options(client, caller, functions):
    await expose(client, "hello", "echo", methods=["POST"])
    response = await caller.options(f"/{ORG}/hello")
    assert response.status == 404 and "Access-Control-Allow-Origin" not in response.headers


async def test_an_https_only_api_over_http_answers_426_without_running_the_function(client, caller, functions):
    await expose(client, "hello", "echo", protocols=["https"])
    response = await caller.post(f"/{ORG}/hello", json={"a": 1})
    assert response.status == 426 and await response.json() == {"message": "Please use HTTPS protocol"}
    assert await runs_of(client, "echo") == []


async def test_an_https_only_api_behind_a_tls_terminating_proxy_is_served(client, caller, functions):
    await expose(client, "hello", "echo", protocols=["https"])
    response = await caller.post(f"/{ORG}/hello", json={"a": 1}, headers={"X-Forwarded-Proto": "https"})
    assert response.status == 200 and await response.json() == {"a": 1}


async def test_an_api_with_an_empty_protocol_list_serves_plain_http(client, caller, functions):
    await expose(client, "hello", "echo", protocols=[])
    assert (await caller.get(f"/{ORG}/hello")).status == 200


async def test_the_http_context_reaches_the_function_without_credentials(client, caller, functions):
    await expose(client, "ctx", "context")
    response = await caller.get(f"/{ORG}/ctx?x=1&y=2", headers={
        "X-Custom-Thing": "yes", "Authorization": "Bearer secret-token", "Cookie": "session=secret"})
    context = await response.json()
    assert context["method"] == "GET" and context["uri"] == f"/{ORG}/ctx" and context["args"] == "x=1&y=2"
    assert context["request_uri"] == f"/{ORG}/ctx?x=1&y=2" and context["scheme"] == "http"
    assert context["x-custom-thing"] == "yes"
    assert "authorization" not in context and "cookie" not in context
    assert "secret" not in str(context)
    run = await answer(await call(client, "GET", f"/v1/runs/{response.headers['X-Dispatch-Run']}"), 200)
    assert run["httpContext"]["x-custom-thing"] == "yes" and "authorization" not in run["httpContext"]


async def test_a_caller_cannot_pick_another_organization_with_the_header(client, caller, functions):
    await expose(client, "ctx", "context")
    response = await caller.get(f"/{ORG}/ctx", headers={"X-Dispatch-Org": "elsewhere"})
    assert response.status == 200
    assert (await response.json())["x-dispatch-org"] == ORG
    assert len(await runs_of(client, "context")) == 1
    assert await answer(await call(client, "GET", "/v1/runs", org="elsewhere"), 200) == []
