"""The Kong driver against a double of Kong's Admin API (tests/kong_admin.py): what an API becomes
in Kong, and how reconciliation repairs Kong after hand edits, restarts and deletions."""
import asyncio
import base64
import contextlib
import json

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dispatch.drivers.kong import KongError, KongGateway
from dispatch.drivers.ports import Route
from dispatch.gateway.app import create_api_app, create_app
from dispatch.handlers.bootstrap import bootstrap
from tests.fakes import InProcessRuntime
from tests.kong_admin import KongAdmin, kong_hash
from tests.kong_proxy import KongProxy

from .test_gateway import answer, call, reaches, ready_function, seed_image
from .test_user_api import CONTEXT
from .test_user_api_tls import free_port

TAG = "dispatch-installation:dispatch"


def route(api: str, *uris: str, org="o", cors=False, methods=("GET",), hosts=(), protocols=("http", "https"),
          basic="") -> Route:
    """`basic` names the secret of a basic-auth API."""
    return Route(organization=org, api=api, function="f", methods=tuple(methods), uris=uris or (f"/{org}/{api}",),
                 hosts=tuple(hosts), protocols=tuple(protocols), cors=cors,
                 authentication="basic" if basic else "public", auth_secret=basic)


@pytest.fixture
async def kong():
    double = KongAdmin()
    server = TestServer(double.app())
    await server.start_server()
    double.url = str(server.make_url("")).rstrip("/")
    yield double
    await server.close()


@pytest.fixture
def secrets() -> dict[tuple[str, str], dict[str, str]]:
    """(organization, secret) -> its opened values, as the platform hands them to the driver."""
    return {("o", "team"): {"alice": "s3cret", "bob": "hunter2"}}


@pytest.fixture
async def gateway(kong, secrets):
    async def users(organization: str, secret: str) -> dict[str, str]:
        return dict(secrets.get((organization, secret), {}))

    driver = KongGateway(kong.url, "http://10.0.0.5:8081", installation="dispatch", users=users)
    yield driver
    await driver.close()


def objects(kong: KongAdmin, kind: str) -> dict[str, dict]:
    return {o.get("name") or o.get("username") or o["id"]: o for o in kong.store[kind].values()}


async def by_hand(kong: KongAdmin, method: str, path: str, **body) -> web.Response:
    """A change made in Kong through its Admin API by someone else than Dispatch."""
    async with aiohttp.ClientSession() as admin:
        async with admin.request(method, kong.url + path, json=body or None) as response:
            response.body = await response.json(content_type=None) if response.status != 204 else None
            return response


async def test_an_api_becomes_a_tagged_service_route_and_cors_plugin_proxying_to_the_user_api_port(kong, gateway):
    await gateway.register(route("users", "/o/users/{id}", "/o/users/me", cors=True, methods=["GET", "POST"],
                                 protocols=["https"]))
    service = objects(kong, "services")["dispatch.o.users"]
    assert (service["protocol"], service["host"], service["port"]) == ("http", "10.0.0.5", 8081)
    kong_route = objects(kong, "routes")["dispatch.o.users"]
    assert kong_route["service"] == {"id": service["id"]}
    assert kong_route["paths"] == ["~/o/users/(?<id>[^/]+)$", "~/o/users/me$"]
    assert kong_route["methods"] == ["GET", "POST", "OPTIONS"] and kong_route["protocols"] == ["https"]
    assert kong_route["preserve_host"] is True and kong_route["strip_path"] is False
    assert kong_route["https_redirect_status_code"] == 426
    (plugin,) = kong.store["plugins"].values()
    assert plugin["name"] == "cors" and plugin["route"] == {"id": kong_route["id"]}
    assert plugin["config"]["origins"] == ["*"] and "X-Dispatch-Run" in plugin["config"]["exposed_headers"]
    assert all(TAG in o["tags"] for kind in ("services", "routes", "plugins") for o in kong.store[kind].values())


async def test_registering_again_after_a_change_updates_in_place_and_drops_cors(kong, gateway):
    await gateway.register(route("users", cors=True))
    ids = {kind: set(kong.store[kind]) for kind in ("services", "routes")}
    await gateway.register(route("users", "/o/people", cors=False, hosts=["api.example.com"]))
    assert {kind: set(kong.store[kind]) for kind in ("services", "routes")} == ids
    kong_route = objects(kong, "routes")["dispatch.o.users"]
    assert kong_route["paths"] == ["~/o/people$"] and kong_route["hosts"] == ["api.example.com"]
    assert kong.store["plugins"] == {}


