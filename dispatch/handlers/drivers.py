"""Event drivers as resources: created CREATING, updated UPDATING, deleted DELETING; the process
leading a driver (driver_supervisor.py) moves it on to READY or ERROR, and removes it.

A driver's type must exist when it is created (400 `driver type <t> does not exist`, as in
Dispatch), and so must its secrets; a built-in type's config is checked then too, so that a
typo is a 400 rather than an ERROR later. A webhook driver is created with the SHA-256 digest of
its token (the gateway makes the token and shows it once; an update keeps it), unless one of its
secrets holds the token under the key `token` (chosen by its users, changed by updating the secret)."""
from functools import partial
from typing import Any

from dispatch.bus.ports import MessageBus
from dispatch.drivers.events.builtin import BUILTIN
from dispatch.drivers.events.ports import DriverRejected
from dispatch.errors import Rejected
from dispatch.schemas import commands as c, events as e
from dispatch.schemas.resources import Status
from dispatch.store.ports import EventLog, Views

from .driver_types import find_type
from .lifecycle import Loaded, create, delete, load, update

TOKEN_DIGEST = "tokenDigest"
"""Where a webhook driver keeps its token's SHA-256 (hex); never shown to clients."""
PUSH_ADDRESS = "pushAddress"
"""Where an exposed custom driver's container listens (`host:port`), set by its leader with READY
(driver_supervisor.py) for every gateway to forward pushes to; never shown to clients."""


def entries(items: list[dict[str, Any]] | None) -> dict[str, str]:
    """`[{key, value}]` as a mapping; a repeated key keeps its last value."""
    return {item["key"]: item.get("value") or "" for item in items or []}


async def _prepared(organization: str, body: dict[str, Any], views: Views) -> dict[str, Any]:
    type_name = body["type"]
    driver_type = await find_type(views, organization, type_name)
    if driver_type is None:
        raise Rejected(f"driver type {type_name} does not exist")
    builtin = BUILTIN.get(type_name)
    if builtin is not None:
        try:
            builtin.checked(entries(body.get("config")), secrets=bool(body.get("secrets")))
        except DriverRejected as rejected:
            raise Rejected(rejected.reason) from None
    keys: set[str] = set()
    for name in body.get("secrets") or []:
        secret = await views.get_resource(organization, "Secret", name)
        if secret is None:
            raise Rejected(f"secret {name} not found")
        keys |= set(secret.get("secrets") or {})
    if type_name == "webhook" and not body.get(TOKEN_DIGEST) and "token" not in keys:
        raise Rejected("a webhook driver needs a token: name a secret holding it under the key token, "
                       "or no secret to get one made")
    return {**body, "expose": bool(driver_type.get("expose")), "url": ""}


async def create_driver(cmd: c.CreateDriver, events: EventLog, views: Views) -> dict:
    """Consumes CreateDriver; emits DriverCreated (CREATING)."""
    body = await _prepared(cmd.organization, cmd.resource, views)
    return await create(cmd, events, e.DriverCreated, Status.CREATING, body)


async def update_driver(cmd: c.UpdateDriver, events: EventLog, views: Views) -> dict:
    """Consumes UpdateDriver; emits DriverUpdated (UPDATING): its leader restarts it."""
    previous = (await load(events, "Driver", cmd.organization, cmd.name)).existing()
    if previous["status"] == Status.DELETING.value:
        raise Rejected(f"driver {cmd.name} is already being deleted")
    if cmd.resource.get("type") != previous["type"]:
        raise Rejected(f"the type of driver {cmd.name} cannot change: delete it and create it again")
    body = {**cmd.resource, TOKEN_DIGEST: previous.get(TOKEN_DIGEST)} if previous.get(TOKEN_DIGEST) else cmd.resource
    return await update(cmd, events, e.DriverUpdated, Status.UPDATING, await _prepared(cmd.organization, body, views))


async def _not_deleting(loaded: Loaded) -> None:
    if loaded.status == Status.DELETING.value:
        raise Rejected(f"{loaded.label} is already being deleted")


async def delete_driver(cmd: c.DeleteDriver, events: EventLog) -> dict:
    """Consumes DeleteDriver; emits DriverDeletionRequested (DELETING): its leader stops it."""
    return await delete(cmd, events, e.DriverDeletionRequested, _not_deleting)


def register(bus: MessageBus, events: EventLog, views: Views) -> None:
    bus.handle(c.CreateDriver, partial(create_driver, events=events, views=views))
    bus.handle(c.UpdateDriver, partial(update_driver, events=events, views=views))
    bus.handle(c.DeleteDriver, partial(delete_driver, events=events))
