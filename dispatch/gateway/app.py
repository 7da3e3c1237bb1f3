"""The two aiohttp applications: the management API (`/v1`) and the user-API port."""
from aiohttp import web

from dispatch.handlers.platform import Platform
from dispatch.settings import Settings

from . import build_logs, drivers, events, pushes, runs, system, user_api
from .context import SETTINGS
from .credentials import CREDENTIALS, Credentials
from .errors import errors_middleware
from .logs import request_log
from .accepted import ACCEPTED, AcceptedRuns
from .resources import KINDS, PLATFORM, ResourceEndpoints
from .shapes import function_source, present_secret, sealed_secret

SHAPES = {"Function": {"prepare": function_source},
          "Secret": {"prepare": sealed_secret, "present": present_secret},
          "Driver": {"prepare": drivers.prepare_driver, "present": drivers.present_driver}}
ENDPOINTS = {"DriverType": drivers.DriverTypeEndpoints}


def create_app(settings: Settings, platform: Platform, accepted: AcceptedRuns | None = None) -> web.Application:
    """The `/v1` API. `accepted` is shared with the user-API app of the same process."""
    app = web.Application(middlewares=[request_log, errors_middleware], client_max_size=settings.max_payload_bytes)
    app[SETTINGS] = settings
    app[PLATFORM] = platform
    app[ACCEPTED] = accepted or AcceptedRuns()
    for kind in KINDS:
        app.add_routes(ENDPOINTS.get(kind.name, ResourceEndpoints)(kind, **SHAPES.get(kind.name, {})).routes())
    app.add_routes(runs.routes())
    app.add_routes(build_logs.routes())
    app.add_routes(events.routes())
    pushes.serve(app)
    app.add_routes(system.routes())
    return app


def create_api_app(settings: Settings, platform: Platform, accepted: AcceptedRuns | None = None) -> web.Application:
    app = web.Application(middlewares=[request_log], client_max_size=settings.max_payload_bytes)
    app[SETTINGS] = settings
    app[PLATFORM] = platform
    app[ACCEPTED] = accepted or AcceptedRuns()
    app[CREDENTIALS] = Credentials(platform.views, platform.box)
    pushes.serve(app)  # before the user APIs' catch-all
    app.router.add_route("*", "/{tail:.*}", user_api.serve)
    return app