async def test_unregister_removes_the_plugin_route_and_service(kong, gateway):
    await gateway.register(route("users", cors=True))
    await gateway.unregister("o", "users")
    assert all(kong.store[kind] == {} for kind in ("services", "routes", "plugins"))
    await gateway.unregister("o", "users")  # already gone: nothing to do, no error


async def test_sync_repairs_drift_and_removes_what_no_api_wants_but_leaves_foreign_objects(kong, gateway):
    await gateway.sync([route("a", cors=True), route("b"), route("gone", cors=True)])
    a_route = objects(kong, "routes")["dispatch.o.a"]
    a_route["paths"] = ["/hacked"]  # edited by hand in Kong
    kong._remove("plugins", next(iter(kong.store["plugins"])))  # a plugin deleted by hand
    b_route = objects(kong, "routes")["dispatch.o.b"]
    kong._remove("routes", b_route["id"])  # a route lost between two writes
    kong.store["services"]["x"] = {"id": "x", "name": "someone-else", "host": "h", "tags": ["theirs"]}
    kong.order["services"].append("x")
    await gateway.sync([route("a", cors=True), route("b")])
    assert objects(kong, "routes")["dispatch.o.a"]["paths"] == ["~/o/a$"]
    assert set(objects(kong, "routes")) == {"dispatch.o.a", "dispatch.o.b"}
    assert set(objects(kong, "services")) == {"dispatch.o.a", "dispatch.o.b", "someone-else"}
    assert [p["route"]["id"] for p in kong.store["plugins"].values()] == [objects(kong, "routes")["dispatch.o.a"]["id"]]


async def test_sync_of_an_unchanged_installation_writes_nothing(kong, gateway):
    wanted = [route("a", cors=True), route("b", "/o/b/{x}"), route("c", cors=True, basic="team")]
    await gateway.sync(wanted)
    kong.writes.clear()
    await gateway.sync(wanted)
    assert kong.writes == []


async def test_sync_reads_every_page_of_kong_lists(kong, gateway):
    for i in range(230):
        await gateway.register(route(f"api{i}"))
    kong.writes.clear()
    await gateway.sync([route("api7")])
    assert set(objects(kong, "services")) == {"dispatch.o.api7"}
    assert len([w for w in kong.writes if w[0] == "DELETE"]) == 2 * 229


async def test_installations_sharing_a_kong_do_not_touch_each_others_objects(kong, gateway):
    other = KongGateway(kong.url, "http://10.0.0.6:8081", installation="staging")
    try:
        await other.register(route("a"))
        await gateway.sync([route("a")])
        await gateway.sync([])
        assert set(objects(kong, "services")) == {"staging.o.a"}
    finally:
        await other.close()


# --- basic authentication: a basic-auth plugin, and a consumer per user of the secret -------------

async def test_a_basic_api_gets_the_basic_auth_plugin_and_a_consumer_per_user_holding_only_a_hash(kong, gateway):
    await gateway.register(route("users", basic="team"))
    (plugin,) = kong.store["plugins"].values()
    assert plugin["name"] == "basic-auth"
    assert plugin["route"] == {"id": objects(kong, "routes")["dispatch.o.users"]["id"]}
    assert plugin["config"]["hide_credentials"] is False  # the user-API port checks the secret again
    people = objects(kong, "consumers")
    assert set(people) == {"dispatch.o.team.alice", "dispatch.o.team.bob"}
    assert all(TAG in o["tags"] for kind in ("plugins", "consumers", "basic-auths") for o in kong.store[kind].values())
    alice = objects(kong, "basic-auths")["alice"]
    assert alice["consumer"] == {"id": people["dispatch.o.team.alice"]["id"]}
    assert alice["password"] == kong_hash(people["dispatch.o.team.alice"]["id"], "s3cret")
    assert "s3cret" not in json.dumps(kong.store) and "hunter2" not in json.dumps(kong.store)


async def test_sync_replaces_a_rotated_password_adds_new_users_and_deletes_removed_ones(kong, gateway, secrets):
    await gateway.sync([route("users", basic="team")])
    alice = objects(kong, "consumers")["dispatch.o.team.alice"]
    secrets[("o", "team")] = {"alice": "n3w", "carol": "pw"}
    await gateway.sync([route("users", basic="team")])
    assert set(objects(kong, "consumers")) == {"dispatch.o.team.alice", "dispatch.o.team.carol"}
    credentials = objects(kong, "basic-auths")
    assert set(credentials) == {"alice", "carol"}  # bob's went with his consumer
    assert credentials["alice"]["password"] == kong_hash(alice["id"], "n3w")
    assert objects(kong, "consumers")["dispatch.o.team.alice"]["id"] == alice["id"]


