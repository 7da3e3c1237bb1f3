"""APIs: user HTTP routes to functions, registered on the API gateway driver."""
import asyncio
from functools import partial

import structlog

from dispatch.bus.ports import MessageBus
from dispatch.drivers.paths import BadPath, PathTemplate
from dispatch.drivers.ports import APIGateway, Route, RoutingFailed
from dispatch.drivers.router import BuiltinRouter
from dispatch.errors import Rejected
from dispatch.schemas import commands as c, events as e
from dispatch.schemas.resources import Status
from dispatch.store.ports import EventLog, Views

from .api_claims import check_claims
from .lifecycle import append, changed, create, delete, load, update

log = structlog.get_logger("dispatch.apis")
ENFORCED_AUTHENTICATION = ("public", "basic", "bearer")


def prepared(organization: str, body: dict) -> dict:
    """Apply the contract's path prefix rule and refuse what the gateway cannot enforce."""
    auth = body.get("authentication") or "public"
    if auth not in ENFORCED_AUTHENTICATION:
        raise Rejected(f"authentication '{auth}' is not supported by this gateway "
                       f"(supported: {', '.join(ENFORCED_AUTHENTICATION)})")
    if auth != "public" and not body.get("authSecret"):
        raise Rejected(f"authentication '{auth}' needs authSecret: the secret holding the accepted credentials")
    if body.get("tls") and not body.get("hosts"):
        raise Rejected("tls needs hosts: a certificate is chosen by the host name the client asks for")
    uris = [u if u.startswith("/") else f"/{u}" for u in body.get("uris") or ["/"]]
    if not body.get("hosts"):
        prefix = f"/{organization}/"
        uris = [u if u.startswith(prefix) else prefix + u.lstrip("/") for u in uris]
    for uri in uris:
        try:
            PathTemplate.parse(uri)
        except BadPath as bad:
            raise Rejected(str(bad)) from None
    methods = [m.upper() for m in body.get("methods") or ["GET"]]
    hosts = [h.lower() for h in body.get("hosts") or []]
    return {**body, "uris": uris, "methods": methods, "hosts": hosts, "authentication": auth}


async def check_secrets(views: Views, organization: str, body: dict) -> None:
    """The secrets an API names must exist when it is created: a typo would otherwise lock
    every caller out (authSecret) or serve the wrong certificate (tls) without a word."""
    for field in ("authSecret", "tls"):
        name = body.get(field)
        if name and await views.get_resource(organization, "Secret", name) is None:
            raise Rejected(f"{field}: secret {name} not found")


def route_of(organization: str, api: dict) -> Route:
    return Route(organization=organization, api=api["name"], function=api["function"],
                 methods=tuple(api.get("methods") or ()), uris=tuple(api.get("uris") or ()),
                 hosts=tuple(h.lower() for h in api.get("hosts") or ()),
                 protocols=tuple(api.get("protocols") or ()), cors=bool(api.get("cors")),
                 authentication=api.get("authentication") or "public", auth_secret=api.get("authSecret") or "",
                 tls=api.get("tls") or "",
                 age=f"{api.get('createdTime') or 0:012d}/{api.get('id') or ''}")


async def create_api(cmd: c.CreateAPI, events: EventLog, views: Views, default_organization: str) -> dict:
    """Consumes CreateAPI; emits APICreated. Refused when it would answer another organization's requests."""
    body = prepared(cmd.organization, cmd.resource)
    await check_secrets(views, cmd.organization, body)
    await check_claims(views, cmd.organization, body, default_organization)
    return await create(cmd, events, e.APICreated, Status.CREATING, body)


async def update_api(cmd: c.UpdateAPI, events: EventLog, views: Views, default_organization: str) -> dict:
    """Consumes UpdateAPI; emits APIUpdated. Refused when it would answer another organization's requests."""
    body = prepared(cmd.organization, cmd.resource)
    await check_secrets(views, cmd.organization, body)
    await check_claims(views, cmd.organization, body, default_organization)
    return await update(cmd, events, e.APIUpdated, Status.UPDATING, body)


async def delete_api(cmd: c.DeleteAPI, events: EventLog) -> dict:
    """Consumes DeleteAPI; emits APIDeletionRequested."""
    return await delete(cmd, events, e.APIDeletionRequested)


async def route_api(cmd: c.RouteAPI, events: EventLog, gateway: APIGateway) -> None:
    """Consumes RouteAPI; emits APIRouted or APIRoutingFailed."""
    loaded = await load(events, "API", cmd.organization, cmd.name)
    if loaded.status not in (Status.CREATING.value, Status.UPDATING.value):
        return
    api = loaded.existing()
    try:
        if api.get("enabled", True):
            await gateway.register(route_of(cmd.organization, api))
        else:
            await gateway.unregister(cmd.organization, cmd.name)
    except RoutingFailed as failed:
        await append(events, loaded, cmd, changed(e.APIRoutingFailed, cmd, Status.ERROR, str(failed)))
        return
    await append(events, loaded, cmd, changed(e.APIRouted, cmd, Status.READY))


