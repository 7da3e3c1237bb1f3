"""The built-in API gateway: an in-memory route table the user-API port serves from."""
from .ports import Route


class BuiltinRouter:
    """Routes of the default organization also answer without their `/<org>` prefix, so that on
    a single-tenant server `/hello` reaches the API stored as `/dispatch/hello`."""

    def __init__(self, default_organization: str = "dispatch") -> None:
        self.default_organization = default_organization
        self._routes: dict[tuple[str, str], Route] = {}
        self._table: dict[str, list[Route]] = {}

    async def register(self, route: Route) -> None:
        self._routes[(route.organization, route.api)] = route
        self._reindex()

    async def unregister(self, organization: str, api: str) -> None:
        self._routes.pop((organization, api), None)
        self._reindex()

    def _reindex(self) -> None:
        table: dict[str, list[Route]] = {}
        for route in self._routes.values():
            for uri in route.uris:
                table.setdefault(uri, []).append(route)
        self._table = table

    def match(self, method: str, path: str, host: str) -> Route | None:
        """The route serving this request: same path, a listed method (OPTIONS matches a CORS
        route) and a listed host; empty lists match anything."""
        host = host.split(":")[0].lower()
        found = self._match(method, path, host)
        if found is None and not path.startswith(f"/{self.default_organization}/"):
            found = self._match(method, f"/{self.default_organization}{path}", host)
        return found

    def _match(self, method: str, path: str, host: str) -> Route | None:
        for route in self._table.get(path, ()):
            if route.hosts and host not in route.hosts:
                continue
            if method in route.methods or not route.methods or (method == "OPTIONS" and route.cors):
                return route
        return None
