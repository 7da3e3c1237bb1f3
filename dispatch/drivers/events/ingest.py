"""A custom driver's local ingestion endpoint (§4.5): an HTTP listener of its own on 127.0.0.1,
which the driver's container reaches over the host's network.

POST (any path; Dispatch's driver client posts to /v1/event/ingest) takes one event, a JSON array
of events, or several events one after the other; every event is validated before any is
published, then each is published: 201, 400 with the reason, or 500 when publishing failed. GET
answers 200, as a health check. A request must carry the driver's token, as Dispatch's driver
client sends it (the `authToken` query parameter) or as `Authorization: Bearer <token>`: other
processes of the host cannot post for the driver."""
import hmac
import json
from typing import Any

import structlog
from aiohttp import web

from dispatch.schemas.cloudevents import InvalidEvent, parse_event

from .ports import Emit

log = structlog.get_logger("dispatch.drivers")


def events_in(body: bytes) -> list[Any]:
    """The JSON values of a body: one, an array's items, or several concatenated."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidEvent("the body is not UTF-8 JSON") from None
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            break
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError as error:
            raise InvalidEvent(f"the body is not JSON: {error}") from None
        values.extend(value if isinstance(value, list) else [value])
    if not values:
        raise InvalidEvent("the body holds no event")
    return values


class Ingestion:
    """Listens for one driver until closed; `url` is where its container posts."""

    def __init__(self, emit: Emit, token: str, driver: str):
        self.emit = emit
        self.token = token
        self.driver = driver
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._health)
        app.router.add_route("POST", "/{tail:.*}", self._ingest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _allowed(self, request: web.Request) -> bool:
        given = request.query.get("authToken", "")
        authorization = request.headers.get("Authorization", "")
        if authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _ingest(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return _answer(401, "the driver's token (AUTH_TOKEN) is missing or wrong")
        try:
            events = [parse_event(value) for value in events_in(await request.read())]
        except InvalidEvent as invalid:
            return _answer(400, f"Error validating event: {invalid}")
        for event in events:
            try:
                await self.emit(event)  # type: ignore[arg-type]
            except Exception as error:  # noqa: BLE001 - the driver is told, and may send again
                log.warning("driver event not published", driver=self.driver, error=repr(error))
                return _answer(500, "internal server error when emitting an event")
        return web.json_response([event.wire() for event in events], status=201)


def _answer(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)
