"""Who may call the management API: bearer tokens, organizations, policies (authentication on)."""
import asyncio
import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dispatch.gateway.app import create_app
from dispatch.gateway.auth import authority_for
from dispatch.iam.admin import first_start
from dispatch.iam.keys import new_key_pair
from dispatch.iam.tokens import account_token

from .conftest import source_of
from .test_gateway import answer


@pytest.fixture
async def admin(settings, platform):
    return await first_start(platform, "dispatch", settings.data_dir)


@pytest.fixture
async def client(settings, platform, admin):
    app = create_app(settings, platform, authority=authority_for(settings, platform))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def bearer(token: str, org: str | None = None) -> dict:
    return {"Authorization": f"Bearer {token}", **({"X-Dispatch-Org": org} if org is not None else {})}


async def request(client, method: str, path: str, token: str | None, org: str | None = None, **kwargs):
    headers = bearer(token, org) if token else ({"X-Dispatch-Org": org} if org else {})
    return await client.request(method, path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)


async def account(client, admin_token: str, org: str, name: str, rules: list[dict] | None,
                  global_: bool = False) -> str:
    """A service account of `org` with a policy of `rules`; its token."""
    pem, public = new_key_pair()
    await answer(await request(client, "POST", "/v1/iam/serviceaccount", admin_token, org,
                               json={"name": name, "publicKey": public}), 201)
    if rules:
        await answer(await request(client, "POST", "/v1/iam/policy", admin_token, org,
                                   json={"name": f"{name}-policy", "rules": rules, "global": global_}), 201)
    return account_token(f"{org}/{name}", pem)


async def test_without_a_token_only_the_open_paths_answer(client):
    for path in ("/", "/v1/version", "/healthz"):
        assert (await client.get(path)).status == 200
    for method, path in (("GET", "/v1/secret"), ("GET", "/v1/function"), ("POST", "/v1/runs?functionName=x"),
                         ("GET", "/home"), ("GET", "/v1/iam/policy"), ("GET", "/v1/openapi.json")):
        refused = await answer(await request(client, method, path, None, "dispatch"), 401)
        assert refused["code"] == 401 and "Bearer" in refused["message"]


async def test_the_first_administrator_may_do_anything_in_its_organization(client, admin):
    token = admin.token()
    assert await answer(await request(client, "GET", "/v1/secret", token), 200) == []
    created = await answer(await request(client, "POST", "/v1/secret", token,
                                         json={"name": "s", "secrets": {"k": "v"}}), 201)
    assert created["name"] == "s"
    assert (await answer(await request(client, "GET", "/home", token), 200))["message"]