async def remove_api(cmd: c.RemoveAPI, events: EventLog, gateway: APIGateway) -> None:
    """Consumes RemoveAPI; emits APIDeleted."""
    loaded = await load(events, "API", cmd.organization, cmd.name)
    if loaded.status != Status.DELETING.value:
        return
    try:
        await gateway.unregister(cmd.organization, cmd.name)
    except RoutingFailed as failed:  # the API goes all the same; reconciliation removes what is left
        log.warning("gateway kept a deleted api", organization=cmd.organization, api=cmd.name, reason=str(failed))
    await append(events, loaded, cmd, e.APIDeleted(organization=cmd.organization, name=cmd.name))


async def route_when_changed(event: e.ResourceEvent, bus: MessageBus) -> None:
    await bus.send(c.RouteAPI(organization=event.organization, name=event.name).caused_by(event))


async def remove_when_deletion_requested(event: e.APIDeletionRequested, bus: MessageBus) -> None:
    await bus.send(c.RemoveAPI(organization=event.organization, name=event.name).caused_by(event))


async def register_again_when_secret_changed(event: e.ResourceEvent, views: Views, gateway: APIGateway) -> None:
    """A gateway keeping copies of basic users (Kong's consumers) gets a changed secret's users
    now rather than at its next reconciliation: a rotated password works through it at once."""
    for organization, api in await views.list_all("API"):
        named = (organization, api.get("authSecret")) == (event.organization, event.name)
        if not named or api.get("authentication") != "basic" or api.get("status") != Status.READY.value \
                or not api.get("enabled", True):
            continue
        try:
            await gateway.register(route_of(organization, api))
        except RoutingFailed as failed:  # reconciliation retries; the API keeps serving
            log.warning("gateway kept a secret's old users", organization=organization, api=api["name"],
                        reason=str(failed))


def register(bus: MessageBus, events: EventLog, views: Views, gateway: APIGateway, default_organization: str) -> None:
    bus.handle(c.CreateAPI, partial(create_api, events=events, views=views, default_organization=default_organization))
    bus.handle(c.UpdateAPI, partial(update_api, events=events, views=views, default_organization=default_organization))
    bus.handle(c.DeleteAPI, partial(delete_api, events=events))
    bus.handle(c.RouteAPI, partial(route_api, events=events, gateway=gateway))
    bus.handle(c.RemoveAPI, partial(remove_api, events=events, gateway=gateway))
    for event_type in (e.APICreated, e.APIUpdated):
        bus.subscribe(event_type, "apis", partial(route_when_changed, bus=bus))
    bus.subscribe(e.APIDeletionRequested, "apis", partial(remove_when_deletion_requested, bus=bus))
    if not isinstance(gateway, BuiltinRouter):  # the built-in router reads secrets when a request comes
        for secret_event in (e.SecretCreated, e.SecretUpdated, e.SecretDeleted):
            bus.subscribe(secret_event, "apis",
                          partial(register_again_when_secret_changed, views=views, gateway=gateway))


async def update_route(event: e.ResourceEvent, views: Views, router: BuiltinRouter) -> None:
    """Keeps this process's route table current, whichever process routed the API."""
    api = await views.get_resource(event.organization, "API", event.name)
    if api is not None and api.get("status") == Status.READY.value and api.get("enabled", True):
        await router.register(route_of(event.organization, api))
    else:
        await router.unregister(event.organization, event.name)


def follow_routes(bus: MessageBus, views: Views, router: BuiltinRouter) -> None:
    """Every process serving user APIs follows API events on a subscription of its own."""
    for event_type in (e.APIRouted, e.APIDeletionRequested, e.APIDeleted):
        bus.subscribe(event_type, "routes", partial(update_route, views=views, router=router), per_process=True)


async def wanted_routes(views: Views) -> list[Route]:
    """What an external gateway should serve: every enabled API not failed or being deleted
    (one still CREATING is included, so a reconciliation never undoes a registration in flight)."""
    return [route_of(organization, api) for organization, api in await views.list_all("API")
            if api.get("enabled", True) and api.get("status") not in (Status.ERROR.value, Status.DELETING.value)]


async def reconcile_forever(views: Views, gateway: APIGateway, period: float) -> None:
    """Keeps an external gateway in step with the APIs: at start, then every `period` seconds."""
    while True:
        try:
            await gateway.sync(await wanted_routes(views))
        except Exception as error:  # noqa: BLE001 - the gateway may be down; the next round retries
            log.warning("api gateway reconciliation failed", reason=str(error))
        await asyncio.sleep(period)
