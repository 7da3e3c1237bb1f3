"""The audit trail as its readers meet it: `GET /v1/audit`, authentication on."""
import asyncio
import json
import time

from dispatch.gateway.resources import KINDS
from dispatch.store.projections import RESOURCES

from .test_auth import account, admin, client, request  # noqa: F401  (fixtures)
from .test_gateway import answer

EVERYTHING = [{"subjects": ["*"], "resources": ["*"], "actions": ["*"]}]


async def trail(client, token: str, status: int = 200, **query) -> dict:
    params = {key: str(value) for key, value in query.items()}
    return await answer(await request(client, "GET", "/v1/audit", token, params=params), status)


async def eventually(client, token: str, count: int, **query) -> list[dict]:
    """The entries once there are `count` of them: refusals and secret reads are recorded in the
    background, after their answer."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        entries = (await trail(client, token, **query))["entries"]
        if len(entries) >= count or asyncio.get_running_loop().time() > deadline:
            return entries
        await asyncio.sleep(0.02)


def facts(entries: list[dict]) -> list[tuple]:
    return [(e["subject"], e["action"], e["resource"], e["name"], e["outcome"]) for e in entries]


async def test_an_allowed_create_update_and_delete_appear_with_their_subject_and_request_id(client, admin):
    token, started = admin.token(), time.time()
    for method, path, body, request_id in (
            ("POST", "/v1/application", {"name": "shop"}, "create-shop"),
            ("PUT", "/v1/application/shop", {"name": "shop", "tags": [{"key": "team", "value": "a"}]}, "update-shop"),
            ("DELETE", "/v1/application/shop", None, "delete-shop")):
        await answer(await request(client, method, path, token, json=body, headers={"X-Request-Id": request_id}), 200)
    entries = (await trail(client, token, resource="application"))["entries"]
    assert [(e["subject"], e["organization"], e["action"], e["resource"], e["kind"], e["name"], e["outcome"],
             e["requestId"]) for e in entries] == [
        ("dispatch/admin", "dispatch", "create", "application", "Application", "shop", "allowed", "create-shop"),
        ("dispatch/admin", "dispatch", "update", "application", "Application", "shop", "allowed", "update-shop"),
        ("dispatch/admin", "dispatch", "delete", "application", "Application", "shop", "allowed", "delete-shop")]
    assert all(started - 1 <= e["time"] <= time.time() and e["reason"] is None for e in entries)


async def test_the_first_start_and_identity_changes_are_in_the_trail(client, admin):
    token = admin.token()
    await account(client, token, "dispatch", "ci", [
        {"subjects": ["ci"], "resources": ["function"], "actions": ["get"]}])
    await answer(await request(client, "DELETE", "/v1/iam/policy/ci-policy", token), 200)
    assert facts((await trail(client, token, resource="iam"))["entries"]) == [
        ("system", "create", "iam", "dispatch", "allowed"),  # the first start's organization, account, policy
        ("system", "create", "iam", "admin", "allowed"),
        ("system", "create", "iam", "admin", "allowed"),
        ("dispatch/admin", "create", "iam", "ci", "allowed"),
        ("dispatch/admin", "create", "iam", "ci-policy", "allowed"),
        ("dispatch/admin", "delete", "iam", "ci-policy", "allowed")]


async def test_a_deletion_finished_by_the_platform_is_one_entry_and_status_changes_none(client, admin, platform):
    token = admin.token()
    await answer(await request(client, "POST", "/v1/baseimage", token,
                               json={"name": "py-base", "dockerUrl": "python:3", "language": "python3"}), 201)
    await settled_base_image(platform)
    await answer(await request(client, "DELETE", "/v1/baseimage/py-base", token), 200)
    await gone_base_image(platform)
    assert facts((await trail(client, token, resource="baseimage"))["entries"]) == [
        ("dispatch/admin", "create", "baseimage", "py-base", "allowed"),
        ("dispatch/admin", "delete", "baseimage", "py-base", "allowed")]


async def settled_base_image(platform) -> None:
    for _ in range(500):
        found = await platform.views.get_resource("dispatch", "BaseImage", "py-base")
        if found and found["status"] == "READY":
            return
        await asyncio.sleep(0.02)
    raise AssertionError("py-base never READY")


async def gone_base_image(platform) -> None:
    for _ in range(500):
        if await platform.views.get_resource("dispatch", "BaseImage", "py-base") is None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("py-base never deleted")


async def test_a_refused_request_appears_as_denied_with_its_reason(client, admin):
    reader = await account(client, admin.token(), "dispatch", "ci", [
        {"subjects": ["ci"], "resources": ["function"], "actions": ["get"]}])
    refused = await request(client, "POST", "/v1/secret", reader, json={"name": "s", "secrets": {"k": "v"}},
                            headers={"X-Request-Id": "sneaky"})
    assert refused.status == 403
    [entry] = await eventually(client, admin.token(), 1, outcome="denied", subject="dispatch/ci")
    assert (entry["subject"], entry["action"], entry["resource"], entry["outcome"], entry["requestId"]) == (
        "dispatch/ci", "create", "secret", "denied", "sneaky")
    assert entry["reason"] == "dispatch/ci may not create secret in organization dispatch"


async def test_a_secret_read_appears_and_no_value_appears_anywhere(client, admin, platform):
    token = admin.token()
    await answer(await request(client, "POST", "/v1/secret", token,
                               json={"name": "db", "secrets": {"password": "hunter2-in-plain"}}), 201)
    shown = await answer(await request(client, "GET", "/v1/secret/db", token, headers={"X-Request-Id": "peek"}), 200)
    assert shown["secrets"] == {"password": "hunter2-in-plain"}
    await answer(await request(client, "GET", "/v1/secret", token), 200)  # a list masks the values: no read
    await answer(await request(client, "PUT", "/v1/secret/db", token,
                               json={"name": "db", "secrets": {"password": "changed-in-plain"}}), 201)
    entries = await eventually(client, token, 3, resource="secret")
    assert [(e["action"], e["name"], e["subject"], e["outcome"]) for e in entries] == [
        ("create", "db", "dispatch/admin", "allowed"), ("get", "db", "dispatch/admin", "allowed"),
        ("update", "db", "dispatch/admin", "allowed")]
    assert entries[1]["requestId"] == "peek" and entries[1]["kind"] == "Secret"
    everything = await request(client, "GET", "/v1/audit", token)
    assert "in-plain" not in await everything.text()
    assert "in-plain" not in json.dumps(await platform.views.dump(), default=str)


async def test_entries_are_filtered_by_subject_resource_name_and_time(client, admin):
    token = admin.token()
    writer = await account(client, token, "dispatch", "writer", [
        {"subjects": ["writer"], "resources": ["application", "secret"], "actions": ["*"]}])
    for name in ("one", "two"):
        await answer(await request(client, "POST", "/v1/application", writer, json={"name": name}), 200)
    await answer(await request(client, "POST", "/v1/secret", writer, json={"name": "one", "secrets": {}}), 201)
    mine = (await trail(client, token, subject="dispatch/writer"))["entries"]
    assert facts(mine) == [("dispatch/writer", "create", "application", "one", "allowed"),
                           ("dispatch/writer", "create", "application", "two", "allowed"),
                           ("dispatch/writer", "create", "secret", "one", "allowed")]
    assert facts((await trail(client, token, name="one", resource="secret"))["entries"]) == [facts(mine)[2]]
    assert [e["name"] for e in (await trail(client, token, name="one"))["entries"]] == ["one", "one"]
    assert (await trail(client, token, since=mine[-1]["time"] + 5))["entries"] == []
    assert len((await trail(client, token, since=mine[0]["time"]))["entries"]) == 3
    assert (await trail(client, token, 400, since="yesterday"))["message"].startswith("since in query")


async def test_pages_follow_one_another_by_position(client, admin):
    token = admin.token()
    for i in range(7):
        await answer(await request(client, "POST", "/v1/application", token, json={"name": f"app{i}"}), 200)
    pages, after = [], 0
    while True:
        page = await trail(client, token, resource="application", limit=3, after=after)
        pages.append([e["name"] for e in page["entries"]])
        if page["next"] is None:
            break
        assert page["next"] == page["entries"][-1]["position"]
        after = page["next"]
    assert pages == [["app0", "app1", "app2"], ["app3", "app4", "app5"], ["app6"]]
    assert (await trail(client, token))["next"] is None  # 3 first-start entries and 7: one page of 100
    assert len((await trail(client, token, limit=5000))["entries"]) == 10  # at most 1000 a page
    assert (await trail(client, token, 400, limit=0))["message"] == "limit in query must be 1 or more"


async def test_a_subject_without_get_on_audit_is_refused_and_the_refusal_recorded(client, admin):
    token = admin.token()
    reader = await account(client, token, "dispatch", "ci", [
        {"subjects": ["ci"], "resources": ["function", "secret"], "actions": ["*"]}])
    refused = await trail(client, reader, 403)
    assert refused["message"] == "dispatch/ci may not get audit in organization dispatch"
    [entry] = await eventually(client, token, 1, resource="audit")
    assert facts([entry]) == [("dispatch/ci", "get", "audit", "", "denied")]
    auditor = await account(client, token, "dispatch", "auditor", [
        {"subjects": ["auditor"], "resources": ["audit"], "actions": ["get"]}])
    assert (await trail(client, auditor, resource="audit"))["entries"][0]["subject"] == "dispatch/ci"


async def test_another_organizations_entries_are_shown_only_to_a_global_policy(client, admin):
    token = admin.token()
    await answer(await request(client, "POST", "/v1/iam/organization", token, json={"name": "acme"}), 201)
    tenant = await account(client, token, "acme", "owner", EVERYTHING)
    await answer(await request(client, "POST", "/v1/secret", tenant, json={"name": "acme-secret", "secrets": {}}), 201)
    await answer(await request(client, "POST", "/v1/secret", token, json={"name": "home-secret", "secrets": {}}), 201)

    theirs = (await trail(client, tenant))["entries"]
    assert {e["organization"] for e in theirs} == {"acme"}
    assert "acme-secret" in {e["name"] for e in theirs} and "home-secret" not in {e["name"] for e in theirs}
    for elsewhere in ("dispatch", "*"):
        refused = await trail(client, tenant, 403, organization=elsewhere)
        assert refused["message"].startswith("acme/owner may not get audit of ")
    assert (await request(client, "GET", "/v1/audit", tenant, "dispatch")).status == 403  # nor by the header

    ours = (await trail(client, token))["entries"]
    assert {e["organization"] for e in ours} == {"dispatch"} and "home-secret" in {e["name"] for e in ours}
    assert "acme-secret" in {e["name"] for e in (await trail(client, token, organization="acme"))["entries"]}
    every = (await trail(client, token, organization="*", resource="secret"))["entries"]
    assert [(e["organization"], e["name"]) for e in every] == [("acme", "acme-secret"), ("dispatch", "home-secret")]


async def test_the_openapi_document_describes_the_audit_trail(client, admin):
    document = await answer(await request(client, "GET", "/v1/openapi.json", admin.token()), 200)
    operation = document["paths"]["/v1/audit"]["get"]
    assert {"subject", "resource", "name", "since", "after", "limit", "organization"} <= {
        p["name"] for p in operation["parameters"]}
    assert {"200", "400", "401", "403"} <= set(operation["responses"])
    assert "outcome" in document["components"]["schemas"]["AuditEntry"]["properties"]


def test_every_kind_is_audited_under_the_policy_resource_of_its_path():
    assert {kind.name: kind.path.split("/")[0] for kind in KINDS} == RESOURCES
