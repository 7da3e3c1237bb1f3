"""A stand-in for Kong 3.x's Admin API (services, routes, plugins) in aiohttp, following Kong's
documented behaviour: POST 201 and 409 on a unique violation; PUT by id or name creates or
replaces (200); PATCH merges; DELETE answers 204 whether or not the object existed and cascades
from a route to its plugins, but a service still referenced by a route answers 400; lists page
with `size` (default 100, at most 1000), an opaque `offset` and a `next` path, and filter by
`tags` (`a,b` all of them, `a/b` any of them); unknown fields and bad values answer 400 schema
violations. It is not Kong: it checks what this project sends, not everything Kong would."""
import base64
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

ENTITIES = ("services", "routes", "plugins")
NAME = re.compile(r"^[A-Za-z0-9.\-_~]+$")
FIELDS = {
    "services": {"name", "protocol", "host", "port", "path", "url", "retries", "connect_timeout", "write_timeout",
                 "read_timeout", "tags", "enabled", "client_certificate", "tls_verify", "tls_verify_depth",
                 "ca_certificates"},
    "routes": {"name", "service", "paths", "methods", "hosts", "protocols", "strip_path", "preserve_host",
               "https_redirect_status_code", "regex_priority", "path_handling", "tags", "headers", "snis",
               "sources", "destinations", "request_buffering", "response_buffering"},
    "plugins": {"name", "route", "service", "consumer", "config", "enabled", "protocols", "tags", "instance_name"},
}
PLUGINS = {"cors": {"origins": None, "methods": None, "headers": None, "exposed_headers": None,
                    "credentials": False, "max_age": None, "preflight_continue": False, "private_network": False},
           "basic-auth": {"hide_credentials": False, "anonymous": None},
           "key-auth": {"key_names": ["apikey"], "hide_credentials": False}}
DEFAULTS = {
    "services": {"retries": 5, "connect_timeout": 60000, "write_timeout": 60000, "read_timeout": 60000,
                 "path": None, "tags": None, "enabled": True, "port": 80, "protocol": "http"},
    "routes": {"paths": None, "methods": None, "hosts": None, "protocols": ["http", "https"], "strip_path": True,
               "preserve_host": False, "https_redirect_status_code": 426, "regex_priority": 0,
               "path_handling": "v0", "tags": None},
    "plugins": {"route": None, "service": None, "consumer": None, "enabled": True, "tags": None,
                "protocols": ["grpc", "grpcs", "http", "https"]},
}


class SchemaViolation(Exception):
    def __init__(self, fields: dict[str, str]):
        super().__init__(fields)
        self.fields = fields


def _error(status: int, name: str, message: str, **extra: Any) -> web.Response:
    codes = {"schema violation": 2, "unique constraint violation": 5, "foreign key violation": 4}
    return web.json_response({"code": codes.get(name), "name": name, "message": message, **extra}, status=status)


