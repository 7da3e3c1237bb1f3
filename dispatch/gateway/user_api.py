"""The user-API port: requests matched to APIs become runs; the run's output is the answer."""
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from dispatch.drivers.ports import Route
from dispatch.drivers.router import Matched
from dispatch.errors import DispatchError
from dispatch.schemas.wirejson import dumps_text

from .accepted import ACCEPTED
from .bodies import loads, off_loop
from .context import SETTINGS, correlation_id
from .credentials import CREDENTIALS, Unauthorized
from .errors import error_response, too_large_message
from .resources import PLATFORM
from .runs import execute, http_run
from .telemetry import ROUTE

FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
HIDDEN_HEADERS = {"authorization", "cookie", "x-consumer-username", "x-consumer-id", "x-consumer-custom-id",
                  "x-credential-identifier", "x-anonymous-consumer"}
"""Never passed on: the credentials, and the caller's identity headers, which Kong sets but anyone
reaching this port could forge; x-consumer-username is set by Dispatch alone, for a caller it
authenticated itself."""
ERROR_STATUS = {"InputError": 400, "FunctionError": 502, "SystemError": 503}


def _as_object(fields: MultiMapping) -> dict[str, Any]:
    """Repeated keys become arrays of their values; an uploaded file becomes its text."""
    result: dict[str, Any] = {}
    for key in fields.keys():
        if key in result:
            continue
        values = [_text(value) for value in fields.getall(key)]
        result[key] = values[0] if len(values) == 1 else values
    return result


def _text(value: Any) -> Any:
    if isinstance(value, web.FileField):
        return value.file.read().decode("utf-8", errors="replace")
    return value


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message

    def response(self) -> web.Response:
        """Kong's `{message}`; a body over a cap answers as the management port does, `{code, message}`."""
        if self.status == 413:
            return error_response(413, self.message)
        return web.json_response({"message": self.message}, status=self.status)


async def run_input(request: web.Request) -> Any:
    try:
        return await _parsed(request)
    except web.HTTPRequestEntityTooLarge as error:
        raise BadRequest(413, too_large_message(error)) from None


async def _parsed(request: web.Request) -> Any:
    if request.method == "GET":
        return _as_object(request.query)
    content_type = request.content_type if "Content-Type" in request.headers else ""
    if content_type in FORMS and request.body_exists:
        # before read(): a multipart body is parsed from the stream, which read() would drain
        try:
            return _as_object(await request.post())
        except web.HTTPException:
            raise
        except Exception as error:  # noqa: BLE001 - the parser's many errors all mean a malformed body
            raise BadRequest(400, f"request body is not a valid form: {error}") from None
    body = await request.read()
    if not body:
        return {}
    if content_type == "application/json" or (content_type.startswith("application/")
                                              and content_type.endswith("+json")):
        try:
            return await off_loop(body, loads, request, body, "request body is not json")
        except DispatchError as error:
            raise BadRequest(error.status, error.message) from None
    if not content_type:
        return body.decode("utf-8", errors="replace")
    # as sent: aiohttp reads a value that is no media type (`unsupported-content-type`) as
    # application/octet-stream, which would name a type the client never sent
    sent = request.headers["Content-Type"].split(";", 1)[0].strip()
    raise BadRequest(415, f"request body type is not supported: {sent}")


def scheme(request: web.Request) -> str:
    """The scheme the caller used: TLS is terminated in front of the built-in gateway, so the proxy's
    X-Forwarded-Proto counts (a client forging it only fools itself: its request already went out plain)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return forwarded or request.scheme


def http_context(request: web.Request, matched: Matched, caller: str | None) -> dict[str, Any]:
    context: dict[str, Any] = {name.lower(): value for name, value in request.headers.items()
                               if name.lower() not in HIDDEN_HEADERS}
    if caller is not None:
        context["x-consumer-username"] = caller  # the header Kong's auth plugins set
    # as Kong did: the organization header is the API's, whatever the caller sent
    context.update({"x-dispatch-org": matched.route.organization, "params": matched.params,
                    "method": request.method, "uri": request.path,
                    "request_uri": request.path_qs, "request": str(request.url), "args": request.query_string,
                    "scheme": scheme(request), "upstream_uri": request.path_qs,
                    "server_protocol": f"HTTP/{request.version.major}.{request.version.minor}"})
    return context


def cors_headers(request: web.Request, route: Route) -> dict[str, str]:
    """Any origin; the API's methods; the headers a pre-flight asks for (a `*` would not cover
    Authorization, which an authenticated API needs)."""
    methods = ", ".join(dict.fromkeys([*(route.methods or ("GET", "POST", "PUT", "PATCH", "DELETE")), "OPTIONS"]))
    return {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers") or "*",
            "Access-Control-Expose-Headers": "X-Dispatch-Run", "Access-Control-Max-Age": "3600"}


def _answer(request: web.Request, route: Route, run: dict, response: web.StreamResponse) -> web.StreamResponse:
    response.headers["X-Dispatch-Run"] = run.get("name", "")
    if route.cors:
        response.headers.update(cors_headers(request, route))
    return response


def _result(run: dict) -> web.Response:
    error = run.get("error")
    if error:
        status = ERROR_STATUS.get(error.get("type"), 502)
        if "exceeded the timeout" in error.get("message", ""):
            status = 504
        return web.json_response({"message": error.get("message"), "type": error.get("type"),
                                  "run": run["name"]}, status=status)
    if run.get("output") in (None, ""):
        return web.Response(status=200)
    return web.json_response(run["output"], dumps=dumps_text)


async def serve(request: web.Request) -> web.StreamResponse:
    platform = request.app[PLATFORM]
    matched = platform.router.match(request.method, request.path, request.host or "")
    if matched is None:
        return web.json_response({"message": "no API found with those values"}, status=404)
    route = matched.route
    request[ROUTE] = f"{route.organization}/{route.api}"  # the API: bounded, unlike the paths it matches
    if route.protocols and "http" not in route.protocols and scheme(request) == "http":
        return web.json_response({"message": "Please use HTTPS protocol"}, status=426)
    if request.method == "OPTIONS" and route.cors:  # a pre-flight carries no credentials
        return _answer(request, route, {}, web.Response(status=200))
    try:
        caller = await request.app[CREDENTIALS].caller(request, route)
    except Unauthorized as refused:
        response = web.json_response({"message": refused.message}, status=401,
                                     headers={"WWW-Authenticate": refused.challenge})
        return _answer(request, route, {}, response)
    try:
        payload = await run_input(request)
    except BadRequest as bad:
        return _answer(request, route, {}, bad.response())
    blocking = request.headers.get("x-dispatch-blocking", "true").lower() != "false"
    context = http_context(request, matched, caller)
    run = http_run(route.function, blocking, payload, context)
    try:
        status, result = await execute(platform, request.app[ACCEPTED], route.organization, run,
                                       correlation_id(request), request.app[SETTINGS].blocking_wait_seconds)
    except DispatchError as error:
        return _answer(request, route, run, error_response(error.status, error.message))
    except TimeoutError:
        return _answer(request, route, run, web.json_response(
            {"message": "the platform did not answer in time; try again", "type": "SystemError"}, status=503))
    if not blocking or status == 202:
        return _answer(request, route, result, web.Response(status=200 if not blocking else 202))
    return _answer(request, route, result, _result(result))
