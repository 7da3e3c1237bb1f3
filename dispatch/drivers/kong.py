"""Kong 3.x as the API gateway, through its Admin API: per API one service (pointing at the
user-API port of this installation), one route and, for CORS, a `cors` plugin, all tagged with
the installation, and kept in step by reconciliation.

Kong routes, terminates plain HTTP for https-only APIs (426) and answers CORS pre-flights; it
forwards the request unchanged (path, Host, Authorization) to the user-API port, which matches
the same route again, checks credentials and runs the function. So a request is authenticated
by the same secret whether it came through Kong or straight to the port."""
import re
import uuid
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import structlog

from .paths import PathTemplate
from .ports import Route, RoutingFailed

log = structlog.get_logger("dispatch.kong")
PLUGIN_IDS = uuid.UUID("6f1c2b1e-4d0a-4f5e-9a57-3d7f0d1c9b21")
PAGE_SIZE = 100


class KongError(RoutingFailed):
    """Kong's Admin API refused a change or could not be reached."""


def _safe(part: str) -> str:
    """Kong names allow letters, digits and `.-_~`; anything else (a non-ASCII letter) is spelled
    as `~<hex>`, which no Dispatch name contains, so names stay unique."""
    return re.sub(r"[^A-Za-z0-9_\-]", lambda m: f"~{ord(m.group()):x}", part)


class KongGateway:
    def __init__(self, admin_url: str, upstream_url: str, installation: str = "dispatch") -> None:
        self.admin_url = admin_url.rstrip("/")
        self.upstream = urlsplit(upstream_url)
        self.installation = installation
        self.tag = f"dispatch-installation:{_safe(installation)}"
        self._session: aiohttp.ClientSession | None = None

    def name_of(self, organization: str, api: str) -> str:
        return f"{_safe(self.installation)}.{_safe(organization)}.{_safe(api)}"

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

    def cors_of(self, route: Route, route_id: str) -> dict[str, Any]:
        return {"id": self.plugin_id(route.organization, route.api, "cors"), "name": "cors",
                "route": {"id": route_id}, "tags": [self.tag],
                "config": {"origins": ["*"], "methods": [*dict.fromkeys([*route.methods, "OPTIONS"])] if route.methods
                           else ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"],
                           "exposed_headers": ["X-Dispatch-Run"], "max_age": 3600}}

    def plugin_id(self, organization: str, api: str, plugin: str) -> str:
        """Plugins have no name to upsert by; a stable id serves instead (PUT /plugins/{id})."""
        return str(uuid.uuid5(PLUGIN_IDS, f"{self.name_of(organization, api)}/{plugin}"))

    # --- the port -------------------------------------------------------------------------------

    async def register(self, route: Route) -> None:
        await self._apply(route)

    async def unregister(self, organization: str, api: str) -> None:
        name = self.name_of(organization, api)
        await self._call("DELETE", f"/plugins/{self.plugin_id(organization, api, 'cors')}")
        await self._call("DELETE", f"/routes/{quote(name)}")
        await self._call("DELETE", f"/services/{quote(name)}")

    async def sync(self, routes: list[Route]) -> None:
        """Create what is missing, repair what drifted (changed by hand, or left behind by a
        crash between two writes), delete this installation's objects whose API is gone."""
        services = {s["name"]: s for s in await self._list("/services")}
        kong_routes = {r["name"]: r for r in await self._list("/routes")}
        plugins = {p["id"]: p for p in await self._list("/plugins")}
        wanted = {self.name_of(r.organization, r.api): r for r in routes}
        for route in routes:
            await self._apply(route, services, kong_routes, plugins)
        keep = {self.plugin_id(r.organization, r.api, "cors") for r in routes if r.cors}
        for plugin_id in plugins.keys() - keep:
            await self._call("DELETE", f"/plugins/{plugin_id}")
        for kind, existing in (("routes", kong_routes), ("services", services)):
            for name in existing.keys() - wanted.keys():
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
        plugin_id = self.plugin_id(route.organization, route.api, "cors")
        if route.cors:
            await self._upsert(f"/plugins/{plugin_id}", self.cors_of(route, kong_route["id"]),
                               (plugins or {}).get(plugin_id))
        elif plugins is None or plugin_id in plugins:
            await self._call("DELETE", f"/plugins/{plugin_id}")

    async def _upsert(self, path: str, wanted: dict, actual: dict | None) -> dict:
        if actual is not None and not _drifted(wanted, actual):
            return actual
        if actual is not None:
            log.info("kong object repaired", path=path)
        body = {k: v for k, v in wanted.items() if k != "id"}
        return await self._call("PUT", path, body)

    async def _list(self, collection: str) -> list[dict]:
        """Every object of this installation; Kong pages lists (`offset` / `next`)."""
        found: list[dict] = []
        offset = None
        while True:
            query = f"?tags={quote(self.tag)}&size={PAGE_SIZE}" + (f"&offset={quote(offset)}" if offset else "")
            page = await self._call("GET", collection + query)
            found += page.get("data") or []
            offset = page.get("offset")
            if not page.get("next") or not offset:
                return found

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.request(method, self.admin_url + path, json=body) as answer:
                text = await answer.text()
                if method == "DELETE" and answer.status in (204, 404):
                    return {}
                if answer.status >= 300:
                    raise KongError(f"Kong refused {method} {path}: {answer.status} {text[:500]}")
                return await answer.json(content_type=None) if text else {}
        except aiohttp.ClientError as error:
            raise KongError(f"Kong's Admin API at {self.admin_url} cannot be reached: {error}") from None


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
