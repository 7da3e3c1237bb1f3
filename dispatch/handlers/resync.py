"""Re-drives resources left in a transitional status (a crash mid-build, a lost message): every
period, each one older than the period gets the command that moves it on again. Builds and
deploys still running in this process are not started twice (see `busy` in images/functions)."""
import asyncio
import time

import structlog

from dispatch.bus.ports import MessageBus
from dispatch.schemas import commands as c
from dispatch.schemas.resources import Status
from dispatch.store.ports import Views

log = structlog.get_logger("dispatch.resync")

S = Status
NEXT_STEP = {
    ("BaseImage", S.INITIALIZED): c.CheckBaseImage, ("BaseImage", S.UPDATING): c.CheckBaseImage,
    ("BaseImage", S.DELETING): c.RemoveBaseImage,
    ("Image", S.INITIALIZED): c.BuildImage, ("Image", S.CREATING): c.BuildImage,
    ("Image", S.UPDATING): c.BuildImage, ("Image", S.DELETING): c.RemoveImage,
    ("Function", S.INITIALIZED): c.DeployFunction, ("Function", S.CREATING): c.DeployFunction,
    ("Function", S.UPDATING): c.DeployFunction, ("Function", S.DELETING): c.RemoveFunction,
    ("API", S.CREATING): c.RouteAPI, ("API", S.UPDATING): c.RouteAPI, ("API", S.DELETING): c.RemoveAPI,
    ("Subscription", S.CREATING): c.ActivateSubscription, ("Subscription", S.UPDATING): c.ActivateSubscription,
    ("Subscription", S.DELETING): c.RemoveSubscription,
}
async def resync_once(bus: MessageBus, views: Views, older_than: float) -> int:
    cutoff = time.time() - older_than
    sent = 0
    for kind in ("BaseImage", "Image", "Function", "API", "Subscription"):
        for organization, resource in await views.list_all(kind):
            step = NEXT_STEP.get((kind, Status(resource.get("status") or "READY")))
            if step is None or resource.get("modifiedTime", 0) > cutoff:
                continue
            extra = {"faas_id": resource["faasId"]} if step is c.DeployFunction else {}
            await bus.send(step(organization=organization, name=resource["name"], **extra))
            sent += 1
    return sent


async def resync_forever(bus: MessageBus, views: Views, period: float) -> None:
    while True:
        await asyncio.sleep(period)
        try:
            sent = await resync_once(bus, views, period)
            if sent:
                log.info("resync", redriven=sent)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("resync failed")
