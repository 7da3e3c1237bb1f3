"""An image's build outlives the image while functions run on it.

Deleting an image (or its base image) never breaks a function already deployed on it, as in
Dispatch, where a function's image was its own: each deploy records the build it used
(`imageBuild`, kept out of what clients see), a function is redeployed from that record after a
restart or on another handler process, and the build's files go only once neither an image nor
a function uses them."""
from typing import Any

from dispatch.drivers.ports import FunctionRuntime
from dispatch.schemas import events as e
from dispatch.schemas.resources import Status
from dispatch.store.ports import Views

from .lifecycle import Loaded

IMAGE_BUILD = "imageBuild"


def build_of(image: dict[str, Any]) -> dict[str, str]:
    """What a deploy records of the image it used."""
    return {"language": image["language"], "location": image["dockerUrl"]}


def deployed_build(loaded: Loaded) -> str | None:
    """The location of the build the function's last deploy used, if any."""
    deployed = loaded.last(e.FunctionDeployed)
    build = deployed.changes.get(IMAGE_BUILD) if deployed is not None else None
    return build.get("location") if build else None


async def release_build(views: Views, runtime: FunctionRuntime, organization: str, location: str | None) -> None:
    """Remove a build's files unless an image or a live function of the organization still uses them."""
    if not location:
        return
    for image in await views.list_resources(organization, "Image"):
        if image.get("dockerUrl") == location:
            return
    for function in await views.list_resources(organization, "Function"):
        build = function.get(IMAGE_BUILD) or {}
        if build.get("location") == location and function.get("status") != Status.DELETING.value:
            return
    await runtime.remove_image(location)
