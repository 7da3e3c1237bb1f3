"""`POST /v1/event/` (also `/v1/event`): emit events in the caller's organization, answered 200
with what was emitted.

Accepted: Dispatch's flat CloudEvents 0.1 event (with optional `tags` beside it, echoed as sent),
and CloudEvents 1.0 over HTTP - structured (`application/cloudevents+json`), batched
(`application/cloudevents-batch+json`, answered with the array) or binary (attributes in `ce-`
headers, the body as the data) - or a 1.0 JSON event sent as plain `application/json`. Every
event of a request is validated before any is emitted."""
import urllib.parse
from typing import Any

import structlog
from aiohttp import web

from dispatch.errors import DispatchError, Rejected, TooLarge
from dispatch.handlers.events import publish_event
from dispatch.schemas.cloudevents import BATCH, EventTooLarge, InvalidEvent, from_binary, parse_event

from .bodies import json_bounds, loads, off_loop
from .context import correlation_id, organization, subject
from .resources import PLATFORM

log = structlog.get_logger("dispatch.gateway")


def _invalid(reason: Any) -> Rejected:
    cls = TooLarge if isinstance(reason, EventTooLarge) else Rejected
    return cls(f"Error validating event: {reason}")


async def _received(request: web.Request) -> tuple[list[dict], Any]:
    body = await request.read()
    return await off_loop(body, _events_of, request, body)


def _events_of(request: web.Request, body: bytes) -> tuple[list[dict], Any]:
    """The events of a request in their JSON form, and what to echo (None: the events)."""
    if "ce-specversion" in request.headers:
        attributes = {name[3:].lower(): urllib.parse.unquote(value) for name, value in request.headers.items()
                      if name.lower().startswith("ce-")}
        try:
            return [from_binary(attributes, request.headers.get("Content-Type"), body, **json_bounds(request))], None
        except InvalidEvent as invalid:
            raise _invalid(invalid) from None
    if not body.strip():
        raise _invalid("the body is empty")
    try:
        raw = loads(request, body, what="the body")
    except Rejected as error:
        if error.status != 400:
            raise
        raise _invalid(error.message) from None
    if request.content_type == BATCH:
        if not isinstance(raw, list):
            raise _invalid(f"a batch ({BATCH}) is a JSON array of events")
        return raw, raw
    if isinstance(raw, dict) and "specversion" not in raw:
        return [{k: v for k, v in raw.items() if k != "tags"}], raw  # tags ride beside a 0.1 event
    return [raw], raw


async def emit(request: web.Request) -> web.Response:
    org = organization(request)
    raws, echo = await _received(request)
    try:
        events = [parse_event(raw) for raw in raws]
    except InvalidEvent as invalid:
        raise _invalid(invalid) from None
    bus = request.app[PLATFORM].bus
    for event in events:
        try:
            await publish_event(bus, org, event, correlation_id(request), subject(request))
        except (DispatchError, TimeoutError):
            raise
        except Exception:
            log.exception("emitting an event failed", event_type=event.type)
            raise DispatchError("internal server error when emitting an event") from None
    return web.json_response(echo if echo is not None else events[0].wire())


def routes() -> list[web.RouteDef]:
    return [web.post("/v1/event", emit), web.post("/v1/event/", emit)]
