"""`/v1/iam/*`: organizations, policies and service accounts (contract §2.13), plus `/home`,
the authenticated probe of `dispatch login`, and `/v1/iam/oidc`, where it finds the issuer users log in at.

An organization, and a global policy, reach beyond the caller's own organization: creating,
changing or deleting one takes a global grant on `iam` (the bootstrap admin's), so no tenant can
grant itself the others. Callers without one see only their own organization."""
from typing import Awaitable

from aiohttp import web

from dispatch.errors import DispatchError, NotFound
from dispatch.iam.policy import NOBODY, allowed, global_grant

from .auth import AUTHORITY
from .context import PRINCIPAL, SETTINGS, application_filter, matches_application, organization
from .resources import PLATFORM, Prepare, ResourceEndpoints


class Forbidden(DispatchError):
    status = 403


def _global(request: web.Request, action: str) -> bool:
    authority, principal = request.app.get(AUTHORITY), request.get(PRINCIPAL)
    if authority is None or principal is None:
        return True  # authentication is off
    return principal.kind == NOBODY or global_grant(principal, "iam", action, authority.directory.grants)


def _require_global(request: web.Request, action: str, what: str) -> None:
    if not _global(request, action):
        principal = request[PRINCIPAL]
        raise Forbidden(f"{principal.subject} may not {action} {what}: it takes a global policy on iam")


def prepare_policy(request: web.Request, raw: dict, resource: dict) -> tuple[dict, dict]:
    if resource.get("global"):
        _require_global(request, "create" if request.method == "POST" else "update", "a global policy")
    return resource, {}


def identity_checked(prepare: Prepare) -> Prepare:
    """A function given a service account runs with that account's rights: naming one takes
    `create` on `iam` in the organization (what making such an account would take), or anyone
    allowed to write functions could borrow the administrator's rights."""
    def checked(request: web.Request, raw: dict, resource: dict) -> tuple[dict, dict] | Awaitable[tuple[dict, dict]]:
        authority, principal = request.app.get(AUTHORITY), request.get(PRINCIPAL)
        if resource.get("serviceAccount") and authority is not None and principal is not None \
                and not allowed(principal, organization(request), "iam", "create", authority.directory.grants):
            raise Forbidden(f"{principal.subject} may not give a function the service account "
                            f"{resource['serviceAccount']}: that takes create on iam")
        return prepare(request, raw, resource)
    return checked


class OrganizationEndpoints(ResourceEndpoints):
    """Organizations are stored under their own name and listed across the installation."""

    def __init__(self, kind, **shapes):
        super().__init__(kind)

    async def list(self, request: web.Request) -> web.Response:
        wanted = application_filter(request)
        items = [org for _, org in await request.app[PLATFORM].views.list_all("Organization")]
        if not _global(request, "get"):
            mine = request[PRINCIPAL].organization
            items = [org for org in items if org["name"] == mine]
        return web.json_response([self.present(request, i, False) for i in items if matches_application(i, wanted)])

    async def _existing(self, request: web.Request) -> dict:
        name = request.match_info["name"]
        found = await request.app[PLATFORM].views.get_resource(name, "Organization", name)
        principal = request.get(PRINCIPAL)
        visible = _global(request, "get") or (principal is not None and principal.organization == name)
        if found is None or not visible:
            raise NotFound(f"organization {name} not found")
        return found

    def scope(self, request: web.Request, name: str) -> str:
        return name

    async def create(self, request: web.Request) -> web.Response:
        _require_global(request, "create", "organizations")
        return await super().create(request)

    async def update(self, request: web.Request) -> web.Response:
        _require_global(request, "update", "organizations")
        return await super().update(request)

    async def delete(self, request: web.Request) -> web.Response:
        _require_global(request, "delete", "organizations")
        return await super().delete(request)


async def home(request: web.Request) -> web.Response:
    return web.json_response({"message": "Home Page, You have already logged in"})


async def oidc(request: web.Request) -> web.Response:
    """Open to all: `dispatch login` reads here where users log in, and as which client."""
    settings = request.app[SETTINGS]
    if not (settings.oidc_issuer and settings.oidc_client_id):
        raise NotFound("this server logs no users in through OpenID Connect (it has no --oidc-issuer)")
    return web.json_response({"issuer": settings.oidc_issuer, "clientId": settings.oidc_client_id})


def routes() -> list[web.RouteDef]:
    return [web.get("/home", home), web.get("/v1/iam/oidc", oidc)]
