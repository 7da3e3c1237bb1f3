"""Functions: source stored as a blob, deployed on the runtime once their image is READY."""
import asyncio
import base64
import binascii
from functools import partial

import structlog

from dispatch.bus.ports import MessageBus
from dispatch.drivers.ports import BuildFailed, FunctionRuntime
from dispatch.errors import Rejected, Unavailable
from dispatch.schemas import commands as c, events as e
from dispatch.schemas.envelope import new_id
from dispatch.schemas.resources import Status
from dispatch.schemas.source import Caps, validate as validate_source
from dispatch.store.ports import BlobStore, ConcurrencyConflict, EventLog, Views

from .builds import IMAGE_BUILD, build_of, deployed_build, release_build
from .deployments import Deployments, deployment_spec
from .execution import check_schemas
from .lifecycle import append, broken, changed, create, delete, load, update

log = structlog.get_logger("dispatch.functions")
DEPLOYABLE = (Status.INITIALIZED.value, Status.CREATING.value, Status.UPDATING.value)


async def _store_source(source: str, blobs: BlobStore, caps: Caps) -> str:
    """The archive, checked on a thread (a large one takes a while to read) and then stored."""
    if not source:
        raise Rejected("either source or sourceURL must be specified")
    try:
        data = base64.b64decode(source, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected("source is not valid base64") from None
    await asyncio.to_thread(validate_source, data, caps)
    return await blobs.put_blob(data)


async def create_function(cmd: c.CreateFunction, events: EventLog, blobs: BlobStore, caps: Caps) -> dict:
    """Consumes CreateFunction; emits FunctionCreated."""
    check_schemas(cmd.resource.get("schema"))
    digest = await _store_source(cmd.source, blobs, caps)
    body = {**cmd.resource, "faasId": new_id()}
    return await create(cmd, events, e.FunctionCreated, Status.INITIALIZED, body, source_digest=digest)


async def update_function(cmd: c.UpdateFunction, events: EventLog, blobs: BlobStore,
                          runtime: FunctionRuntime, caps: Caps) -> dict:
    """Consumes UpdateFunction; emits FunctionUpdated and removes the old deployment, so the
    function is not runnable until it is READY again."""
    check_schemas(cmd.resource.get("schema"))
    digest = await _store_source(cmd.source, blobs, caps)

    async def undeploy(previous: dict) -> None:
        await runtime.undeploy(previous["faasId"])

    body = {**cmd.resource, "faasId": new_id(), "functionImageURL": ""}
    return await update(cmd, events, e.FunctionUpdated, Status.UPDATING, body, undeploy, source_digest=digest)


async def delete_function(cmd: c.DeleteFunction, events: EventLog) -> dict:
    """Consumes DeleteFunction; emits FunctionDeletionRequested."""
    return await delete(cmd, events, e.FunctionDeletionRequested)


async def deploy_function(cmd: c.DeployFunction, deployments: Deployments, busy: set) -> None:
    """Consumes DeployFunction; emits FunctionDeployStarted, then FunctionDeployed or
    FunctionDeployFailed. A function whose image is still building waits for it."""
    if cmd.faas_id in busy:
        return
    busy.add(cmd.faas_id)
    try:
        await _deploy(cmd, deployments)
    finally:
        busy.discard(cmd.faas_id)


async def _deploy(cmd: c.DeployFunction, deployments: Deployments) -> None:
    events, views, runtime = deployments.events, deployments.views, deployments.runtime
    loaded = await load(events, "Function", cmd.organization, cmd.name)
    if loaded.status not in DEPLOYABLE or loaded.existing()["faasId"] != cmd.faas_id:
        return  # deleted, already deployed, or superseded by a newer update
    image_name = loaded.existing()["image"]
    image = await views.get_resource(cmd.organization, "Image", image_name)
    failure = broken(f"image {image_name}", image)
    if failure or image is None:
        await append(events, loaded, cmd, changed(e.FunctionDeployFailed, cmd, Status.ERROR, failure))
        return
    if image["status"] != Status.READY.value:
        return
    try:
        await append(events, loaded, cmd, changed(e.FunctionDeployStarted, cmd, Status.CREATING))
    except ConcurrencyConflict:
        return
    loaded = await load(events, "Function", cmd.organization, cmd.name)
    previous = deployed_build(loaded)
    try:
        location = await runtime.deploy(await deployment_spec(loaded, image, deployments.blobs, deployments.settings))
        event = changed(e.FunctionDeployed, cmd, Status.READY, functionImageURL=location or f"local://{cmd.faas_id}",
                        **{IMAGE_BUILD: build_of(image)})
    except BuildFailed as failed:
        event = changed(e.FunctionDeployFailed, cmd, Status.ERROR, failed.reason)
    except (Unavailable, OSError, TimeoutError):
        raise  # the engine or cluster did not answer: redelivered, and the resync drives it again
    except Exception as error:  # a defect, not a passing outage: the function says so, not CREATING forever
        log.exception("deploy failed", function=cmd.name)
        event = changed(e.FunctionDeployFailed, cmd, Status.ERROR,
                        f"the runtime could not deploy it: {type(error).__name__}: {error}")
    try:
        await append(events, loaded, cmd, event)
    except ConcurrencyConflict:
        log.info("function changed during its deploy; the newer deploy decides", function=cmd.name)
        return
    if previous != image["dockerUrl"]:
        await release_build(views, runtime, cmd.organization, previous)  # of a deleted image, say


async def remove_function(cmd: c.RemoveFunction, events: EventLog, views: Views, runtime: FunctionRuntime) -> None:
    """Consumes RemoveFunction; emits FunctionDeleted (its runs go with it), and removes the build
    it ran on when that build's image was deleted meanwhile and no other function uses it."""
    loaded = await load(events, "Function", cmd.organization, cmd.name)
    if loaded.status != Status.DELETING.value:
        return
    await runtime.undeploy(loaded.existing()["faasId"])
    await append(events, loaded, cmd, e.FunctionDeleted(organization=cmd.organization, name=cmd.name))
    await release_build(views, runtime, cmd.organization, deployed_build(loaded))


async def deploy_when_changed(event: e.ResourceCreated, bus: MessageBus) -> None:
    await bus.send(c.DeployFunction(organization=event.organization, name=event.name,
                                    faas_id=event.resource["faasId"]).caused_by(event))


async def deploy_waiting_when_image_built(event: e.ImageBuilt | e.ImageBuildFailed, bus: MessageBus,
                                          views: Views) -> None:
    for function in await views.list_resources(event.organization, "Function"):
        if function.get("image") == event.name and function.get("status") in DEPLOYABLE:
            await bus.send(c.DeployFunction(organization=event.organization, name=function["name"],
                                            faas_id=function["faasId"]).caused_by(event))


async def fail_waiting_when_image_failed(event: e.ImageBuildFailed, bus: MessageBus, views: Views) -> None:
    await deploy_waiting_when_image_built(event, bus, views)  # the deploy step records the failure


async def remove_when_deletion_requested(event: e.FunctionDeletionRequested, bus: MessageBus) -> None:
    await bus.send(c.RemoveFunction(organization=event.organization, name=event.name).caused_by(event))


def register(bus: MessageBus, events: EventLog, views: Views, blobs: BlobStore, runtime: FunctionRuntime,
             deployments: Deployments) -> None:
    caps = Caps.of(deployments.settings)
    bus.handle(c.CreateFunction, partial(create_function, events=events, blobs=blobs, caps=caps))
    bus.handle(c.UpdateFunction, partial(update_function, events=events, blobs=blobs, runtime=runtime, caps=caps))
    bus.handle(c.DeleteFunction, partial(delete_function, events=events))
    bus.handle(c.DeployFunction, partial(deploy_function, deployments=deployments, busy=set()))
    bus.handle(c.RemoveFunction, partial(remove_function, events=events, views=views, runtime=runtime))
    for event_type in (e.FunctionCreated, e.FunctionUpdated):
        bus.subscribe(event_type, "functions", partial(deploy_when_changed, bus=bus))
    bus.subscribe(e.ImageBuilt, "functions", partial(deploy_waiting_when_image_built, bus=bus, views=views))
    bus.subscribe(e.ImageBuildFailed, "functions", partial(fail_waiting_when_image_failed, bus=bus, views=views))
    bus.subscribe(e.FunctionDeletionRequested, "functions", partial(remove_when_deletion_requested, bus=bus))
