"""Secrets: named maps of values, already sealed by the gateway; no status, final at once."""
from functools import partial

from dispatch.bus.ports import MessageBus
from dispatch.schemas import commands as c
from dispatch.schemas import events as e
from dispatch.store.ports import EventLog

from .lifecycle import append, decide, load, new_resource, replaced, reply


async def create_secret(cmd: c.CreateSecret, events: EventLog) -> dict:
    """Consumes CreateSecret; emits SecretCreated."""
    async def step():
        loaded = await load(events, "Secret", cmd.organization, cmd.name)
        loaded.absent()
        resource = new_resource("Secret", cmd.name, cmd.resource, None)
        return reply(resource, await append(events, loaded, cmd, e.SecretCreated(
            organization=cmd.organization, name=cmd.name, resource=resource)))
    return await decide(step)


async def update_secret(cmd: c.UpdateSecret, events: EventLog) -> dict:
    """Consumes UpdateSecret; emits SecretUpdated (the whole map is replaced)."""
    async def step():
        loaded = await load(events, "Secret", cmd.organization, cmd.name)
        resource = replaced(loaded.existing(), cmd.resource, None)
        return reply(resource, await append(events, loaded, cmd, e.SecretUpdated(
            organization=cmd.organization, name=cmd.name, resource=resource)))
    return await decide(step)


async def delete_secret(cmd: c.DeleteSecret, events: EventLog) -> dict:
    """Consumes DeleteSecret; emits SecretDeleted."""
    async def step():
        loaded = await load(events, "Secret", cmd.organization, cmd.name)
        state = loaded.existing()
        return reply(state, await append(events, loaded, cmd, e.SecretDeleted(
            organization=cmd.organization, name=cmd.name)))
    return await decide(step)


def register(bus: MessageBus, events: EventLog) -> None:
    bus.handle(c.CreateSecret, partial(create_secret, events=events))
    bus.handle(c.UpdateSecret, partial(update_secret, events=events))
    bus.handle(c.DeleteSecret, partial(delete_secret, events=events))