async def test_a_secrets_consumers_stay_while_a_basic_api_names_it_and_go_with_the_last_one(kong, gateway, secrets):
    secrets[("o", "ops")] = {"root": "pw"}
    for api, secret in (("a", "team"), ("b", "team"), ("c", "ops")):
        await gateway.register(route(api, basic=secret))
    await gateway.unregister("o", "a")
    assert set(objects(kong, "basic-auths")) == {"alice", "bob", "root"}  # b still needs alice and bob
    await gateway.unregister("o", "b")
    assert set(objects(kong, "consumers")) == {"dispatch.o.ops.root"}
    assert set(objects(kong, "basic-auths")) == {"root"}
    await gateway.register(route("c"))  # c is public now
    assert all(kong.store[kind] == {} for kind in ("plugins", "consumers", "basic-auths"))


async def test_sync_repairs_hand_edited_credentials_and_plugins_and_leaves_untagged_consumers_alone(kong, gateway):
    await gateway.sync([route("users", basic="team")])
    alice = objects(kong, "consumers")["dispatch.o.team.alice"]
    plugin_id = next(iter(kong.store["plugins"]))
    await by_hand(kong, "PATCH", f"/consumers/{alice['id']}/basic-auth/alice", password="guessed")
    await by_hand(kong, "DELETE", f"/basic-auths/{objects(kong, 'basic-auths')['bob']['id']}")
    await by_hand(kong, "PATCH", f"/plugins/{plugin_id}", config={"hide_credentials": True})
    await by_hand(kong, "POST", "/consumers", username="hand-made")
    await by_hand(kong, "POST", "/consumers/hand-made/basic-auth", username="carol", password="theirs")
    await gateway.sync([route("users", basic="team")])
    credentials = objects(kong, "basic-auths")
    assert credentials["alice"]["password"] == kong_hash(alice["id"], "s3cret") and "bob" in credentials
    assert kong.store["plugins"][plugin_id]["config"]["hide_credentials"] is False
    await gateway.sync([])
    assert set(objects(kong, "consumers")) == {"hand-made"} and set(objects(kong, "basic-auths")) == {"carol"}


async def test_a_user_name_kong_already_holds_fails_the_registration_with_the_reason_and_spares_the_others(
        kong, gateway):
    await by_hand(kong, "POST", "/consumers", username="someone")
    await by_hand(kong, "POST", "/consumers/someone/basic-auth", username="alice", password="theirs")
    with pytest.raises(KongError, match="basic-auth user alice of secret team: Kong already has a basic-auth"):
        await gateway.register(route("users", basic="team"))
    credentials = objects(kong, "basic-auths")
    assert credentials["alice"]["password"] == kong_hash(objects(kong, "consumers")["someone"]["id"], "theirs")
    assert "bob" in credentials
    await gateway.sync([route("users", basic="team")])  # reconciliation reports it and goes on
    assert objects(kong, "basic-auths")["alice"]["consumer"] == {"id": objects(kong, "consumers")["someone"]["id"]}


async def test_a_credential_written_meanwhile_on_this_installations_consumer_is_taken_over_not_refused(kong, gateway):
    """As when a reconciliation and a registration write the same user at once."""
    await by_hand(kong, "PUT", "/consumers/dispatch.o.team.alice", tags=[TAG])
    await by_hand(kong, "POST", "/consumers/dispatch.o.team.alice/basic-auth", username="alice", password="old")
    await gateway.register(route("users", basic="team"))
    alice = objects(kong, "basic-auths")["alice"]
    assert alice["password"] == kong_hash(objects(kong, "consumers")["dispatch.o.team.alice"]["id"], "s3cret")
    assert TAG in alice["tags"]


async def test_the_kong_double_keeps_consumer_and_credential_names_unique_and_shows_only_password_hashes(kong):
    first = await by_hand(kong, "POST", "/consumers", username="a")
    assert first.status == 201 and (await by_hand(kong, "POST", "/consumers", username="a")).status == 409
    await by_hand(kong, "POST", "/consumers", username="b")
    created = await by_hand(kong, "POST", "/consumers/a/basic-auth", username="u", password="pw")
    assert created.status == 201 and created.body["password"] == kong_hash(first.body["id"], "pw")
    assert (await by_hand(kong, "POST", "/consumers/b/basic-auth", username="u", password="pw")).status == 409
    assert (await by_hand(kong, "GET", "/consumers/a/basic-auth")).body["data"][0]["password"] != "pw"
    assert (await by_hand(kong, "DELETE", "/consumers/a")).status == 204
    assert (await by_hand(kong, "GET", "/basic-auths/u")).status == 404


