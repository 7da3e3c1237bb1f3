"""Kong 3.x as the API gateway, through its Admin API: per API one service (pointing at the
user-API port of this installation), one route, a `cors` plugin for CORS and a `basic-auth`
plugin for basic authentication, all tagged with the installation and kept in step by
reconciliation. The users of a basic API's secret become Kong consumers, one per (installation,
organization, secret, user), each with one `basic-auth` credential (Kong keeps only its hash).

Kong routes, terminates plain HTTP for https-only APIs (426), answers CORS pre-flights and
refuses basic callers it does not know; it forwards the request unchanged (path, Host,
Authorization: `hide_credentials` is off) to the user-API port, which matches the same route
again, checks the credentials against the secret itself and runs the function. So Kong is a
first wall, the secret stays the one truth (a replaced password is refused within a second, even
while Kong still holds it), and a caller reaching the port directly meets the same rules.
Bearer tokens are checked by the port alone: Kong OSS has no plugin for opaque bearer keys.

Consumers are per secret, not per API, because a basic-auth credential's user name is unique
across Kong: two APIs naming one secret share its consumers."""
import hashlib
import hmac
import re
import uuid
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlsplit

import aiohttp
import structlog

from .paths import PathTemplate
from .ports import Route, RoutingFailed

log = structlog.get_logger("dispatch.kong")
PLUGIN_IDS = uuid.UUID("6f1c2b1e-4d0a-4f5e-9a57-3d7f0d1c9b21")
PAGE_SIZE = 100
BASIC = "basic-auth"
Users = Callable[[str, str], Awaitable[dict[str, str]]]
"""(organization, secret) -> the secret's opened values: user name -> password."""