class KongAdmin:
    def __init__(self) -> None:
        self.store: dict[str, dict[str, dict]] = {kind: {} for kind in ENTITIES}
        self.order: dict[str, list[str]] = {kind: [] for kind in ENTITIES}
        self.writes: list[tuple[str, str]] = []
        self.clock = 1_700_000_000

    def app(self) -> web.Application:
        app = web.Application()
        for kind in ENTITIES:
            app.router.add_get(f"/{kind}", self._list(kind))
            app.router.add_post(f"/{kind}", self._create(kind))
            app.router.add_route("*", f"/{kind}/{{key}}", self._one(kind))
        return app

    # --- lookups --------------------------------------------------------------------------------

    def find(self, kind: str, key: str) -> dict | None:
        if key in self.store[kind]:
            return self.store[kind][key]
        return next((o for o in self.store[kind].values() if o.get("name") == key and kind != "plugins"), None)

    def named(self, kind: str, name: str) -> dict | None:
        return next((o for o in self.store[kind].values() if o.get("name") == name), None)

    # --- handlers -------------------------------------------------------------------------------

    def _list(self, kind: str):
        async def handler(request: web.Request) -> web.Response:
            try:
                size = int(request.query.get("size", 100))
            except ValueError:
                return _error(400, "invalid size", "size must be a number")
            if not 1 <= size <= 1000:
                return _error(400, "invalid size", "size must be an integer between 1 and 1000")
            items = [self.store[kind][i] for i in self.order[kind]]
            tags = request.query.get("tags")
            if tags:
                if "," in tags and "/" in tags:
                    return _error(400, "invalid filter", "invalid option (tags): mixing ',' and '/' is not supported")
                wanted, every = (tags.split(","), True) if "," in tags or "/" not in tags else (tags.split("/"), False)
                test = all if every else any
                items = [o for o in items if test(t in (o.get("tags") or []) for t in wanted)]
            start = 0
            if "offset" in request.query:
                try:
                    start = int(base64.urlsafe_b64decode(request.query["offset"].encode()).decode())
                except ValueError:
                    return _error(400, "invalid offset", "invalid offset")
            page = items[start:start + size]
            body: dict[str, Any] = {"data": page, "next": None}
            if start + size < len(items):
                token = base64.urlsafe_b64encode(str(start + size).encode()).decode()
                body["offset"] = token
                body["next"] = f"/{kind}?offset={token}" + (f"&tags={tags}" if tags else "")
            return web.json_response(body)
        return handler

    def _create(self, kind: str):
        async def handler(request: web.Request) -> web.Response:
            body = await request.json()
            return self._write(kind, None, body, 201)
        return handler

    def _one(self, kind: str):
        async def handler(request: web.Request) -> web.Response:
            key = request.match_info["key"]
            found = self.find(kind, key)
            if request.method == "GET":
                return web.json_response(found) if found else web.json_response({"message": "Not found"}, status=404)
            if request.method == "DELETE":
                return self._delete(kind, found)
            body = await request.json()
            if request.method == "PATCH":
                if found is None:
                    return web.json_response({"message": "Not found"}, status=404)
                merged = {k: v for k, v in found.items() if k not in ("id", "created_at", "updated_at")}
                merged.update(body)
                return self._write(kind, found, merged, 200)
            if request.method == "PUT":
                if found is None:
                    if _is_uuid(key):
                        body = {**body, "id": key}
                    elif kind != "plugins":
                        body = {**body, "name": key}
                    else:
                        return web.json_response({"message": "Not found"}, status=404)
                elif kind != "plugins" and not _is_uuid(key):
                    body = {**body, "name": key}
                return self._write(kind, found, body, 200)
            return web.json_response({"message": "Method not allowed"}, status=405)
        return handler

    def _delete(self, kind: str, found: dict | None) -> web.Response:
        if found is None:
            return web.Response(status=204)
        if kind == "services" and any(r["service"]["id"] == found["id"] for r in self.store["routes"].values()):
            return _error(400, "foreign key violation", "an existing 'routes' entity references this 'services' entity")
        if kind == "routes":
            for plugin in [p for p in self.store["plugins"].values() if (p.get("route") or {}).get("id") == found["id"]]:
                self._remove("plugins", plugin["id"])
        self._remove(kind, found["id"])
        self.writes.append(("DELETE", f"{kind}/{found.get('name') or found['id']}"))
        return web.Response(status=204)

    def _remove(self, kind: str, key: str) -> None:
        del self.store[kind][key]
        self.order[kind].remove(key)

    # --- validation and storage -----------------------------------------------------------------

    def _write(self, kind: str, existing: dict | None, body: dict, status: int) -> web.Response:
        try:
            entity = self._validated(kind, body)
        except SchemaViolation as violation:
            message = ", ".join(f"{k}: {v}" for k, v in violation.fields.items())
            return _error(400, "schema violation", f"schema violation ({message})", fields=violation.fields)
        except LookupError as missing:
            return _error(400, "foreign key violation", str(missing.args[0]))
        clash = self._unique_clash(kind, entity, existing)
        if clash:
            return _error(409, "unique constraint violation", f"UNIQUE violation detected on '{clash}'")
        self.clock += 1
        if existing is not None:
            entity.update(id=existing["id"], created_at=existing["created_at"])
        else:
            entity.setdefault("id", str(uuid.uuid4()))
            entity["created_at"] = self.clock
        entity["updated_at"] = self.clock
        if entity["id"] not in self.store[kind]:
            self.order[kind].append(entity["id"])
        self.store[kind][entity["id"]] = entity
        self.writes.append(("PUT" if status == 200 else "POST", f"{kind}/{entity.get('name') or entity['id']}"))
        return web.json_response(entity, status=status)

    def _unique_clash(self, kind: str, entity: dict, existing: dict | None) -> str | None:
        mine = existing["id"] if existing else entity.get("id")
        for other in self.store[kind].values():
            if other["id"] == mine:
                continue
            if kind != "plugins" and entity.get("name") and other.get("name") == entity["name"]:
                return f'{{name="{entity["name"]}"}}'
            if kind == "plugins" and all(other.get(k) == entity.get(k) for k in ("name", "route", "service", "consumer")):
                return f'{{consumer=null,name="{entity["name"]}",route={entity.get("route")},service=null}}'
        if existing is None and entity.get("id") in self.store[kind]:
            return f'{{id="{entity["id"]}"}}'
        return None

    def _validated(self, kind: str, body: dict) -> dict:
        unknown = set(body) - FIELDS[kind] - {"id"}
        if unknown:
            raise SchemaViolation({field: "unknown field" for field in sorted(unknown)})
        entity = {**DEFAULTS[kind], **body}
        if "name" in entity and entity["name"] is not None and not NAME.match(str(entity["name"])) and kind != "plugins":
            raise SchemaViolation({"name": "invalid value '%s': the only accepted ascii characters are alphanumerics "
                                           "or ., -, _, and ~" % entity["name"]})
        getattr(self, f"_check_{kind}")(entity)
        return entity

    def _check_services(self, entity: dict) -> None:
        url = entity.pop("url", None)
        if url:
            parts = urlsplit(url)
            entity.update(protocol=parts.scheme, host=parts.hostname,
                          port=parts.port or (443 if parts.scheme == "https" else 80), path=parts.path or None)
        if not entity.get("host"):
            raise SchemaViolation({"host": "required field missing"})
        if entity["protocol"] not in ("http", "https", "grpc", "grpcs", "tcp", "tls", "udp", "ws", "wss"):
            raise SchemaViolation({"protocol": "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp, ws, wss"})
        if entity.get("path") is not None and not str(entity["path"]).startswith("/"):
            raise SchemaViolation({"path": "should start with: /"})

    def _check_routes(self, entity: dict) -> None:
        service = entity.get("service")
        if service is not None:
            target = self.find("services", service.get("id") or service.get("name") or "")
            if target is None:
                raise LookupError(f"the foreign key '{{id=\"{service.get('id')}\"}}' does not reference an existing "
                                  f"'services' entity.")
            entity["service"] = {"id": target["id"]}
        if not any(entity.get(k) for k in ("methods", "hosts", "paths", "headers", "snis")):
            raise SchemaViolation({"@entity": "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' "
                                              "when 'protocols' is 'http'"})
        for path in entity.get("paths") or []:
            if path.startswith("~"):
                try:
                    re.compile(path[1:].replace("(?<", "(?P<"))
                except re.error as bad:
                    raise SchemaViolation({"paths": f"invalid regex: '{path}' ({bad})"}) from None
            elif not path.startswith("/"):
                raise SchemaViolation({"paths": "should start with: / (fixed path) or ~/ (regex path)"})
        if not set(entity["protocols"]) <= {"http", "https"}:
            raise SchemaViolation({"protocols": "must be http or https here"})
        if entity["https_redirect_status_code"] not in (426, 301, 302, 307, 308):
            raise SchemaViolation({"https_redirect_status_code": "value must be 426, 301, 302, 307 or 308"})
        for method in entity.get("methods") or []:
            if not re.fullmatch(r"[A-Z]+", method):
                raise SchemaViolation({"methods": "invalid value: " + method})

    def _check_plugins(self, entity: dict) -> None:
        defaults = PLUGINS.get(entity.get("name"))
        if defaults is None:
            raise SchemaViolation({"name": f"plugin '{entity.get('name')}' not enabled; add it to the 'plugins' "
                                           f"configuration property"})
        config = entity.get("config") or {}
        unknown = set(config) - set(defaults)
        if unknown:
            raise SchemaViolation({f"config.{field}": "unknown field" for field in sorted(unknown)})
        entity["config"] = {**defaults, **config}
        route = entity.get("route")
        if route is not None:
            target = self.find("routes", route.get("id") or "")
            if target is None:
                raise LookupError(f"the foreign key '{{id=\"{route.get('id')}\"}}' does not reference an existing "
                                  f"'routes' entity.")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class KongProxy:
    """The proxy side, for end-to-end tests: matches the double's routes as Kong 3.x does for
    what this project configures (regex paths anchored at the start, methods, hosts, protocols
    with 426 for plain HTTP on an https-only route, the cors plugin answering pre-flights), then
    forwards to the route's service with preserve_host / strip_path and X-Forwarded-* headers.
    `https` pretends the client came over TLS (the double terminates no TLS)."""

    def __init__(self, admin: KongAdmin) -> None:
        self.admin = admin

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

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        route = self._route(request)
        if route is None:
            return web.json_response({"message": "no Route matched with those values"}, status=404)
        scheme = "https" if request.headers.get("X-Test-Client-TLS") else "http"
        if scheme not in route["protocols"]:
            return web.json_response({"message": "Please use HTTPS protocol"}, status=route["https_redirect_status_code"])
        cors = next((p for p in self.admin.store["plugins"].values()
                     if p["name"] == "cors" and (p["route"] or {}).get("id") == route["id"]), None)
        if cors and request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            config = cors["config"]
            return web.Response(status=200, headers={
                "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": ",".join(config["methods"]),
                "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", ""),
                "Access-Control-Max-Age": str(config["max_age"])})
        service = self.admin.store["services"][route["service"]["id"]]
        url = f"{service['protocol']}://{service['host']}:{service['port']}{service['path'] or ''}{request.path_qs}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "x-test-client-tls")}
        if route["preserve_host"]:
            headers["Host"] = request.host
        headers.update({"X-Forwarded-Proto": scheme, "X-Forwarded-Host": request.host.rsplit(":", 1)[0],
                        "X-Forwarded-Path": request.path, "X-Real-IP": request.remote or ""})
        async with aiohttp.ClientSession() as session:
            async with session.request(request.method, url, headers=headers, data=await request.read(),
                                       allow_redirects=False) as answer:
                body = await answer.read()
                out = {k: v for k, v in answer.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection")}
        if cors:
            out["Access-Control-Allow-Origin"] = "*"
        return web.Response(status=answer.status, body=body, headers=out)