# --- the platform with --api-gateway kong ----------------------------------------------------

def kong_settings(settings, kong, **more):
    return settings.model_copy(update={"api_gateway": "kong", "kong_admin_url": kong.url, "kong_sync_seconds": 0.2,
                                       "kong_upstream_url": "http://dispatch-api:8081", **more})


async def started(settings):
    platform = bootstrap(settings, runtime=InProcessRuntime())
    await platform.start()
    return platform


async def eventually(check, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.05)


async def test_apis_created_and_deleted_on_the_platform_are_registered_and_removed_in_kong(settings, kong):
    settings = kong_settings(settings, kong)
    platform = await started(settings)
    try:
        async with TestClient(TestServer(create_app(settings, platform))) as client:
            body = {"name": "hello", "function": "f", "enabled": True, "uris": ["/hello/{who}"], "cors": True,
                    "methods": ["POST"]}
            await answer(await call(client, "POST", "/v1/api", json=body), 200)
            await reaches(client, "/v1/api/hello")
            assert objects(kong, "routes")["dispatch.o.hello"]["paths"] == ["~/o/hello/(?<who>[^/]+)$"]
            assert objects(kong, "services")["dispatch.o.hello"]["host"] == "dispatch-api"
            await answer(await call(client, "DELETE", "/v1/api/hello"), 200)
            await eventually(lambda: all(kong.store[k] == {} for k in ("services", "routes", "plugins")))
    finally:
        await platform.close()


async def test_after_a_restart_kong_is_repaired_and_apis_deleted_meanwhile_are_removed(settings, kong):
    settings = kong_settings(settings, kong, kong_sync_seconds=3600)  # only the reconciliation at start
    platform = await started(settings)
    try:
        async with TestClient(TestServer(create_app(settings, platform))) as client:
            for name in ("keep", "drop"):
                await answer(await call(client, "POST", "/v1/api",
                                        json={"name": name, "function": "f", "enabled": True, "uris": [f"/{name}"]}),
                             200)
                await reaches(client, f"/v1/api/{name}")
    finally:
        await platform.close()
    # while Dispatch is down: Kong is edited by hand, and loses the API that should stay
    objects(kong, "routes")["dispatch.o.drop"]["methods"] = ["DELETE"]
    kong._remove("routes", objects(kong, "routes")["dispatch.o.keep"]["id"])
    platform = await started(settings)
    try:
        await eventually(lambda: "dispatch.o.keep" in objects(kong, "routes"))
        await eventually(lambda: objects(kong, "routes")["dispatch.o.drop"]["methods"] == ["GET"])
        async with TestClient(TestServer(create_app(settings, platform))) as client:
            await answer(await call(client, "DELETE", "/v1/api/drop"), 200)
        await eventually(lambda: set(objects(kong, "services")) == {"dispatch.o.keep"})
        assert objects(kong, "routes")["dispatch.o.keep"]["paths"] == ["~/o/keep$"]
    finally:
        await platform.close()


async def test_an_api_kong_refuses_goes_error_with_kongs_reason(settings, kong):
    settings = kong_settings(settings, kong, kong_admin_url="http://127.0.0.1:9")  # nothing listens there
    platform = await started(settings)
    try:
        async with TestClient(TestServer(create_app(settings, platform))) as client:
            await answer(await call(client, "POST", "/v1/api",
                                    json={"name": "hello", "function": "f", "enabled": True}), 200)
            failed = await reaches(client, "/v1/api/hello", status="ERROR")
            assert "Kong's Admin API at http://127.0.0.1:9 cannot be reached" in failed["reason"][0]
    finally:
        await platform.close()


@contextlib.asynccontextmanager
async def through_kong(settings, kong, **more):
    """The platform with its user-API port listening, its management API, and the double's proxy
    side in front of that port: (management client, proxy client, proxy)."""
    api_port = free_port()
    settings = kong_settings(settings, kong, kong_upstream_url=f"http://127.0.0.1:{api_port}", **more)
    platform = await started(settings)
    runner = web.AppRunner(create_api_app(settings, platform))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", api_port).start()
    front = KongProxy(kong)
    try:
        async with TestClient(TestServer(create_app(settings, platform))) as client, \
                TestClient(TestServer(front.app())) as proxy:
            await seed_image(client)
            await ready_function(client, "context", CONTEXT)
            yield client, proxy, front
    finally:
        await runner.cleanup()
        await platform.close()


