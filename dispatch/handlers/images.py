"""Images: a base image plus runtime dependencies, built by the runtime driver."""
from collections import deque
from functools import partial

import structlog

from dispatch.bus.ports import MessageBus
from dispatch.drivers.ports import BuildFailed, FunctionRuntime, ImageSpec
from dispatch.errors import Rejected
from dispatch.schemas import commands as c, events as e
from dispatch.schemas.resources import Status
from dispatch.store.ports import BlobStore, ConcurrencyConflict, EventLog, Views

from .builds import release_build
from .lifecycle import append, broken, changed, create, delete, load, update

log = structlog.get_logger("dispatch.images")
WAITING = (Status.INITIALIZED.value, Status.CREATING.value, Status.UPDATING.value)
KEPT_LOG_LINES = 5000


class BuildLog:
    """What a build printed, logged as it comes and kept with the image (its last lines) for
    `dispatch logs image NAME`. The resource names the blob (`buildLog`); clients cannot set it."""

    def __init__(self, image: str):
        self.image = image
        self.lines: deque[str] = deque(maxlen=KEPT_LOG_LINES)

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        log.info("build", image=self.image, line=line)

    async def save(self, blobs: BlobStore) -> str:
        return await blobs.put_blob("".join(f"{line}\n" for line in self.lines).encode())


async def _base_of(views: Views, organization: str, body: dict) -> dict:
    base = await views.get_resource(organization, "BaseImage", body.get("baseImageName", ""))
    if base is None:
        raise Rejected(f"Error fetching base image {body.get('baseImageName')}")
    return base


async def create_image(cmd: c.CreateImage, events: EventLog, views: Views) -> dict:
    """Consumes CreateImage; emits ImageCreated. The base image must exist."""
    base = await _base_of(views, cmd.organization, cmd.resource)
    body = {**cmd.resource, "language": base["language"], "dockerUrl": ""}
    return await create(cmd, events, e.ImageCreated, Status.INITIALIZED, body)


async def update_image(cmd: c.UpdateImage, events: EventLog, views: Views) -> dict:
    """Consumes UpdateImage; emits ImageUpdated (the image is rebuilt)."""
    base = await _base_of(views, cmd.organization, cmd.resource)
    body = {**cmd.resource, "language": base["language"], "dockerUrl": ""}
    return await update(cmd, events, e.ImageUpdated, Status.UPDATING, body)


async def delete_image(cmd: c.DeleteImage, events: EventLog) -> dict:
    """Consumes DeleteImage; emits ImageDeletionRequested. Functions deployed on the image keep
    running on its build (builds.py)."""
    return await delete(cmd, events, e.ImageDeletionRequested)


async def build_image(cmd: c.BuildImage, events: EventLog, views: Views, runtime: FunctionRuntime,
                      blobs: BlobStore, busy: set) -> None:
    """Consumes BuildImage; emits ImageBuildStarted, then ImageBuilt or ImageBuildFailed.
    An image whose base image is not READY yet waits; it is built when the base becomes READY."""
    key = (cmd.organization, cmd.name)
    if key in busy:
        return
    busy.add(key)
    try:
        await _build(cmd, events, views, runtime, blobs)
    finally:
        busy.discard(key)


async def _build(cmd: c.BuildImage, events: EventLog, views: Views, runtime: FunctionRuntime, blobs: BlobStore) -> None:
    loaded = await load(events, "Image", cmd.organization, cmd.name)
    if loaded.status not in WAITING:
        return
    state = loaded.existing()
    base = await views.get_resource(cmd.organization, "BaseImage", state["baseImageName"])
    failure = broken(f"base image {state['baseImageName']}", base)
    if failure or base is None:
        await append(events, loaded, cmd, changed(e.ImageBuildFailed, cmd, Status.ERROR, failure))
        return
    if base["status"] != Status.READY.value:
        return
    try:
        await append(events, loaded, cmd, changed(e.ImageBuildStarted, cmd, Status.CREATING))
    except ConcurrencyConflict:
        return  # another build of this image started first
    loaded = await load(events, "Image", cmd.organization, cmd.name)
    packages = tuple((p.get("name", ""), p.get("version", ""))
                     for p in (state.get("systemDependencies") or {}).get("packages", []))
    spec = ImageSpec(id=state["id"], name=cmd.name, language=state["language"], base_url=base["dockerUrl"],
                     manifest=(state.get("runtimeDependencies") or {}).get("manifest", ""),
                     system_packages=packages)
    output = BuildLog(cmd.name)
    try:
        location = await runtime.build_image(spec, output)
        event = changed(e.ImageBuilt, cmd, Status.READY, dockerUrl=location, buildLog=await output.save(blobs))
    except BuildFailed as failed:
        output(failed.reason)
        event = changed(e.ImageBuildFailed, cmd, Status.ERROR, failed.reason, buildLog=await output.save(blobs))
    try:
        await append(events, loaded, cmd, event)
    except ConcurrencyConflict:
        log.info("image changed during its build; the newer build decides", image=cmd.name)


async def remove_image(cmd: c.RemoveImage, events: EventLog, views: Views, runtime: FunctionRuntime) -> None:
    """Consumes RemoveImage; emits ImageDeleted. The build goes too, unless functions run on it."""
    loaded = await load(events, "Image", cmd.organization, cmd.name)
    if loaded.status != Status.DELETING.value:
        return
    await append(events, loaded, cmd, e.ImageDeleted(organization=cmd.organization, name=cmd.name))
    await release_build(views, runtime, cmd.organization, loaded.existing().get("dockerUrl"))


async def build_when_changed(event: e.ResourceEvent, bus: MessageBus) -> None:
    await bus.send(c.BuildImage(organization=event.organization, name=event.name).caused_by(event))


async def build_waiting_when_base_ready(event: e.BaseImageChecked, bus: MessageBus, views: Views) -> None:
    for image in await views.list_resources(event.organization, "Image"):
        if image.get("baseImageName") == event.name and image.get("status") in WAITING:
            await bus.send(c.BuildImage(organization=event.organization, name=image["name"]).caused_by(event))


async def remove_when_deletion_requested(event: e.ImageDeletionRequested, bus: MessageBus) -> None:
    await bus.send(c.RemoveImage(organization=event.organization, name=event.name).caused_by(event))


def register(bus: MessageBus, events: EventLog, views: Views, runtime: FunctionRuntime, blobs: BlobStore) -> None:
    bus.handle(c.CreateImage, partial(create_image, events=events, views=views))
    bus.handle(c.UpdateImage, partial(update_image, events=events, views=views))
    bus.handle(c.DeleteImage, partial(delete_image, events=events))
    bus.handle(c.BuildImage, partial(build_image, events=events, views=views, runtime=runtime, blobs=blobs, busy=set()))
    bus.handle(c.RemoveImage, partial(remove_image, events=events, views=views, runtime=runtime))
    for event_type in (e.ImageCreated, e.ImageUpdated):
        bus.subscribe(event_type, "images", partial(build_when_changed, bus=bus))
    bus.subscribe(e.BaseImageChecked, "images", partial(build_waiting_when_base_ready, bus=bus, views=views))
    bus.subscribe(e.ImageDeletionRequested, "images", partial(remove_when_deletion_requested, bus=bus))

