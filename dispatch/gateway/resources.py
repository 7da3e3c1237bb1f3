"""The management endpoints of the resource kinds that share Dispatch's CRUD shape."""
import inspect
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from dispatch.errors import NotFound, Rejected
from dispatch.handlers.builds import IMAGE_BUILD
from dispatch.handlers.lifecycle import LABELS
from dispatch.handlers.platform import Platform
from dispatch.schemas import commands as c, identity, resources as r

from .bodies import read_json
from .context import application_filter, correlation_id, matches_application, organization, subject

PLATFORM = web.AppKey("platform", Platform)
HIDDEN = ("source", "sourceURL", IMAGE_BUILD)
Prepare = Callable[[web.Request, dict, dict], tuple[dict, dict] | Awaitable[tuple[dict, dict]]]
Present = Callable[[web.Request, dict, bool], dict]


@dataclass(frozen=True)
class Kind:
    path: str
    model: type[r.Resource]
    create: type[c.CreateResource]
    update: type[c.UpdateResource]
    delete: type[c.DeleteResource]
    created: int = 201
    updated: int = 200
    deleted: int = 200

    @property
    def name(self) -> str:
        return self.model.__name__

    def public(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Without the write-only source and the server's own bookkeeping."""
        return {k: v for k, v in resource.items() if k not in HIDDEN}


KINDS = [
    Kind("baseimage", r.BaseImage, c.CreateBaseImage, c.UpdateBaseImage, c.DeleteBaseImage),
    Kind("image", r.Image, c.CreateImage, c.UpdateImage, c.DeleteImage),
    Kind("function", r.Function, c.CreateFunction, c.UpdateFunction, c.DeleteFunction),
    Kind("secret", r.Secret, c.CreateSecret, c.UpdateSecret, c.DeleteSecret, updated=201, deleted=204),
    Kind("api", r.API, c.CreateAPI, c.UpdateAPI, c.DeleteAPI, created=200),
    Kind("event/subscriptions", r.Subscription, c.CreateSubscription, c.UpdateSubscription, c.DeleteSubscription),
    Kind("event/drivertypes", r.DriverType, c.CreateDriverType, c.UpdateDriverType, c.DeleteDriverType),
    Kind("event/drivers", r.Driver, c.CreateDriver, c.UpdateDriver, c.DeleteDriver),
    Kind("application", r.Application, c.CreateApplication, c.UpdateApplication, c.DeleteApplication, created=200),
    Kind("iam/organization", identity.Organization, c.CreateOrganization, c.UpdateOrganization, c.DeleteOrganization),
    Kind("iam/policy", identity.Policy, c.CreatePolicy, c.UpdatePolicy, c.DeletePolicy),
    Kind("iam/serviceaccount", identity.ServiceAccount, c.CreateServiceAccount, c.UpdateServiceAccount,
         c.DeleteServiceAccount),
]


class ResourceEndpoints:
    """GET list, POST, GET one, PUT, DELETE for one kind. `prepare` turns a validated body into
    the command's resource and extra fields (awaited when it checks on a thread); `present`
    shapes what a client sees."""

    def __init__(self, kind: Kind, prepare: Prepare | None = None, present: Present | None = None):
        self.kind = kind
        self.prepare = prepare or (lambda request, raw, resource: (resource, {}))
        self.present = present or (lambda request, resource, single: kind.public(resource))

    def routes(self) -> list[web.RouteDef]:
        base = f"/v1/{self.kind.path}"
        return [web.get(base, self.list), web.post(base, self.create),
                web.get(base + "/{name}", self.get), web.put(base + "/{name}", self.update),
                web.delete(base + "/{name}", self.delete)]

    async def list(self, request: web.Request) -> web.Response:
        wanted = application_filter(request)
        function = request.query.get("function") if self.kind.name == "API" else None
        items = await request.app[PLATFORM].views.list_resources(organization(request), self.kind.name)
        return web.json_response([self.present(request, i, False) for i in items
                                  if matches_application(i, wanted) and function in (None, i.get("function"))])

    async def get(self, request: web.Request) -> web.Response:
        return web.json_response(self.present(request, await self._existing(request), True))

    def scope(self, request: web.Request, name: str) -> str:
        """The organization a resource of this kind named `name` lives in: the caller's."""
        return organization(request)

    async def _existing(self, request: web.Request) -> dict:
        name = request.match_info["name"]
        wanted = application_filter(request)
        found = await request.app[PLATFORM].views.get_resource(self.scope(request, name), self.kind.name, name)
        if found is None or not matches_application(found, wanted):
            raise NotFound(f"{LABELS[self.kind.name]} {name} not found")
        return found

    async def _body(self, request: web.Request) -> tuple[dict, dict]:
        raw = await read_json(request)
        if not isinstance(raw, dict):
            raise Rejected("request body must be a JSON object")
        resource = self.kind.public(self.kind.model.model_validate(raw).wire())
        prepared = self.prepare(request, raw, resource)
        return await prepared if inspect.isawaitable(prepared) else prepared

    async def create(self, request: web.Request) -> web.Response:
        resource, extra = await self._body(request)
        command = self.kind.create(organization=self.scope(request, resource["name"]), name=resource["name"],
                                   resource=resource, correlation_id=correlation_id(request), subject=subject(request),
                                   **extra)
        answer = await request.app[PLATFORM].write(command)
        return web.json_response(self.present(request, answer["resource"], True), status=self.kind.created)

    async def update(self, request: web.Request) -> web.Response:
        resource, extra = await self._body(request)
        name = resource["name"] if self.kind.name == "Secret" else request.match_info["name"]
        await self._existing(request)
        command = self.kind.update(organization=self.scope(request, name), name=name, resource=resource,
                                   correlation_id=correlation_id(request), subject=subject(request), **extra)
        answer = await request.app[PLATFORM].write(command)
        return web.json_response(self.present(request, answer["resource"], True), status=self.kind.updated)

    async def delete(self, request: web.Request) -> web.Response:
        await self._existing(request)
        name = request.match_info["name"]
        command = self.kind.delete(organization=self.scope(request, name), name=name,
                                   correlation_id=correlation_id(request), subject=subject(request))
        answer = await request.app[PLATFORM].write(command)
        if self.kind.deleted == 204:
            return web.Response(status=204)
        return web.json_response(self.present(request, answer["resource"], True), status=self.kind.deleted)