async def test_a_request_through_kong_reaches_the_function_with_auth_and_https_checked(settings, kong):
    """End to end through the double's proxy side: Kong routes and refuses plain HTTP, the
    user-API port behind it authenticates bearer tokens and runs the function."""
    async with through_kong(settings, kong) as (client, proxy, _):
        await answer(await call(client, "POST", "/v1/secret", json={"name": "keys", "secrets": {"ci": "t0k"}}), 201)
        for body in ({"name": "hello", "function": "context", "enabled": True, "uris": ["/hello/{who}"],
                      "methods": ["POST"], "cors": True},
                     {"name": "secure", "function": "context", "enabled": True, "uris": ["/secure"],
                      "protocols": ["https"], "authentication": "bearer", "authSecret": "keys"}):
            await answer(await call(client, "POST", "/v1/api", json=body), 200)
            await reaches(client, f"/v1/api/{body['name']}")
        hello = await proxy.post("/o/hello/jon", json={"a": 1})
        assert hello.status == 200 and (await hello.json())["params"] == {"who": "jon"}
        assert hello.headers["Access-Control-Allow-Origin"] == "*" and hello.headers["X-Dispatch-Run"]
        preflight = await proxy.options("/o/hello/jon", headers={"Origin": "https://a.example",
                                                                "Access-Control-Request-Method": "POST"})
        assert preflight.status == 200 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
        plain = await proxy.get("/o/secure", headers={"Authorization": "Bearer t0k"})
        assert plain.status == 426 and await plain.json() == {"message": "Please use HTTPS protocol"}
        tls = {"X-Test-Client-TLS": "1"}
        assert (await proxy.get("/o/secure", headers=tls)).status == 401
        allowed = await proxy.get("/o/secure", headers={**tls, "Authorization": "Bearer t0k"})
        context = await allowed.json()
        assert allowed.status == 200 and context["scheme"] == "https" and context["x-consumer-username"] == "ci"
        assert "authorization" not in context
        assert kong.store["consumers"] == {}  # bearer tokens stay with Dispatch


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_through_kong_a_wrong_basic_password_never_reaches_dispatch_and_a_rotated_one_works_at_once(
        settings, kong):
    """Only the secret's change brings the new password to Kong here: reconciliation is hourly."""
    async with through_kong(settings, kong, kong_sync_seconds=3600) as (client, proxy, front):
        team = {"name": "team", "secrets": {"alice": "s3cret"}}
        await answer(await call(client, "POST", "/v1/secret", json=team), 201)
        private = {"name": "private", "function": "context", "enabled": True, "uris": ["/private"],
                   "authentication": "basic", "authSecret": "team", "cors": True}
        await answer(await call(client, "POST", "/v1/api", json=private), 200)
        await reaches(client, "/v1/api/private")
        for headers in ({}, basic("alice", "nope"), basic("mallory", "s3cret")):
            refused = await proxy.get("/o/private", headers=headers)
            assert refused.status == 401 and await refused.json() == {"message": "Unauthorized"}
            assert refused.headers["WWW-Authenticate"] == 'Basic realm="service"'  # Kong's, not Dispatch's
            assert refused.headers["Access-Control-Allow-Origin"] == "*"
        assert front.forwarded == []
        allowed = await proxy.get("/o/private", headers=basic("alice", "s3cret"))
        context = await allowed.json()
        assert allowed.status == 200 and context["x-consumer-username"] == "alice" and "authorization" not in context
        await answer(await call(client, "PUT", "/v1/secret/team", json={**team, "secrets": {"alice": "n3w"}}), 201)
        alice = objects(kong, "consumers")["dispatch.o.team.alice"]["id"]
        await eventually(lambda: objects(kong, "basic-auths")["alice"]["password"] == kong_hash(alice, "n3w"))
        old = await proxy.get("/o/private", headers=basic("alice", "s3cret"))
        assert old.status == 401 and old.headers["WWW-Authenticate"] == 'Basic realm="service"'
        for _ in range(40):  # the user-API port keeps a secret's values opened for a second
            if (await proxy.get("/o/private", headers=basic("alice", "n3w"))).status == 200:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the new password was never accepted")
        await answer(await call(client, "DELETE", "/v1/api/private"), 200)
        await eventually(lambda: all(kong.store[k] == {} for k in ("plugins", "consumers", "basic-auths")))
