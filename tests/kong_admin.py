"""A stand-in for Kong 3.x's Admin API (services, routes, plugins, consumers and their
basic-auth credentials) in aiohttp, following Kong's documented behaviour: POST 201 and 409 on a
unique violation (a service's or route's name, a consumer's username or custom_id, a basic-auth
credential's username — unique across Kong, not per consumer); PUT by id or by endpoint key
(name, username) creates or replaces (200); PATCH merges; DELETE answers 204 whether or not the
object existed and cascades from a route to its plugins and from a consumer to its credentials,
but a service still referenced by a route answers 400; lists page with `size` (default 100, at
most 1000), an opaque `offset` and a `next` path, and filter by `tags` (`a,b` all of them, `a/b`
any of them); unknown fields and bad values (tags with `,` or `/`) answer 400 schema violations.
A basic-auth password is stored and returned only as Kong's hash, hex(sha1(password + consumer
id)), and a write without a password hashes the stored hash again (Kong's documented pitfall).
It is not Kong: it checks what this project sends, not everything Kong would. The proxy side is
tests/kong_proxy.py."""
import base64
import hashlib
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

ENTITIES = ("services", "routes", "plugins", "consumers", "basic-auths")
KEYS = {"services": "name", "routes": "name", "consumers": "username", "basic-auths": "username"}
"""The endpoint key each kind is also addressed by (`/services/{name}`); plugins have only ids."""
NAME = re.compile(r"^[A-Za-z0-9.\-_~]+$")
FIELDS = {
    "services": {"name", "protocol", "host", "port", "path", "url", "retries", "connect_timeout", "write_timeout",
                 "read_timeout", "tags", "enabled", "client_certificate", "tls_verify", "tls_verify_depth",
                 "ca_certificates"},
    "routes": {"name", "service", "paths", "methods", "hosts", "protocols", "strip_path", "preserve_host",
               "https_redirect_status_code", "regex_priority", "path_handling", "tags", "headers", "snis",
               "sources", "destinations", "request_buffering", "response_buffering"},
    "plugins": {"name", "route", "service", "consumer", "config", "enabled", "protocols", "tags", "instance_name"},
    "consumers": {"username", "custom_id", "tags"},
    "basic-auths": {"consumer", "username", "password", "tags"},
}
PLUGINS = {"cors": {"origins": None, "methods": None, "headers": None, "exposed_headers": None,
                    "credentials": False, "max_age": None, "preflight_continue": False, "private_network": False},
           "basic-auth": {"hide_credentials": False, "anonymous": None, "realm": "service"},
           "key-auth": {"key_names": ["apikey"], "hide_credentials": False}}
DEFAULTS = {
    "services": {"retries": 5, "connect_timeout": 60000, "write_timeout": 60000, "read_timeout": 60000,
                 "path": None, "tags": None, "enabled": True, "port": 80, "protocol": "http"},
    "routes": {"paths": None, "methods": None, "hosts": None, "protocols": ["http", "https"], "strip_path": True,
               "preserve_host": False, "https_redirect_status_code": 426, "regex_priority": 0,
               "path_handling": "v0", "tags": None},
    "plugins": {"route": None, "service": None, "consumer": None, "enabled": True, "tags": None,
                "protocols": ["grpc", "grpcs", "http", "https"]},
    "consumers": {"username": None, "custom_id": None, "tags": None},
    "basic-auths": {"consumer": None, "tags": None},
}


def kong_hash(consumer_id: str, password: str) -> str:
    """How Kong (not in FIPS mode) stores a basic-auth password."""
    return hashlib.sha1((password + consumer_id).encode()).hexdigest()


class SchemaViolation(Exception):
    def __init__(self, fields: dict[str, str]):
        super().__init__(fields)
        self.fields = fields


def _error(status: int, name: str, message: str, **extra: Any) -> web.Response:
    codes = {"schema violation": 2, "unique constraint violation": 5, "foreign key violation": 4}
    return web.json_response({"code": codes.get(name), "name": name, "message": message, **extra}, status=status)


