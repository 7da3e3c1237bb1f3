"""Base images: register a language runtime and check that it answers."""
from functools import partial

from dispatch.bus.ports import MessageBus
from dispatch.drivers.ports import BuildFailed, FunctionRuntime
from dispatch.schemas import commands as c, events as e
from dispatch.schemas.resources import Status
from dispatch.store.ports import EventLog

from .lifecycle import append, changed, create, delete, load, update


async def create_base_image(cmd: c.CreateBaseImage, events: EventLog) -> dict:
    """Consumes CreateBaseImage; emits BaseImageCreated."""
    return await create(cmd, events, e.BaseImageCreated, Status.INITIALIZED)


async def update_base_image(cmd: c.UpdateBaseImage, events: EventLog) -> dict:
    """Consumes UpdateBaseImage; emits BaseImageUpdated."""
    return await update(cmd, events, e.BaseImageUpdated, Status.UPDATING)


async def delete_base_image(cmd: c.DeleteBaseImage, events: EventLog) -> dict:
    """Consumes DeleteBaseImage; emits BaseImageDeletionRequested. Images built on it keep their
    builds; one rebuilt later fails, naming the missing base image."""
    return await delete(cmd, events, e.BaseImageDeletionRequested)


async def check_base_image(cmd: c.CheckBaseImage, events: EventLog, runtime: FunctionRuntime) -> None:
    """Consumes CheckBaseImage; emits BaseImageChecked or BaseImageCheckFailed."""
    loaded = await load(events, "BaseImage", cmd.organization, cmd.name)
    if loaded.status not in (Status.INITIALIZED.value, Status.UPDATING.value, Status.ERROR.value):
        return
    state = loaded.existing()
    try:
        await runtime.check_base_image(state["language"], state["dockerUrl"])
        event = changed(e.BaseImageChecked, cmd, Status.READY)
    except BuildFailed as failure:
        event = changed(e.BaseImageCheckFailed, cmd, Status.ERROR, failure.reason)
    await append(events, loaded, cmd, event)


async def remove_base_image(cmd: c.RemoveBaseImage, events: EventLog) -> None:
    """Consumes RemoveBaseImage; emits BaseImageDeleted."""
    loaded = await load(events, "BaseImage", cmd.organization, cmd.name)
    if loaded.status == Status.DELETING.value:
        await append(events, loaded, cmd, e.BaseImageDeleted(organization=cmd.organization, name=cmd.name))


async def check_when_changed(event: e.ResourceEvent, bus: MessageBus) -> None:
    await bus.send(c.CheckBaseImage(organization=event.organization, name=event.name).caused_by(event))


async def remove_when_deletion_requested(event: e.BaseImageDeletionRequested, bus: MessageBus) -> None:
    await bus.send(c.RemoveBaseImage(organization=event.organization, name=event.name).caused_by(event))


def register(bus: MessageBus, events: EventLog, runtime: FunctionRuntime) -> None:
    bus.handle(c.CreateBaseImage, partial(create_base_image, events=events))
    bus.handle(c.UpdateBaseImage, partial(update_base_image, events=events))
    bus.handle(c.DeleteBaseImage, partial(delete_base_image, events=events))
    bus.handle(c.CheckBaseImage, partial(check_base_image, events=events, runtime=runtime))
    bus.handle(c.RemoveBaseImage, partial(remove_base_image, events=events))
    for event_type in (e.BaseImageCreated, e.BaseImageUpdated):
        bus.subscribe(event_type, "base-images", partial(check_when_changed, bus=bus))
    bus.subscribe(e.BaseImageDeletionRequested, "base-images", partial(remove_when_deletion_requested, bus=bus))
