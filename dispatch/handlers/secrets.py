"""Secrets (named maps of values, already sealed by the gateway; no status) and applications
(names for groups of resources; READY): both final at once."""
from functools import partial

from dispatch.bus.ports import MessageBus
from dispatch.schemas import commands as c, events as e
from dispatch.schemas.resources import Status
from dispatch.store.ports import EventLog

from .lifecycle import create, delete, update


async def create_secret(cmd: c.CreateSecret, events: EventLog) -> dict:
    """Consumes CreateSecret; emits SecretCreated."""
    return await create(cmd, events, e.SecretCreated, None)


async def update_secret(cmd: c.UpdateSecret, events: EventLog) -> dict:
    """Consumes UpdateSecret; emits SecretUpdated (the whole map is replaced)."""
    return await update(cmd, events, e.SecretUpdated, None)


async def delete_secret(cmd: c.DeleteSecret, events: EventLog) -> dict:
    """Consumes DeleteSecret; emits SecretDeleted."""
    return await delete(cmd, events, e.SecretDeleted)


async def create_application(cmd: c.CreateApplication, events: EventLog) -> dict:
    """Consumes CreateApplication; emits ApplicationCreated (READY)."""
    return await create(cmd, events, e.ApplicationCreated, Status.READY)


async def update_application(cmd: c.UpdateApplication, events: EventLog) -> dict:
    """Consumes UpdateApplication; emits ApplicationUpdated (READY)."""
    return await update(cmd, events, e.ApplicationUpdated, Status.READY)


async def delete_application(cmd: c.DeleteApplication, events: EventLog) -> dict:
    """Consumes DeleteApplication; emits ApplicationDeleted. Its members stay."""
    return await delete(cmd, events, e.ApplicationDeleted)


def register(bus: MessageBus, events: EventLog) -> None:
    bus.handle(c.CreateSecret, partial(create_secret, events=events))
    bus.handle(c.UpdateSecret, partial(update_secret, events=events))
    bus.handle(c.DeleteSecret, partial(delete_secret, events=events))
    bus.handle(c.CreateApplication, partial(create_application, events=events))
    bus.handle(c.UpdateApplication, partial(update_application, events=events))
    bus.handle(c.DeleteApplication, partial(delete_application, events=events))
