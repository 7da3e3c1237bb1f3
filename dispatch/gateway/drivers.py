"""Event drivers and driver types on the management API, and what webhook drivers make of pushes.

`/v1/event/drivertypes` lists the organization's types, and with `?builtin=true` the built-in
ones (`builtin: true`) before them: Dispatch's clients, which know no built-in types, see the
types they created and can delete them all. A built-in type is found by name either way and
cannot be created, changed or deleted. Drivers and types spell their times
`created-time` / `modified-time`, as Dispatch's clients expect. An exposed driver's `url` (a
webhook's, or one of a custom type marked `expose`) is its push URL as the client reached this
gateway; pushes.py serves it.

A webhook driver's token is made here, shown once in the answer to its creation, and kept only
as its SHA-256: neither the bus, the log nor any later answer carries it. A webhook driver naming
secrets takes its token from the key `token` of one of them instead (chosen by its users, for
files of resources and for changing it).

A webhook's push, `POST /driver/<org>/<driver>` with the token as `Authorization: Bearer <token>`
or `X-Dispatch-Token`, turns the request into events: a CloudEvent (binary `ce-` headers,
structured, batched, or a JSON body that is one) as it is, any other body as the data of an event
of the driver's eventType. Answers 202 with the events' ids, 401 for a missing or wrong token, 404
for a driver not running, 400 for an invalid event."""
import hashlib
import hmac
import re
import secrets
import time
import urllib.parse
import uuid
from typing import Any

import structlog
from aiohttp import web

from dispatch.drivers.events.builtin import WEBHOOK_EVENT_TYPE
from dispatch.errors import Rejected, TooLarge
from dispatch.handlers.driver_types import builtin_type, builtin_types
from dispatch.handlers.drivers import PUSH_ADDRESS, TOKEN_DIGEST, entries
from dispatch.handlers.events import publish_event
from dispatch.schemas.cloudevents import (
    BATCH,
    STRUCTURED,
    Event,
    EventTooLarge,
    InvalidEvent,
    from_binary,
    from_body,
    is_json,
    parse_event,
)
from dispatch.schemas.resources import PATH_NAME_PATTERN, Status

from .bodies import json_bounds, loads, off_loop
from .context import application_filter, matches_application, organization
from .errors import error_response
from .resources import PLATFORM, ResourceEndpoints

log = structlog.get_logger("dispatch.gateway")
TOKEN = web.RequestKey("driver_token", str)
TIMES = ("created-time", "modified-time", "createdTime", "modifiedTime")
LIVE = (Status.CREATING.value, Status.READY.value, Status.UPDATING.value)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _times(resource: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in resource.items() if k not in ("createdTime", "modifiedTime", TOKEN_DIGEST, PUSH_ADDRESS)}
    return shown | {"created-time": resource.get("createdTime", 0), "modified-time": resource.get("modifiedTime", 0)}


def _base_url(request: web.Request) -> str:
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    return f"{scheme}://{request.host}"


def prepare_driver(request: web.Request, raw: dict, resource: dict) -> tuple[dict, dict]:
    body = {k: v for k, v in resource.items() if k not in (*TIMES, "expose", "url")}
    if request.method == "POST" and body["type"] == "webhook" and not body.get("secrets"):
        token = secrets.token_urlsafe(32)
        request[TOKEN] = token
        body[TOKEN_DIGEST] = _digest(token)
    return body, {}


def present_driver(request: web.Request, resource: dict, single: bool) -> dict:
    shown = _times(resource)
    if resource.get("expose") and resource.get("id"):  # the push URL this gateway serves (pushes.py)
        shown["url"] = f"{_base_url(request)}/driver/{organization(request)}/{resource['id']}"
    if request.method == "POST" and TOKEN in request:
        shown["token"] = request[TOKEN]  # once: it is kept only as its digest
    return shown


def prepare_driver_type(request: web.Request, raw: dict, resource: dict) -> tuple[dict, dict]:
    return {k: v for k, v in resource.items() if k not in (*TIMES, "builtin")}, {}


def present_driver_type(request: web.Request, resource: dict, single: bool) -> dict:
    return _times(resource)


