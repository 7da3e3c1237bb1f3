"""Who reaches an API and how: path parameters, basic and bearer authentication, CORS with
credentials, and the API fields the gateway refuses."""
import asyncio
import base64

import pytest

from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401 - fixtures

from .test_gateway import ORG, answer, call, gone, reaches
from .test_user_api import caller, client, functions, runs_of  # noqa: F401 - fixtures

USERS = {"alice": "wonder-land", "bob": "b0b"}
TOKENS = {"ci": "tok-ci-123", "ops": "tok-ops-456"}


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def expose(client, name: str, function: str, uris=None, methods=("GET", "POST"), **fields) -> dict:
    body = {"name": name, "function": function, "enabled": True, "uris": uris or [f"/{name}"],
            "methods": list(methods), **fields}
    await answer(await call(client, "POST", "/v1/api", json=body), 200)
    return await reaches(client, f"/v1/api/{name}")


async def secret(client, name: str, values: dict) -> None:
    await answer(await call(client, "POST", "/v1/secret", json={"name": name, "secrets": values}), 201)


async def test_path_parameters_reach_the_function_in_the_http_context(client, caller, functions):
    await expose(client, "user", "context", uris=["/users/{id}/posts/{post}"])
    response = await caller.get(f"/{ORG}/users/42/posts/first%20one")
    assert response.status == 200
    assert (await response.json())["params"] == {"id": "42", "post": "first one"}
    assert (await caller.get(f"/{ORG}/users/42/posts")).status == 404


async def test_an_exact_api_and_a_template_api_share_a_prefix(client, caller, functions):
    await expose(client, "me", "echo", uris=["/users/me"])
    await expose(client, "user", "context", uris=["/users/{id}"])
    assert await (await caller.get(f"/{ORG}/users/me?who=me")).json() == {"who": "me"}
    assert (await (await caller.get(f"/{ORG}/users/7")).json())["params"] == {"id": "7"}


async def test_of_two_apis_answering_the_same_paths_the_older_answers_until_it_goes(client, caller, functions):
    await expose(client, "user", "context", uris=["/users/{id}"])
    await expose(client, "other", "echo", uris=["/users/{name}"], methods=["GET"])
    assert (await (await caller.get(f"/{ORG}/users/7")).json())["params"] == {"id": "7"}
    await answer(await call(client, "DELETE", "/v1/api/user"), 200)
    await gone(client, "/v1/api/user")
    assert await (await caller.get(f"/{ORG}/users/7?who=me")).json() == {"who": "me"}


@pytest.mark.parametrize("fields, message", [
    ({"uris": ["/users/x{id}"]}, "a parameter is a whole segment"),
    ({"authentication": "oidc"}, "authentication 'oidc' is not supported"),
    ({"authentication": "basic"}, "needs authSecret"),
    ({"authentication": "basic", "authSecret": "nope"}, "authSecret: secret nope not found"),
    ({"tls": "cert"}, "tls needs hosts"),
    ({"tls": "nope", "hosts": ["a.example.com"]}, "tls: secret nope not found"),
])
async def test_an_api_the_gateway_cannot_serve_as_asked_is_refused_with_400(client, fields, message):
    body = {"name": "bad", "function": "echo", "enabled": True, "uris": ["/bad"], **fields}
    refused = await answer(await call(client, "POST", "/v1/api", json=body), 400)
    assert message in refused["message"]


async def test_basic_authentication_lets_in_only_a_user_of_the_secret(client, caller, functions):
    await secret(client, "users", USERS)
    await expose(client, "private", "context", authentication="basic", authSecret="users")
    for headers in ({}, basic("alice", "wrong"), basic("carol", "wonder-land"), {"Authorization": "Basic !!"},
                    {"Authorization": "Bearer wonder-land"}):
        refused = await caller.get(f"/{ORG}/private", headers=headers)
        assert refused.status == 401, headers
        assert refused.headers["WWW-Authenticate"].startswith(f'Basic realm="{ORG}/private"')
    assert await runs_of(client, "context") == []
    response = await caller.get(f"/{ORG}/private", headers={**basic("alice", "wonder-land"), "Cookie": "s=1"})
    assert response.status == 200
    context = await response.json()
    assert context["x-consumer-username"] == "alice"
    assert "authorization" not in context and "cookie" not in context and "wonder-land" not in str(context)


async def test_bearer_authentication_accepts_any_token_of_the_secret(client, caller, functions):
    await secret(client, "keys", TOKENS)
    await expose(client, "private", "context", authentication="bearer", authSecret="keys")
    missing = await caller.get(f"/{ORG}/private")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == f'Bearer realm="{ORG}/private"'
    wrong = await caller.get(f"/{ORG}/private", headers={"Authorization": "Bearer tok-ci-12"})
    assert wrong.status == 401 and 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    assert await wrong.json() == {"message": "invalid credentials"}
    response = await caller.get(f"/{ORG}/private", headers={"Authorization": "bearer tok-ops-456"})
    assert response.status == 200 and (await response.json())["x-consumer-username"] == "ops"


async def test_a_caller_cannot_claim_a_name_on_a_public_api(client, caller, functions):
    await expose(client, "open", "context")
    response = await caller.get(f"/{ORG}/open", headers={"X-Consumer-Username": "admin", "X-Consumer-Id": "1",
                                                          "X-Credential-Identifier": "admin"})
    context = await response.json()
    assert not {"x-consumer-username", "x-consumer-id", "x-credential-identifier"} & set(context)


async def test_a_changed_secret_is_in_force_within_a_second(client, caller, functions):
    await secret(client, "keys", TOKENS)
    await expose(client, "private", "echo", authentication="bearer", authSecret="keys")
    assert (await caller.get(f"/{ORG}/private", headers={"Authorization": "Bearer tok-ci-123"})).status == 200
    await answer(await call(client, "PUT", "/v1/secret/keys", json={"name": "keys", "secrets": {"ci": "rotated"}}), 201)
    changed = asyncio.get_running_loop().time()
    while (await caller.get(f"/{ORG}/private", headers={"Authorization": "Bearer tok-ci-123"})).status != 401:
        assert asyncio.get_running_loop().time() - changed < 1.5, "the old token still works"
        await asyncio.sleep(0.05)
    assert (await caller.get(f"/{ORG}/private", headers={"Authorization": "Bearer rotated"})).status == 200


async def test_a_cors_preflight_of_an_authenticated_api_needs_no_credentials_and_allows_authorization(
        client, caller, functions):
    await secret(client, "keys", TOKENS)
    await expose(client, "private", "echo", methods=["POST"], cors=True, authentication="bearer", authSecret="keys")
    preflight = await caller.options(f"/{ORG}/private", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    refused = await caller.post(f"/{ORG}/private", json={})
    assert refused.status == 401 and refused.headers["Access-Control-Allow-Origin"] == "*"
    allowed = await caller.post(f"/{ORG}/private", json={"a": 1}, headers={"Authorization": "Bearer tok-ci-123"})
    assert allowed.status == 200 and allowed.headers["Access-Control-Expose-Headers"] == "X-Dispatch-Run"


def test_create_api_names_the_credentials_and_certificate_secrets(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("create", "api", "private", "hello-py", "--auth", "bearer", "--auth-secret", "keys",
                 "-d", "api.example.com", "--tls", "api-cert")
    assert result.exit_code == 0, result.output
    body = fake.sent("POST")[0].body
    assert body["authentication"] == "bearer" and body["authSecret"] == "keys" and body["tls"] == "api-cert"
