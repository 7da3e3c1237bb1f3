"""Push URLs of exposed drivers, `/driver/<org>/<driver>[/…]` (the driver's id, as in its `url`,
or its name), on the management and the user-API ports.

A webhook driver takes `POST` on the URL itself (drivers.py). A driver of a custom type marked
`expose` has every request forwarded to its container, which may be on another host: any method,
the rest of the path (`/driver/o/d/a?x=1` reaches the container as `/a?x=1`), the query, the body
and the headers but hop-by-hop ones, with `X-Forwarded-For`, `-Host`, `-Proto` and `-Prefix`
(`/driver/<org>/<driver>`); the container's answer comes back as it is. Where the container
listens is the driver's PUSH_ADDRESS in the read model, set with READY by the process leading it.
Authenticating pushes is the container's business, as in Dispatch. Answers 404 for an unknown
driver or one that is not exposed, 409 naming its status for one that is not READY (a request is
not queued while a driver starts or is taken over; as a run of a function that is not READY),
502 when its container does not answer."""
import asyncio

import aiohttp
import structlog
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from dispatch.handlers.drivers import PUSH_ADDRESS
from dispatch.schemas.resources import Status

from .drivers import pushed_driver, receive_webhook
from .errors import error_response

log = structlog.get_logger("dispatch.gateway")
SESSION = web.AppKey("driver_push_session", aiohttp.ClientSession)
FORWARD_SECONDS = 60.0
CONNECT_SECONDS = 5.0
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "proxy-connection"))
# Set again by the client session: the length of the body as sent; the encoding aiohttp has undone.
RECOMPUTED = frozenset(("host", "content-length", "content-encoding"))


def serve(app: web.Application) -> None:
    """Add the push routes (before any catch-all route) and the client session forwarding pushes."""
    app.router.add_route("*", "/driver/{organization}/{driver}", push)
    app.router.add_route("*", "/driver/{organization}/{driver}/{tail:.*}", push)
    app.cleanup_ctx.append(_session)


async def _session(app: web.Application):
    timeout = aiohttp.ClientTimeout(total=FORWARD_SECONDS, sock_connect=CONNECT_SECONDS)
    # auto_decompress off: a compressed answer is passed on with its Content-Encoding, as it came.
    app[SESSION] = aiohttp.ClientSession(timeout=timeout, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
    yield
    await app[SESSION].close()


async def push(request: web.Request) -> web.Response:
    org, key = request.match_info["organization"], request.match_info["driver"]
    driver = await pushed_driver(request, org, key)
    if driver is None or not driver.get("expose"):
        return error_response(404, f"driver {key} not found")
    if driver.get("type") == "webhook":
        if "tail" in request.match_info:
            return error_response(404, f"driver {key} takes pushes at /driver/{org}/{key} only")
        if request.method != "POST":
            refused = error_response(405, f"driver {key} takes POST only")
            refused.headers["Allow"] = "POST"
            return refused
        return await receive_webhook(request, org, driver)
    return await forward(request, driver)


def _kept(headers, more: frozenset[str] = frozenset()) -> CIMultiDict:
    named = {token.strip().lower() for value in headers.getall("Connection", []) for token in value.split(",")}
    dropped = HOP_BY_HOP | more | named
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in dropped)


async def forward(request: web.Request, driver: dict) -> web.Response:
    """The request, sent to the driver's container; its answer, or why there is none."""
    key = request.match_info["driver"]
    address = driver.get(PUSH_ADDRESS)
    if driver.get("status") != Status.READY.value or not address:
        return error_response(409, f"driver {key} is not READY (status {driver.get('status')}): its push URL "
                                   "answers once it is")
    prefix = f"/driver/{request.match_info['organization']}/{key}"
    headers = _kept(request.headers, RECOMPUTED)
    headers["X-Forwarded-For"] = ", ".join(filter(None, (request.headers.get("X-Forwarded-For"), request.remote)))
    headers.setdefault("X-Forwarded-Host", request.host)
    headers.setdefault("X-Forwarded-Proto", request.scheme)
    headers["X-Forwarded-Prefix"] = prefix
    rest = request.rel_url.raw_path.split("/", 4)[4:]  # as the client encoded it, like the query
    query = f"?{request.query_string}" if request.query_string else ""
    url = URL(f"http://{address}/{''.join(rest)}{query}", encoded=True)
    body = await request.read()
    try:
        async with request.app[SESSION].request(request.method, url, data=body, headers=headers,
                                                allow_redirects=False) as answer:
            content = await answer.read()
            return web.Response(status=answer.status, body=content,
                                headers=_kept(answer.headers, frozenset(("content-length",))))
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        log.warning("driver push not answered", driver=driver["name"], address=address, error=repr(error))
        return error_response(502, f"the container of driver {key} did not answer: {_why(error)}")


def _why(error: Exception) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return f"no answer within {FORWARD_SECONDS:.0f} s"
    if isinstance(error, aiohttp.ClientConnectorError):
        return "it refused the connection or cannot be reached"
    return "the connection failed"
