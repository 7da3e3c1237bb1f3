"""The proxy side of the Kong double (tests/kong_admin.py), for end-to-end tests: matches the
double's routes as Kong 3.x does for what this project configures (regex paths anchored at the
start, methods, hosts, protocols with 426 for plain HTTP on an https-only route), runs the
plugins Dispatch sets on a route in Kong's order — `cors` answers pre-flights, then
`basic-auth` looks the user up among every credential in Kong (Proxy-Authorization first, then
Authorization) and compares Kong's hash of the password, answering 401 `{"message":
"Unauthorized"}` with `WWW-Authenticate: Basic realm="<config.realm>"` (Kong 3.6 and later) —
then forwards to the route's service with preserve_host / strip_path, X-Forwarded-* headers and,
for an authenticated caller, X-Consumer-ID, X-Consumer-Username and X-Credential-Identifier.
`X-Test-Client-TLS` pretends the client came over TLS (the double terminates no TLS); `forwarded`
lists the paths of the requests that reached a service."""
import base64
import binascii
import hmac
import re

import aiohttp
from aiohttp import web

from tests.kong_admin import KongAdmin, kong_hash

BASIC = re.compile(r"\s*[Bb]asic\s*(.+)")


class KongProxy:
    def __init__(self, admin: KongAdmin) -> None:
        self.admin = admin
        self.forwarded: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.proxy)
        return app

    def _route(self, request: web.Request) -> dict | None:
        host = request.host.rsplit(":", 1)[0].lower()
        for candidate in sorted(self.admin.store["routes"].values(), key=lambda r: -r["regex_priority"]):
            if candidate["methods"] and request.method not in candidate["methods"]:
                continue
            if candidate["hosts"] and host not in candidate["hosts"]:
                continue
            for path in candidate["paths"] or ["/"]:
                pattern = path[1:].replace("(?<", "(?P<") if path.startswith("~") else re.escape(path)
                if re.match(pattern, request.path):
                    return candidate
        return None

    def _plugin(self, name: str, route: dict) -> dict | None:
        """The enabled plugin of that name on the route, on its service, or global."""
        found = [p for p in self.admin.store["plugins"].values() if p["name"] == name and p["enabled"]
                 and (p["route"] or {}).get("id") in (None, route["id"])
                 and (p["service"] or {}).get("id") in (None, route["service"]["id"])]
        return max(found, key=lambda p: (p["route"] is not None, p["service"] is not None), default=None)

    def _consumer(self, request: web.Request) -> tuple[dict, dict] | None:
        """The consumer and credential the request's basic credentials name, if the password is right."""
        for header in ("Proxy-Authorization", "Authorization"):
            given = BASIC.match(request.headers.get(header, ""))
            try:
                user, sep, password = base64.b64decode(given.group(1)).decode().partition(":") if given else ("",) * 3
            except (binascii.Error, UnicodeDecodeError):
                continue
            credential = self.admin.named("basic-auths", user) if user and sep else None
            if credential is not None:
                consumer = self.admin.store["consumers"][credential["consumer"]["id"]]
                ok = hmac.compare_digest(credential["password"], kong_hash(consumer["id"], password))
                return (consumer, credential) if ok else None
        return None

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        route = self._route(request)
        if route is None:
            return web.json_response({"message": "no Route matched with those values"}, status=404)
        scheme = "https" if request.headers.get("X-Test-Client-TLS") else "http"
        if scheme not in route["protocols"]:
            return web.json_response({"message": "Please use HTTPS protocol"},
                                     status=route["https_redirect_status_code"])
        cors = self._plugin("cors", route)
        allow_origin = {"Access-Control-Allow-Origin": "*"} if cors else {}
        if cors and request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            config = cors["config"]
            return web.Response(status=200, headers={
                "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": ",".join(config["methods"]),
                "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", ""),
                "Access-Control-Max-Age": str(config["max_age"])})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "x-test-client-tls")}
        basic = self._plugin("basic-auth", route)
        if basic is not None:
            found = self._consumer(request)
            if found is None:
                challenge = {"WWW-Authenticate": f'Basic realm="{basic["config"]["realm"]}"', **allow_origin}
                return web.json_response({"message": "Unauthorized"}, status=401, headers=challenge)
            consumer, credential = found
            if basic["config"]["hide_credentials"]:
                headers = {k: v for k, v in headers.items()
                           if k.lower() not in ("authorization", "proxy-authorization")}
            headers.update({"X-Consumer-ID": consumer["id"], "X-Consumer-Username": consumer["username"],
                            "X-Credential-Identifier": credential["username"]})
        return await self._forward(request, route, scheme, headers, allow_origin)

    async def _forward(self, request: web.Request, route: dict, scheme: str, headers: dict,
                       extra: dict) -> web.Response:
        service = self.admin.store["services"][route["service"]["id"]]
        url = f"{service['protocol']}://{service['host']}:{service['port']}{service['path'] or ''}{request.path_qs}"
        if route["preserve_host"]:
            headers["Host"] = request.host
        headers.update({"X-Forwarded-Proto": scheme, "X-Forwarded-Host": request.host.rsplit(":", 1)[0],
                        "X-Forwarded-Path": request.path, "X-Real-IP": request.remote or ""})
        self.forwarded.append(request.path)
        async with aiohttp.ClientSession() as session:
            async with session.request(request.method, url, headers=headers, data=await request.read(),
                                       allow_redirects=False) as answer:
                body = await answer.read()
                out = {k: v for k, v in answer.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection")}
        out.update(extra)
        return web.Response(status=answer.status, body=body, headers=out)
