"""`GET /v1/image/{name}/logs`: what the image's last build printed (`dispatch logs image NAME`)."""
from aiohttp import web

from dispatch.errors import NotFound

from .context import organization
from .resources import PLATFORM


async def image_build_log(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    platform = request.app[PLATFORM]
    image = await platform.views.get_resource(organization(request), "Image", name)
    if image is None:
        raise NotFound(f"image {name} not found")
    digest = image.get("buildLog")
    text = await platform.store.get_blob(digest) if digest else None
    if text is None:
        raise NotFound(f"image {name} has no build log yet (status {image.get('status')})")
    return web.json_response({"name": name, "status": image.get("status"),
                              "lines": text.decode(errors="replace").splitlines()})


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/image/{name}/logs", image_build_log)]
