"""Subscriptions: an organization's standing order to run a function for every event of a type.

Events are matched against the subscriptions read model when they arrive (see events.py), so a
subscription needs no consumer of its own and survives every restart with the log: READY says
the events group has taken it on. Its function need not exist yet (Dispatch allowed that too)."""
from functools import partial

from dispatch.bus.ports import MessageBus
from dispatch.errors import Rejected
from dispatch.schemas import commands as c, events as e
from dispatch.schemas.resources import Status
from dispatch.store.ports import EventLog

from .lifecycle import Loaded, append, changed, create, delete, load, update


async def create_subscription(cmd: c.CreateSubscription, events: EventLog) -> dict:
    """Consumes CreateSubscription; emits SubscriptionCreated (CREATING)."""
    return await create(cmd, events, e.SubscriptionCreated, Status.CREATING)


async def update_subscription(cmd: c.UpdateSubscription, events: EventLog) -> dict:
    """Consumes UpdateSubscription; emits SubscriptionUpdated (UPDATING). Refused while an
    update is under way, as Dispatch did."""
    loaded = await load(events, "Subscription", cmd.organization, cmd.name)
    if loaded.status == Status.UPDATING.value:
        raise Rejected(f"{loaded.label} is already being updated")
    return await update(cmd, events, e.SubscriptionUpdated, Status.UPDATING)


async def _not_deleting(loaded: Loaded) -> None:
    if loaded.status == Status.DELETING.value:
        raise Rejected(f"{loaded.label} is already being deleted")


async def delete_subscription(cmd: c.DeleteSubscription, events: EventLog) -> dict:
    """Consumes DeleteSubscription; emits SubscriptionDeletionRequested (DELETING)."""
    return await delete(cmd, events, e.SubscriptionDeletionRequested, _not_deleting)


async def activate_subscription(cmd: c.ActivateSubscription, events: EventLog) -> None:
    """Consumes ActivateSubscription; emits SubscriptionActivated (READY)."""
    loaded = await load(events, "Subscription", cmd.organization, cmd.name)
    if loaded.status in (Status.CREATING.value, Status.UPDATING.value):
        await append(events, loaded, cmd, changed(e.SubscriptionActivated, cmd, Status.READY))


async def remove_subscription(cmd: c.RemoveSubscription, events: EventLog) -> None:
    """Consumes RemoveSubscription; emits SubscriptionDeleted."""
    loaded = await load(events, "Subscription", cmd.organization, cmd.name)
    if loaded.status == Status.DELETING.value:
        await append(events, loaded, cmd, e.SubscriptionDeleted(organization=cmd.organization, name=cmd.name))


async def activate_when_changed(event: e.ResourceEvent, bus: MessageBus) -> None:
    await bus.send(c.ActivateSubscription(organization=event.organization, name=event.name).caused_by(event))


async def remove_when_deletion_requested(event: e.SubscriptionDeletionRequested, bus: MessageBus) -> None:
    await bus.send(c.RemoveSubscription(organization=event.organization, name=event.name).caused_by(event))


def register(bus: MessageBus, events: EventLog) -> None:
    bus.handle(c.CreateSubscription, partial(create_subscription, events=events))
    bus.handle(c.UpdateSubscription, partial(update_subscription, events=events))
    bus.handle(c.DeleteSubscription, partial(delete_subscription, events=events))
    bus.handle(c.ActivateSubscription, partial(activate_subscription, events=events))
    bus.handle(c.RemoveSubscription, partial(remove_subscription, events=events))
    for event_type in (e.SubscriptionCreated, e.SubscriptionUpdated):
        bus.subscribe(event_type, "events", partial(activate_when_changed, bus=bus))
    bus.subscribe(e.SubscriptionDeletionRequested, "events", partial(remove_when_deletion_requested, bus=bus))
