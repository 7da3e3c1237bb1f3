"""The two aiohttp applications: the management API (`/v1`) and the user-API port."""
from typing import Any

from aiohttp import web

from dispatch.handlers.platform import Platform
from dispatch.settings import Settings

from . import audit, build_logs, drivers, events, iam, pushes, run_logs, runs, system, user_api
from .accepted import ACCEPTED, AcceptedRuns
from .auth import AUTHORITY, Authority, authenticate, trusted_hosts
from .context import SETTINGS
from .credentials import CREDENTIALS, Credentials
from .errors import errors_middleware
from .logs import request_log
from .resources import KINDS, PLATFORM, ResourceEndpoints
from .shapes import function_source, present_secret, sealed_secret
from .telemetry import measured, routes as telemetry_routes, traced

SHAPES: dict[str, dict[str, Any]] = {"Function": {"prepare": iam.identity_checked(function_source)},
          "Secret": {"prepare": sealed_secret, "present": present_secret},
          "Driver": {"prepare": drivers.prepare_driver, "present": drivers.present_driver},
          "Policy": {"prepare": iam.prepare_policy}}
ENDPOINTS = {"DriverType": drivers.DriverTypeEndpoints, "Organization": iam.OrganizationEndpoints}


def create_app(settings: Settings, platform: Platform, accepted: AcceptedRuns | None = None,
               authority: Authority | None = None) -> web.Application:
    """The `/v1` API. `accepted` is shared with the user-API app of the same process; without an
    `authority` (`--skip-auth`) nobody is asked who they are."""
    middlewares = [*traced(), measured(platform.metrics), request_log, trusted_hosts(settings), errors_middleware,
                   authenticate]
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_payload_bytes)
    app[SETTINGS] = settings
    app[PLATFORM] = platform
    app[ACCEPTED] = accepted or AcceptedRuns()
    if authority is not None:
        app[AUTHORITY] = authority
    for kind in KINDS:
        app.add_routes(ENDPOINTS.get(kind.name, ResourceEndpoints)(kind, **SHAPES.get(kind.name, {})).routes())
    run_logs.serve(app)
    app.add_routes(runs.routes())
    app.add_routes(build_logs.routes())
    app.add_routes(events.routes())
    pushes.serve(app)
    app.add_routes(system.routes())
    app.add_routes(telemetry_routes())
    app.add_routes(iam.routes())
    audit.serve(app)
    return app


def create_api_app(settings: Settings, platform: Platform, accepted: AcceptedRuns | None = None) -> web.Application:
    app = web.Application(middlewares=[*traced(), measured(platform.metrics), request_log, errors_middleware],
                          client_max_size=settings.max_payload_bytes)
    app[SETTINGS] = settings
    app[PLATFORM] = platform
    app[ACCEPTED] = accepted or AcceptedRuns()
    app[CREDENTIALS] = Credentials(platform.views, platform.box)
    pushes.serve(app)  # before the user APIs' catch-all
    app.router.add_route("*", "/{tail:.*}", user_api.serve)
    return app