class DriverTypeEndpoints(ResourceEndpoints):
    """The CRUD of driver types, with the built-in ones shown when asked for (and refused by the handlers)."""

    def __init__(self, kind, **shapes):
        super().__init__(kind, prepare_driver_type, present_driver_type)

    async def list(self, request: web.Request) -> web.Response:
        wanted = application_filter(request)
        items = await request.app[PLATFORM].views.list_resources(organization(request), "DriverType")
        if request.query.get("builtin", "").lower() in ("true", "1"):
            items = builtin_types() + items
        return web.json_response([self.present(request, i, False) for i in items if matches_application(i, wanted)])

    async def _existing(self, request: web.Request) -> dict:
        return builtin_type(request.match_info["name"]) or await super()._existing(request)


async def pushed_driver(request: web.Request, org: str, key: str) -> dict | None:
    """The driver of a push URL, by its id or its name, whatever its status."""
    if not re.fullmatch(PATH_NAME_PATTERN, org):
        return None
    for driver in await request.app[PLATFORM].views.list_resources(org, "Driver"):
        if key in (driver.get("id"), driver.get("name")):
            return driver
    return None


async def _authorized(request: web.Request, org: str, driver: dict) -> bool:
    """The request carries the driver's token: its secrets' `token`, else the one made for it."""
    given = _token(request).encode()
    platform = request.app[PLATFORM]
    for name in driver.get("secrets") or []:
        secret = await platform.views.get_resource(org, "Secret", name)
        chosen = platform.box.open(secret.get("secrets") or {}).get("token") if secret else None
        if chosen:
            return hmac.compare_digest(given, chosen.encode())
    digest = driver.get(TOKEN_DIGEST) or ""
    return bool(digest) and hmac.compare_digest(hashlib.sha256(given).hexdigest().encode(), digest.encode())


def _token(request: web.Request) -> str:
    authorization = request.headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return request.headers.get("X-Dispatch-Token", "")


def _events(request: web.Request, body: bytes, driver: dict) -> list[Event]:
    """The events a webhook request carries; InvalidEvent says why it carries none."""
    content_type = request.headers.get("Content-Type")
    if "ce-specversion" in request.headers:
        attributes = {name[3:].lower(): urllib.parse.unquote(value) for name, value in request.headers.items()
                      if name.lower().startswith("ce-")}
        return [parse_event(from_binary(attributes, content_type, body, **json_bounds(request)))]
    if request.content_type in (STRUCTURED, BATCH) or (body.strip() and is_json(content_type)):
        try:
            raw = loads(request, body, what="the body")
        except Rejected as error:
            raise (EventTooLarge if isinstance(error, TooLarge) else InvalidEvent)(error.message) from None
        if request.content_type == BATCH:
            if not isinstance(raw, list):
                raise InvalidEvent(f"a batch ({BATCH}) is a JSON array of events")
            return [parse_event(item) for item in raw]
        if request.content_type == STRUCTURED or (isinstance(raw, dict) and "specversion" in raw):
            return [parse_event(raw)]
    event_type = entries(driver.get("config")).get("eventType") or WEBHOOK_EVENT_TYPE
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    attributes = {"specversion": "1.0", "type": event_type, "source": f"/drivers/{driver['name']}",
                  "id": str(uuid.uuid4()), "time": stamp}
    return [parse_event(from_body(attributes, content_type, body, **json_bounds(request)))]


async def receive_webhook(request: web.Request, org: str, driver: dict) -> web.Response:
    """A webhook driver's push: the request becomes events of the driver's organization."""
    if driver.get("status") not in LIVE:
        return error_response(404, f"driver {request.match_info['driver']} not found")
    if not await _authorized(request, org, driver):
        return error_response(401, "the driver's token is missing or wrong: send it as Authorization: Bearer <token>")
    body = await request.read()
    try:
        events = await off_loop(body, _events, request, body, driver)
    except InvalidEvent as invalid:
        return error_response(413 if isinstance(invalid, EventTooLarge) else 400, f"Error validating event: {invalid}")
    try:
        for event in events:
            await publish_event(request.app[PLATFORM].bus, org, event)
    except Exception:
        log.exception("webhook event not published", driver=driver["name"])
        return error_response(500, "internal server error when emitting an event")
    return web.json_response({"events": [{"id": e.id, "type": e.type, "source": e.source} for e in events]},
                             status=202)
