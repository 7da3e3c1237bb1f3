"""Keeps the runtime's deployments in step with the functions that are READY: after a restart,
every READY function is deployed again from its stored source, without being recreated."""
import asyncio

import structlog

from dispatch.drivers.ports import BuildFailed, DeploymentSpec, FunctionRuntime
from dispatch.schemas import events as e
from dispatch.schemas.resources import Status
from dispatch.settings import Settings
from dispatch.store.ports import BlobStore, EventLog, Views

from .builds import IMAGE_BUILD
from .lifecycle import Loaded, load
from .limits import limits_of

log = structlog.get_logger("dispatch.deployments")


async def deployment_spec(loaded: Loaded, image: dict, blobs: BlobStore, settings: Settings) -> DeploymentSpec:
    state = loaded.existing()
    source = loaded.last((e.FunctionCreated, e.FunctionUpdated))
    data = await blobs.get_blob(source.source_digest)
    if data is None:
        raise BuildFailed(f"the source of {loaded.label} is missing from the blob store")
    scale, limits = state.get("scale") or {}, limits_of(state, settings)
    return DeploymentSpec(faas_id=state["faasId"], name=loaded.name, organization=loaded.organization,
                          language=image["language"], image_location=image["dockerUrl"], source=data,
                          handler=state.get("handler") or "", timeout_ms=limits.timeout_ms,
                          min_replicas=scale.get("minReplicas"), max_replicas=scale.get("maxReplicas"),
                          concurrency=scale.get("concurrency"), idle_seconds=scale.get("idleSeconds"),
                          memory_mb=limits.memory_mb, cpu_seconds=limits.cpu_seconds,
                          cpus=(state.get("limits") or {}).get("cpus"), processes=limits.processes,
                          max_output_bytes=limits.max_output_bytes, network=limits.network,
                          secrets=tuple(state.get("secrets") or ()),
                          labels=tuple((t["key"], t.get("value", "")) for t in state.get("tags") or ()))


class Deployments:
    def __init__(self, events: EventLog, views: Views, blobs: BlobStore, runtime: FunctionRuntime,
                 settings: Settings):
        self.events = events
        self.views = views
        self.blobs = blobs
        self.runtime = runtime
        self.settings = settings
        self._pending: dict[str, asyncio.Task] = {}

    async def ensure(self, organization: str, function: dict) -> None:
        """Deploy a READY function's current version once, however many runs ask at the same time."""
        faas_id = function["faasId"]
        task = self._pending.get(faas_id)
        if task is None:
            task = asyncio.ensure_future(self._deploy(organization, function))
            self._pending[faas_id] = task
            task.add_done_callback(lambda _: self._pending.pop(faas_id, None))
        await asyncio.shield(task)

    async def _deploy(self, organization: str, function: dict) -> None:
        """On the build it was deployed with, which outlives a deleted image (builds.py)."""
        loaded = await load(self.events, "Function", organization, function["name"])
        build = function.get(IMAGE_BUILD)
        image: dict | None
        if build:
            image = {"language": build["language"], "dockerUrl": build["location"]}
        else:
            image = await self.views.get_resource(organization, "Image", function["image"])
        if image is None:
            raise BuildFailed(f"image {function['image']} not found")
        await self.runtime.deploy(await deployment_spec(loaded, image, self.blobs, self.settings))

    async def restore(self) -> int:
        """Remove what the runtime holds for functions that are gone, then deploy every READY
        function; return how many were restored."""
        functions = await self.views.list_all("Function")
        try:
            await self.runtime.reconcile({function["faasId"] for _, function in functions if function.get("faasId")})
        except Exception as error:
            log.warning("could not tidy the runtime", error=str(error))
        restored = 0
        for organization, function in functions:
            if function.get("status") != Status.READY.value:
                continue
            try:
                await self.ensure(organization, function)
                restored += 1
            except Exception as error:
                log.warning("could not restore function", function=function["name"], error=str(error))
        return restored
