"""Version, health and the OpenAPI document."""
import platform as host

from aiohttp import web

from dispatch import release

from .openapi import openapi_document
from .resources import PLATFORM


def version_info() -> dict[str, str]:
    return {"version": release(), "commit": "", "buildDate": "",
            "goVersion": f"{host.python_implementation()} {host.python_version()}",
            "compiler": host.python_compiler(), "platform": f"{host.system().lower()}/{host.machine()}"}


async def get_version(request: web.Request) -> web.Response:
    return web.json_response(version_info())


async def healthz(request: web.Request) -> web.Response:
    platform = request.app[PLATFORM]
    try:
        await platform.views.tracking("views")
    except Exception as error:
        return web.json_response({"code": 500, "message": f"store unavailable: {error}"}, status=500)
    return web.json_response({"version": version_info()})


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(version_info()["version"]))


async def root(request: web.Request) -> web.Response:
    return web.json_response({"message": "Default Root Page"})


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/version", get_version), web.get("/healthz", healthz),
            web.get("/v1/openapi.json", get_openapi), web.get("/", root)]