NOT_FOUND = {"message": "Not found"}


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
        app.router.add_route("*", "/consumers/{consumer}/basic-auth", self._credentials)
        app.router.add_route("*", "/consumers/{consumer}/basic-auth/{key}", self._credential)
        return app

    # --- lookups --------------------------------------------------------------------------------

    def find(self, kind: str, key: str) -> dict | None:
        if key in self.store[kind]:
            return self.store[kind][key]
        field = KEYS.get(kind)
        return next((o for o in self.store[kind].values() if field and o.get(field) == key), None)

    def named(self, kind: str, name: str) -> dict | None:
        field = KEYS.get(kind, "name")
        return next((o for o in self.store[kind].values() if o.get(field) == name), None)

    # --- handlers -------------------------------------------------------------------------------

    def _list(self, kind: str, scope: dict | None = None):
        async def handler(request: web.Request) -> web.Response:
            try:
                size = int(request.query.get("size", 100))
            except ValueError:
                return _error(400, "invalid size", "size must be a number")
            if not 1 <= size <= 1000:
                return _error(400, "invalid size", "size must be an integer between 1 and 1000")
            items = [self.store[kind][i] for i in self.order[kind]]
            if scope is not None:
                items = [o for o in items if (o.get("consumer") or {}).get("id") == scope["id"]]
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
                body["next"] = f"{request.path}?offset={token}" + (f"&tags={tags}" if tags else "")
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
            return await self._at(kind, request, key, self.find(kind, key))
        return handler

    async def _credentials(self, request: web.Request) -> web.Response:
        """`/consumers/{consumer}/basic-auth`: a consumer's credentials (GET) or a new one (POST)."""
        consumer = self.find("consumers", request.match_info["consumer"])
        if consumer is None:
            return web.json_response(NOT_FOUND, status=404)
        if request.method == "GET":
            return await self._list("basic-auths", consumer)(request)
        if request.method != "POST":
            return web.json_response({"message": "Method not allowed"}, status=405)
        return self._write("basic-auths", None, {**await request.json(), "consumer": {"id": consumer["id"]}}, 201)

    async def _credential(self, request: web.Request) -> web.Response:
        """`/consumers/{consumer}/basic-auth/{username or id}`: only that consumer's credential."""
        consumer = self.find("consumers", request.match_info["consumer"])
        if consumer is None:
            return web.json_response(NOT_FOUND, status=404)
        key = request.match_info["key"]
        found = self.find("basic-auths", key)
        if found is not None and found["consumer"]["id"] != consumer["id"]:
            found = None
        return await self._at("basic-auths", request, key, found, {"consumer": {"id": consumer["id"]}})

    async def _at(self, kind: str, request: web.Request, key: str, found: dict | None,
                  forced: dict | None = None) -> web.Response:
        if request.method == "GET":
            return web.json_response(found) if found else web.json_response(NOT_FOUND, status=404)
        if request.method == "DELETE":
            return self._delete(kind, found)
        body = {**await request.json(), **(forced or {})}
        if request.method == "PATCH":
            if found is None:
                return web.json_response(NOT_FOUND, status=404)
            merged = {k: v for k, v in found.items() if k not in ("id", "created_at", "updated_at")}
            merged.update(body)
            return self._write(kind, found, merged, 200)
        if request.method == "PUT":
            field = KEYS.get(kind)
            if found is None and _is_uuid(key):
                body = {**body, "id": key}
            elif field is not None and not _is_uuid(key):
                body = {**body, field: key}
            elif found is None:
                return web.json_response(NOT_FOUND, status=404)
            return self._write(kind, found, body, 200)
        return web.json_response({"message": "Method not allowed"}, status=405)

    def _delete(self, kind: str, found: dict | None) -> web.Response:
        if found is None:
            return web.Response(status=204)
        if kind == "services" and any(r["service"]["id"] == found["id"] for r in self.store["routes"].values()):
            return _error(400, "foreign key violation", "an existing 'routes' entity references this 'services' entity")
        if kind in ("routes", "consumers"):
            owner = kind[:-1]
            for dependent in ("plugins", "basic-auths"):
                for item in list(self.store[dependent].values()):
                    if (item.get(owner) or {}).get("id") == found["id"]:
                        self._remove(dependent, item["id"])
        self._remove(kind, found["id"])
        self.writes.append(("DELETE", f"{kind}/{found.get(KEYS.get(kind, 'name')) or found['id']}"))
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
        if kind == "basic-auths":
            entity["password"] = kong_hash(entity["consumer"]["id"], entity["password"])
        entity["updated_at"] = self.clock
        if entity["id"] not in self.store[kind]:
            self.order[kind].append(entity["id"])
        self.store[kind][entity["id"]] = entity
        label = entity.get(KEYS[kind]) if kind in KEYS else None
        self.writes.append(("PUT" if status == 200 else "POST", f"{kind}/{label or entity['id']}"))
        return web.json_response(entity, status=status)

    def _unique_clash(self, kind: str, entity: dict, existing: dict | None) -> str | None:
        mine = existing["id"] if existing else entity.get("id")
        unique = {"consumers": ("username", "custom_id")}.get(kind, (KEYS[kind],) if kind in KEYS else ())
        for other in self.store[kind].values():
            if other["id"] == mine:
                continue
            for field in unique:
                if entity.get(field) is not None and other.get(field) == entity[field]:
                    return f'{{{field}="{entity[field]}"}}'
            if kind == "plugins" and all(other.get(k) == entity.get(k)
                                         for k in ("name", "route", "service", "consumer")):
                return f'{{consumer=null,name="{entity["name"]}",route={entity.get("route")},service=null}}'
        if existing is None and entity.get("id") in self.store[kind]:
            return f'{{id="{entity["id"]}"}}'
        return None

    def _validated(self, kind: str, body: dict) -> dict:
        unknown = set(body) - FIELDS[kind] - {"id"}
        if unknown:
            raise SchemaViolation({field: "unknown field" for field in sorted(unknown)})
        entity = {**DEFAULTS[kind], **body}
        if ("name" in entity and entity["name"] is not None and not NAME.match(str(entity["name"]))
                and kind != "plugins"):
            raise SchemaViolation({"name": "invalid value '%s': the only accepted ascii characters are alphanumerics "
                                           "or ., -, _, and ~" % entity["name"]})
        for tag in entity.get("tags") or []:
            if not isinstance(tag, str) or not tag or re.search(r"[,/\x00-\x20\x7f]", tag):
                raise SchemaViolation({"tags": "invalid tag: ',', '/' and non-printable characters are not allowed"})
        getattr(self, f"_check_{kind.replace('-', '_')}")(entity)
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
            raise SchemaViolation(
                {"protocol": "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp, ws, wss"})
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

    def _check_consumers(self, entity: dict) -> None:
        if not entity.get("username") and not entity.get("custom_id"):
            raise SchemaViolation({"@entity": "at least one of these fields must be non-empty: "
                                              "'custom_id', 'username'"})

    def _check_basic_auths(self, entity: dict) -> None:
        for field in ("username", "password"):
            if not isinstance(entity.get(field), str):
                raise SchemaViolation({field: "required field missing"})
        consumer = entity.get("consumer") or {}
        target = self.find("consumers", consumer.get("id") or consumer.get("username") or "")
        if target is None:
            raise LookupError(f"the foreign key '{{id=\"{consumer.get('id')}\"}}' does not reference an existing "
                              f"'consumers' entity.")
        entity["consumer"] = {"id": target["id"]}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
