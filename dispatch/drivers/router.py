"""The built-in API gateway: an in-memory route table the user-API port serves from."""
from dataclasses import dataclass

from .paths import PathTemplate
from .ports import Route


@dataclass(frozen=True)
class Matched:
    route: Route
    params: dict[str, str]
    """Values of the path's `{name}` segments."""


def host_matches(patterns: tuple[str, ...], host: str) -> bool:
    """No hosts match any host; `*.example.com` matches one or more labels before example.com."""
    if not patterns:
        return True
    return any(host == p or (p.startswith("*.") and host.endswith(p[1:]) and len(host) > len(p) - 1)
               for p in patterns)


class BuiltinRouter:
    """Routes of the default organization also answer without their `/<org>` prefix, so that on
    a single-tenant server `/hello` reaches the API stored as `/dispatch/hello`. An exact path
    wins over a template; of two templates, the one with a literal segment further left wins;
    of two routes otherwise alike, the older API's."""

    def __init__(self, default_organization: str = "dispatch") -> None:
        self.default_organization = default_organization
        self._routes: dict[tuple[str, str], Route] = {}
        self._exact: dict[str, list[Route]] = {}
        self._templates: dict[int, list[tuple[PathTemplate, Route]]] = {}
        self.version = 0
        """Moves on every change, for whoever derives state from the routes (TLS certificates)."""

    async def register(self, route: Route) -> None:
        self._routes[(route.organization, route.api)] = route
        self._reindex()

    async def unregister(self, organization: str, api: str) -> None:
        self._routes.pop((organization, api), None)
        self._reindex()

    async def sync(self, routes: list[Route]) -> None:
        """Serve exactly these routes."""
        self._routes = {(route.organization, route.api): route for route in routes}
        self._reindex()

    async def close(self) -> None:
        pass

    def routes(self) -> list[Route]:
        return list(self._routes.values())

    def _reindex(self) -> None:
        exact: dict[str, list[Route]] = {}
        templates: dict[int, list[tuple[PathTemplate, Route]]] = {}
        for route in sorted(self._routes.values(), key=lambda r: r.age):
            for uri in route.uris:
                template = PathTemplate.of_stored(uri)
                if template.literal:
                    exact.setdefault(uri, []).append(route)
                else:
                    templates.setdefault(len(template.segments), []).append((template, route))
        for candidates in templates.values():
            candidates.sort(key=lambda pair: pair[0].specificity, reverse=True)
        self._exact, self._templates = exact, templates
        self.version += 1

    def match(self, method: str, path: str, host: str) -> Matched | None:
        """The route serving this request: its path, a listed method (OPTIONS matches a CORS
        route) and a listed host; empty lists match anything."""
        host = host.rsplit(":", 1)[0].lower() if not host.endswith("]") else host.lower()
        found = self._match(method, path, host)
        if found is None and not path.startswith(f"/{self.default_organization}/"):
            found = self._match(method, f"/{self.default_organization}{path}", host)
        return found

    def _match(self, method: str, path: str, host: str) -> Matched | None:
        for route in self._exact.get(path, ()):
            if _accepts(route, method, host):
                return Matched(route, {})
        parts = path.split("/")[1:]
        for template, route in self._templates.get(len(parts), ()):
            if _accepts(route, method, host):
                params = template.match(parts)
                if params is not None:
                    return Matched(route, params)
        return None


def _accepts(route: Route, method: str, host: str) -> bool:
    return host_matches(route.hosts, host) and (
        method in route.methods or not route.methods or (method == "OPTIONS" and route.cors))