class KongError(RoutingFailed):
    """Kong's Admin API refused a change or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _safe(part: str) -> str:
    """Kong names allow letters, digits and `.-_~`; anything else (a non-ASCII letter) is spelled
    as `~<hex>`, which no Dispatch name contains, so names stay unique."""
    return re.sub(r"[^A-Za-z0-9_\-]", lambda m: f"~{ord(m.group()):x}", part)


class KongGateway:
    def __init__(self, admin_url: str, upstream_url: str, installation: str = "dispatch",
                 users: Users | None = None) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.upstream = urlsplit(upstream_url)
        self.installation = installation
        self.tag = f"dispatch-installation:{_safe(installation)}"
        self.users = users
        self._session: aiohttp.ClientSession | None = None

    def name_of(self, organization: str, api: str) -> str:
        return f"{_safe(self.installation)}.{_safe(organization)}.{_safe(api)}"

    def consumer_of(self, organization: str, secret: str, user: str) -> str:
        return f"{self.name_of(organization, secret)}.{_safe(user)}"

    def secret_tag(self, organization: str, secret: str) -> str:
        """Marks a basic-auth plugin and the consumers it relies on, so those of a secret no
        basic API names any more can be found and removed."""
        return f"dispatch-secret:{self.name_of(organization, secret)}"

    # --- desired objects ------------------------------------------------------------------------

    def service_of(self, route: Route) -> dict[str, Any]:
        up = self.upstream
        return {"name": self.name_of(route.organization, route.api), "protocol": up.scheme,
                "host": up.hostname, "port": up.port or (443 if up.scheme == "https" else 80),
                "path": up.path.rstrip("/") or None, "tags": [self.tag]}

    def route_of(self, route: Route, service_id: str) -> dict[str, Any]:
        templates = [PathTemplate.of_stored(uri) for uri in route.uris]
        methods = list(route.methods)
        if route.cors and methods and "OPTIONS" not in methods:
            methods.append("OPTIONS")
        return {"name": self.name_of(route.organization, route.api), "service": {"id": service_id},
                "paths": [t.kong_path() for t in templates], "methods": methods or None,
                "hosts": list(route.hosts) or None, "protocols": list(route.protocols) or ["http", "https"],
                "strip_path": False, "preserve_host": True, "https_redirect_status_code": 426,
                "regex_priority": 1 if all(t.literal for t in templates) else 0, "tags": [self.tag]}

    def plugins_of(self, route: Route, route_id: str) -> dict[str, dict | None]:
        """Each plugin Dispatch manages on an API's route, or None where the API wants none."""
        org, api = route.organization, route.api
        cors = {"id": self.plugin_id(org, api, "cors"), "name": "cors", "route": {"id": route_id}, "tags": [self.tag],
                "config": {"origins": ["*"], "methods": [*dict.fromkeys([*route.methods, "OPTIONS"])] if route.methods
                           else ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"],
                           "exposed_headers": ["X-Dispatch-Run"], "max_age": 3600}}
        # hide_credentials off: the user-API port checks the same secret again (see the module's docstring)
        basic = {"id": self.plugin_id(org, api, BASIC), "name": BASIC, "route": {"id": route_id},
                 "tags": [self.tag, self.secret_tag(org, route.auth_secret)], "config": {"hide_credentials": False}}
        return {"cors": cors if route.cors else None, BASIC: basic if route.authentication == "basic" else None}

    def plugin_id(self, organization: str, api: str, plugin: str) -> str:
        """Plugins have no name to upsert by; a stable id serves instead (PUT /plugins/{id})."""
        return str(uuid.uuid5(PLUGIN_IDS, f"{self.name_of(organization, api)}/{plugin}"))

    # --- the port -------------------------------------------------------------------------------

    async def register(self, route: Route) -> None:
        before = await self._call("GET", f"/plugins/{self.plugin_id(route.organization, route.api, BASIC)}")
        await self._apply(route)
        if route.authentication == "basic":
            tags = [self.tag, self.secret_tag(route.organization, route.auth_secret)]
            consumers = {c["username"]: c for c in await self._list("/consumers", tags)}
            wanted, problems = await self._apply_users(route.organization, route.auth_secret, consumers,
                                                       await self._list("/basic-auths", tags))
            for name in consumers.keys() - wanted:
                await self._call("DELETE", f"/consumers/{consumers[name]['id']}")
            if problems:
                raise KongError("; ".join(problems))
        for tag in set(before.get("tags") or []) - {self.tag, *self._secret_tags([route])}:
            await self._forget_unused(tag)

    async def unregister(self, organization: str, api: str) -> None:
        name = self.name_of(organization, api)
        basic = await self._call("GET", f"/plugins/{self.plugin_id(organization, api, BASIC)}")
        for plugin in ("cors", BASIC):
            await self._call("DELETE", f"/plugins/{self.plugin_id(organization, api, plugin)}")
        await self._call("DELETE", f"/routes/{quote(name)}")
        await self._call("DELETE", f"/services/{quote(name)}")
        for tag in set(basic.get("tags") or []) - {self.tag}:
            await self._forget_unused(tag)

    async def sync(self, routes: list[Route]) -> None:
        """Create what is missing, repair what drifted (changed by hand, or left behind by a
        crash between two writes), delete this installation's objects whose API is gone."""
        services = {s["name"]: s for s in await self._list("/services")}
        kong_routes = {r["name"]: r for r in await self._list("/routes")}
        plugins = {p["id"]: p for p in await self._list("/plugins")}
        consumers = {c["username"]: c for c in await self._list("/consumers")}
        credentials = await self._list("/basic-auths")
        wanted = {self.name_of(r.organization, r.api): r for r in routes}
        for route in routes:
            await self._apply(route, services, kong_routes, plugins)
        users: set[str] = set()
        for organization, secret in dict.fromkeys((r.organization, r.auth_secret) for r in routes
                                                  if r.authentication == "basic"):
            names, problems = await self._apply_users(organization, secret, consumers, credentials)
            users |= names
            for problem in problems:
                log.warning("kong refused a basic-auth user", reason=problem)
        keep = {self.plugin_id(r.organization, r.api, kind) for r in routes for kind, plugin
                in self.plugins_of(r, "").items() if plugin is not None}
        for plugin_id in plugins.keys() - keep:
            await self._call("DELETE", f"/plugins/{plugin_id}")
        for kind, existing, kept in (("consumers", consumers, users), ("routes", kong_routes, wanted.keys()),
                                     ("services", services, wanted.keys())):
            for name in existing.keys() - kept:
                log.info("kong object removed", kind=kind, name=name)
                await self._call("DELETE", f"/{kind}/{existing[name]['id']}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # --- writes ---------------------------------------------------------------------------------

    async def _apply(self, route: Route, services: dict | None = None, routes: dict | None = None,
                     plugins: dict | None = None) -> None:
        """PUT each object whose Kong copy differs from what it should be. Known copies (listed
        by a reconciliation) that match are left alone, so reconciling an unchanged installation
        writes nothing; without them, everything is written."""
        name = self.name_of(route.organization, route.api)
        service = await self._upsert(f"/services/{quote(name)}", self.service_of(route), (services or {}).get(name))
        kong_route = await self._upsert(f"/routes/{quote(name)}", self.route_of(route, service["id"]),
                                        (routes or {}).get(name))
        for kind, plugin in self.plugins_of(route, kong_route["id"]).items():
            plugin_id = self.plugin_id(route.organization, route.api, kind)
            if plugin is not None:
                await self._upsert(f"/plugins/{plugin_id}", plugin, (plugins or {}).get(plugin_id))
            elif plugins is None or plugin_id in plugins:
                await self._call("DELETE", f"/plugins/{plugin_id}")

    async def _apply_users(self, organization: str, secret: str, consumers: dict[str, dict],
                           credentials: list[dict]) -> tuple[set[str], list[str]]:
        """One consumer per user of the secret, holding one basic-auth credential with the
        user's name and password. Returns the consumers' names, and why Kong refused a user."""
        if self.users is None:
            raise KongError("basic authentication through Kong needs the secrets' values, and none were given")
        tags = [self.tag, self.secret_tag(organization, secret)]
        names: set[str] = set()
        problems: list[str] = []
        for user, password in (await self.users(organization, secret)).items():
            if not user or ":" in user:
                continue  # no Basic header can name it
            name = self.consumer_of(organization, secret, user)
            names.add(name)
            consumer = await self._upsert(f"/consumers/{quote(name)}", {"username": name, "tags": tags},
                                          consumers.get(name))
            mine = [c for c in credentials if (c.get("consumer") or {}).get("id") == consumer["id"]]
            current = next((c for c in mine if c.get("username") == user), None)
            for stale in mine:
                if stale is not current:
                    await self._call("DELETE", f"/consumers/{consumer['id']}/basic-auth/{stale['id']}")
            problem = await self._credential(consumer["id"], user, password, tags, current)
            if problem:
                problems.append(f"basic-auth user {user} of secret {secret}: {problem}")
        return names, problems

    async def _credential(self, consumer_id: str, user: str, password: str, tags: list[str],
                          current: dict | None) -> str | None:
        """Kong returns only a hash of the password, so a copy still right is told by hashing
        the password as Kong does; a changed one is replaced in place (PUT by id)."""
        body = {"username": user, "password": password, "tags": tags}
        if current is None:
            try:
                await self._call("POST", f"/consumers/{consumer_id}/basic-auth", body)
                return None
            except KongError as refused:
                if refused.status != 409:
                    raise
            current = await self._call("GET", f"/basic-auths/{quote(user, safe='')}")
            if (current.get("consumer") or {}).get("id") != consumer_id:  # not written meanwhile by this installation
                return ("Kong already has a basic-auth credential of that name, and basic-auth user names are "
                        "unique across Kong; rename the user or remove the other credential")
        elif _holds(current, consumer_id, password) and sorted(current.get("tags") or []) == sorted(tags):
            return None
        log.info("kong credential replaced", consumer=consumer_id)
        await self._call("PUT", f"/consumers/{consumer_id}/basic-auth/{current['id']}", body)
        return None

    async def _forget_unused(self, secret_tag: str) -> None:
        """A secret no basic-auth plugin of this installation relies on any more: its consumers
        go (their credentials with them)."""
        tags = [self.tag, secret_tag]
        if not await self._list("/plugins", tags):
            for consumer in await self._list("/consumers", tags):
                await self._call("DELETE", f"/consumers/{consumer['id']}")

    def _secret_tags(self, routes: list[Route]) -> set[str]:
        return {self.secret_tag(r.organization, r.auth_secret) for r in routes if r.authentication == "basic"}

    async def _upsert(self, path: str, wanted: dict, actual: dict | None) -> dict:
        if actual is not None and not _drifted(wanted, actual):
            return actual
        if actual is not None:
            log.info("kong object repaired", path=path)
        body = {k: v for k, v in wanted.items() if k != "id"}
        return await self._call("PUT", path, body)

    async def _list(self, collection: str, tags: list[str] | None = None) -> list[dict]:
        """Every object of this installation (with all these tags); Kong pages lists (`offset` / `next`)."""
        found: list[dict] = []
        offset = None
        while True:
            query = f"?tags={quote(','.join(tags or [self.tag]))}&size={PAGE_SIZE}"
            page = await self._call("GET", collection + query + (f"&offset={quote(offset)}" if offset else ""))
            found += page.get("data") or []
            offset = page.get("offset")
            if not page.get("next") or not offset:
                return found

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        """Kong's answer; {} for an object that is not there (a GET or DELETE answered 404)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.request(method, self.admin_url + path, json=body) as answer:
                text = await answer.text()
                gone = answer.status == 404 and method in ("GET", "DELETE")
                if gone or (method == "DELETE" and answer.status == 204):
                    return {}
                if answer.status >= 300:
                    raise KongError(f"Kong refused {method} {path}: {answer.status} {text[:500]}", answer.status)
                return await answer.json(content_type=None) if text else {}
        except aiohttp.ClientError as error:
            raise KongError(f"Kong's Admin API at {self.admin_url} cannot be reached: {error}") from None


def _holds(credential: dict, consumer_id: str, password: str) -> bool:
    """Kong stores hex(sha1(password + consumer id)), or sha256 when it runs in FIPS mode."""
    stored = str(credential.get("password") or "")
    salted = (password + consumer_id).encode()
    return any(hmac.compare_digest(stored.encode(), digest(salted).hexdigest().encode())
               for digest in (hashlib.sha1, hashlib.sha256))


def _drifted(wanted: dict, actual: dict) -> bool:
    for key, value in wanted.items():
        if key == "id":
            continue
        have = actual.get(key)
        if key == "tags":
            if sorted(value) != sorted(have or []):
                return True
        elif isinstance(value, dict) and isinstance(have, dict):
            if _drifted(value, have):
                return True
        elif value != have:
            return True
    return False