def _signed(claims: dict, key, algorithm: str = "RS256", headers: dict | None = None) -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def _part(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_made(header: dict, claims: dict, sign) -> str:
    signing = f"{_part(json.dumps(header).encode())}.{_part(json.dumps(claims).encode())}"
    return f"{signing}.{_part(sign(signing.encode()))}"


def _claims(issuer: str, **changes) -> dict:
    now = int(time.time())
    return {"iss": issuer, "iat": now - 60, "exp": now + 3600, **changes}


async def test_every_kind_of_bad_token_is_refused_with_401(client, admin):
    pem = admin.key_file.read_bytes()
    private = serialization.load_pem_private_key(pem, password=None)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = {
        "alg none": _hand_made({"alg": "none", "typ": "JWT"}, _claims("dispatch/admin"), lambda signing: b""),
        "HMAC with the public key as secret": _hand_made(  # PyJWT itself refuses to make one
            {"alg": "HS256", "typ": "JWT"}, _claims("dispatch/admin"),
            lambda signing: hmac.new(public_pem, signing, hashlib.sha256).digest()),
        "signed by another key": _signed(_claims("dispatch/admin"), other),
        "expired": _signed(_claims("dispatch/admin", exp=int(time.time()) - 3600), private),
        "without exp": _signed({"iss": "dispatch/admin", "iat": int(time.time())}, private),
        "unknown account": _signed(_claims("dispatch/nobody"), private),
        "iss without organization": _signed(_claims("admin"), private),
        "not a JWT": "not-a-token",
        "platform issuer, signed by a client": jwt.encode({**_claims("dispatch"), "sub": "dispatch/admin"},
                                                          private, algorithm="RS256"),
    }
    for kind, token in bad.items():
        refused = await answer(await request(client, "GET", "/v1/secret", token), 401)
        assert refused["code"] == 401 and refused["message"].startswith("invalid token"), (kind, refused)
    basic = await request(client, "GET", "/v1/secret", None, headers={"Authorization": "Basic YTpi"})
    assert basic.status == 401


async def test_a_policy_grants_exactly_its_actions_and_a_refusal_is_403(client, admin):
    reader = await account(client, admin.token(), "dispatch", "ci", [
        {"subjects": ["ci"], "resources": ["function"], "actions": ["get"]}])
    assert await answer(await request(client, "GET", "/v1/function", reader), 200) == []
    refused = await answer(await request(client, "POST", "/v1/secret", reader, json={"name": "s", "secrets": {}}), 403)
    assert refused == {"code": 403, "message": "dispatch/ci may not create secret in organization dispatch"}
    assert (await request(client, "GET", "/v1/secret", reader)).status == 403
    assert (await request(client, "GET", "/v1/secret", admin.token())).status == 200
    nothing = await account(client, admin.token(), "dispatch", "idle", None)
    assert (await request(client, "GET", "/v1/function", nothing)).status == 403
    assert (await request(client, "GET", "/home", nothing)).status == 200  # authenticated, no resource


async def test_an_organization_is_taken_from_the_token_and_others_reveal_nothing(client, admin):
    token = admin.token()
    await answer(await request(client, "POST", "/v1/iam/organization", token, json={"name": "acme"}), 201)
    await answer(await request(client, "POST", "/v1/secret", token,
                               json={"name": "dispatch-only", "secrets": {"k": "v"}}), 201)
    tenant = await account(client, token, "acme", "owner", [{"subjects": ["*"], "resources": ["*"], "actions": ["*"]}])
    # the header names no organization: the account's own
    assert await answer(await request(client, "GET", "/v1/secret", tenant), 200) == []
    for path in ("/v1/secret", "/v1/secret/dispatch-only", "/v1/secret/not-there"):
        refused = await answer(await request(client, "GET", path, tenant, "dispatch"), 403)
        assert refused["message"] == "acme/owner may not get secret in organization dispatch"
    write = await request(client, "POST", "/v1/secret", tenant, "dispatch", json={"name": "planted", "secrets": {}})
    assert write.status == 403
    # the global administrator crosses organizations; one that does not exist is named
    assert await answer(await request(client, "GET", "/v1/secret", token, "acme"), 200) == []
    missing = await answer(await request(client, "GET", "/v1/secret", token, "nowhere"), 404)
    assert missing["message"] == "organization nowhere not found"


async def test_a_same_named_account_of_another_organization_gains_nothing_from_a_global_policy(client, admin):
    token = admin.token()
    await answer(await request(client, "POST", "/v1/iam/organization", token, json={"name": "acme"}), 201)
    impostor = await account(client, token, "acme", "admin", None)  # named like the global administrator
    for org in ("dispatch", "acme"):
        assert (await request(client, "GET", "/v1/secret", impostor, org)).status == 403


async def test_deleting_an_account_or_its_policy_takes_effect_at_once(client, admin):
    token = admin.token()
    ci = await account(client, token, "dispatch", "ci", [{"subjects": ["ci"], "resources": ["*"], "actions": ["get"]}])
    assert (await request(client, "GET", "/v1/function", ci)).status == 200
    await answer(await request(client, "DELETE", "/v1/iam/policy/ci-policy", token), 200)
    assert (await request(client, "GET", "/v1/function", ci)).status == 403
    await answer(await request(client, "DELETE", "/v1/iam/serviceaccount/ci", token), 200)
    gone = await answer(await request(client, "GET", "/v1/function", ci), 401)
    assert gone["message"] == "invalid token: service account dispatch/ci does not exist"


async def test_only_a_global_grant_makes_organizations_and_global_policies(client, admin):
    token = admin.token()
    await answer(await request(client, "POST", "/v1/iam/organization", token, json={"name": "acme"}), 201)
    tenant_admin = await account(client, token, "acme", "boss",
                                 [{"subjects": ["boss"], "resources": ["*"], "actions": ["*"]}])
    refused = await answer(await request(client, "POST", "/v1/iam/organization", tenant_admin,
                                         json={"name": "evil"}), 403)
    assert "global policy" in refused["message"]
    escalate = {"name": "everything", "global": True,
                "rules": [{"subjects": ["boss"], "resources": ["*"], "actions": ["*"]}]}
    assert (await request(client, "POST", "/v1/iam/policy", tenant_admin, json=escalate)).status == 403
    local = {**escalate, "global": False}
    assert (await request(client, "POST", "/v1/iam/policy", tenant_admin, json=local)).status == 201
    organizations = await answer(await request(client, "GET", "/v1/iam/organization", tenant_admin), 200)
    assert [o["name"] for o in organizations] == ["acme"]
    assert (await request(client, "GET", "/v1/iam/organization/dispatch", tenant_admin)).status == 404
    everyone = await answer(await request(client, "GET", "/v1/iam/organization", token), 200)
    assert sorted(o["name"] for o in everyone) == ["acme", "dispatch"]


async def test_an_organization_is_deleted_only_once_empty(client, admin):
    token = admin.token()
    await answer(await request(client, "POST", "/v1/iam/organization", token, json={"name": "acme"}), 201)
    await answer(await request(client, "POST", "/v1/secret", token, "acme", json={"name": "s", "secrets": {}}), 201)
    refused = await answer(await request(client, "DELETE", "/v1/iam/organization/acme", token), 409)
    assert refused["message"] == "organization acme still holds 1 secret: delete them first"
    await answer(await request(client, "DELETE", "/v1/secret/s", token, "acme"), 204)
    await answer(await request(client, "DELETE", "/v1/iam/organization/acme", token), 200)


async def test_a_service_account_needs_an_rsa_public_key(client, admin):
    for key, problem in (("bm90IGEga2V5", "not a PEM public key"), ("!!", "base64")):
        refused = await answer(await request(client, "POST", "/v1/iam/serviceaccount", admin.token(),
                                             json={"name": "x", "publicKey": key}), 422)
        assert problem in refused["message"]


async def test_a_request_naming_a_host_the_server_does_not_know_is_refused(client, admin):
    headers = bearer(admin.token())
    for host in ("127.0.0.1:8080", "localhost", "[::1]:8080"):
        assert (await client.get("/v1/secret", headers={**headers, "Host": host})).status == 200
    rebound = await answer(await client.get("/v1/secret", headers={**headers, "Host": "attacker.example:8080"}), 421)
    assert "attacker.example" in rebound["message"]


TOKEN_FUNCTION = b"""def handle(context, payload):
    return {"token": context.get("token"), "keys": sorted(context)}
"""


async def ready(client, token: str, org: str, name: str, **fields) -> None:
    body = {"name": name, "image": "py", "handler": "", "source": source_of({"f.py": TOKEN_FUNCTION}), **fields}
    await answer(await request(client, "POST", "/v1/function", token, org, json=body), 201)
    for _ in range(500):
        found = await answer(await request(client, "GET", f"/v1/function/{name}", token, org), 200)
        if found["status"] == "READY":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"function {name} never READY")


