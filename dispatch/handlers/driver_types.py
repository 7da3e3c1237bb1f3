"""Event driver types: the built-in ones (cron, webhook, amqp), which every organization has
without creating them, and the ones users create, each a container image, READY at once."""
import uuid
from functools import partial
from typing import Any

from dispatch.bus.ports import MessageBus
from dispatch.drivers.events.builtin import BUILTIN
from dispatch.errors import Conflict, Rejected
from dispatch.schemas import commands as c, events as e
from dispatch.schemas.resources import Status
from dispatch.store.ports import EventLog, Views

from .lifecycle import create, delete, unused_by, update

BUILTIN_IDS = uuid.UUID("7d1c8e0a-5b2f-4f6e-8a3d-0c9b1e2f4a56")


def builtin_type(name: str) -> dict[str, Any] | None:
    """A built-in type in its wire form: its config lists the keys its drivers read, with defaults."""
    found = BUILTIN.get(name)
    if found is None:
        return None
    return {"id": str(uuid.uuid5(BUILTIN_IDS, name)), "name": name, "kind": "DriverType", "status": Status.READY.value,
            "reason": None, "tags": [], "image": "", "expose": found.expose, "builtin": True,
            "config": [{"key": key, "value": value} for key, value in found.keys.items()],
            "createdTime": 0, "modifiedTime": 0}


def builtin_types() -> list[dict[str, Any]]:
    return [builtin_type(name) for name in BUILTIN]  # type: ignore[misc]


async def find_type(views: Views, organization: str, name: str) -> dict[str, Any] | None:
    return builtin_type(name) or await views.get_resource(organization, "DriverType", name)


def _not_builtin(name: str, doing: str) -> None:
    if name in BUILTIN:
        raise Rejected(f"driver type {name} is built in and cannot be {doing}")


async def create_driver_type(cmd: c.CreateDriverType, events: EventLog) -> dict:
    """Consumes CreateDriverType; emits DriverTypeCreated (READY)."""
    if cmd.name in BUILTIN:
        raise Conflict(f"driver type {cmd.name} already exists (it is built in)")
    return await create(cmd, events, e.DriverTypeCreated, Status.READY, {**cmd.resource, "builtin": False})


async def update_driver_type(cmd: c.UpdateDriverType, events: EventLog) -> dict:
    """Consumes UpdateDriverType; emits DriverTypeUpdated (READY). Running drivers of the type
    are restarted on its new image."""
    _not_builtin(cmd.name, "changed")
    return await update(cmd, events, e.DriverTypeUpdated, Status.READY, {**cmd.resource, "builtin": False})


async def delete_driver_type(cmd: c.DeleteDriverType, events: EventLog, views: Views) -> dict:
    """Consumes DeleteDriverType; emits DriverTypeDeleted. Refused while a driver uses the type."""
    _not_builtin(cmd.name, "deleted")
    return await delete(cmd, events, e.DriverTypeDeleted, unused_by(views, cmd.organization, "Driver", "type"))


def register(bus: MessageBus, events: EventLog, views: Views) -> None:
    bus.handle(c.CreateDriverType, partial(create_driver_type, events=events))
    bus.handle(c.UpdateDriverType, partial(update_driver_type, events=events))
    bus.handle(c.DeleteDriverType, partial(delete_driver_type, events=events, views=views))