async def test_a_function_holds_no_credential_unless_given_an_account_and_then_exactly_its_rights(client, admin):
    token = admin.token()
    await answer(await request(client, "POST", "/v1/baseimage", token, json={
        "name": "py-base", "dockerUrl": "python:3", "language": "python3"}), 201)
    await answer(await request(client, "POST", "/v1/image", token,
                               json={"name": "py", "baseImageName": "py-base"}), 201)
    await account(client, token, "dispatch", "reader", [{"subjects": ["reader"], "resources": ["function"],
                                                         "actions": ["get"]}])
    await ready(client, token, "dispatch", "plain")
    await ready(client, token, "dispatch", "agent", serviceAccount="reader")

    plain = await answer(await request(client, "POST", "/v1/runs?functionName=plain", token,
                                       json={"blocking": True}), 200)
    assert plain["output"]["token"] is None and "token" not in plain["output"]["keys"]
    agent = await answer(await request(client, "POST", "/v1/runs?functionName=agent", token,
                                       json={"blocking": True}), 200)
    granted = agent["output"]["token"]
    assert (await request(client, "GET", "/v1/function", granted)).status == 200
    assert (await request(client, "GET", "/v1/secret", granted)).status == 403
    assert (await request(client, "GET", "/v1/function", granted, "acme")).status in (403, 404)


async def test_naming_a_service_account_on_a_function_takes_create_on_iam(client, admin):
    token = admin.token()
    writer = await account(client, token, "dispatch", "writer", [{"subjects": ["writer"], "resources": ["function"],
                                                                  "actions": ["*"]}])
    body = {"name": "borrow", "image": "py", "source": source_of({"f.py": TOKEN_FUNCTION}), "serviceAccount": "admin"}
    refused = await answer(await request(client, "POST", "/v1/function", writer, json=body), 403)
    assert refused["message"] == ("dispatch/writer may not give a function the service account admin:"
                                  " that takes create on iam")


async def test_the_openapi_document_describes_the_bearer_scheme_and_every_401_and_403(client, admin):
    document = await answer(await request(client, "GET", "/v1/openapi.json", admin.token()), 200)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{"bearer": []}]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            if path in ("/", "/v1/version", "/healthz", "/readyz", "/driver/{organization}/{driver}"):
                assert operation["security"] == [], path
            else:
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
