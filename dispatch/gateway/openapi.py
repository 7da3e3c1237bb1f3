"""The OpenAPI document of the management API, generated from the wire models."""
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from dispatch.schemas import cloudevents as ce, resources as r

from .openapi_runs import add_run_paths
from .resources import KINDS, Kind

ERROR = {"type": "object", "required": ["message"],
         "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}}
ORG = {"name": "X-Dispatch-Org", "in": "header", "required": False,
       "schema": {"type": "string", "pattern": r"^[\w\d\-]*$"},
       "description": "The organization to act in: the caller's own when absent or empty (a global policy "
                      "opens the others). With --skip-auth it is required, and empty means the server's default."}
APPLICATION_TAG = "^([Aa][Pp][Pp]|[Aa][Pp][Pp][Ll][Ii][Cc][Aa][Tt][Ii][Oo][Nn])="  # the key, in any case
TAGS = {"name": "tags", "in": "query",
        "schema": {"type": "array", "items": {"type": "string", "pattern": APPLICATION_TAG}},
        "description": "Application=<name> (or app=<name>): only that application's members. Other keys: 400."}
_TEXT, _NULLABLE_TEXT = {"type": "string"}, {"type": ["string", "null"]}
AUDIT_ENTRY = {
    "type": "object", "description": "One fact of the audit trail: who did what, when, allowed or denied.",
    "required": ["time", "subject", "organization", "action", "resource", "name", "outcome", "position"],
    "properties": {
        "time": {"type": "number", "description": "Unix seconds, with milliseconds."},
        "subject": {**_TEXT, "description": "<organization>/<account>, a user's e-mail, or system."},
        "organization": _TEXT, "action": {"enum": ["get", "create", "update", "delete"]},
        "resource": {**_TEXT, "description": "The policy resource: function, secret, event, iam…"},
        "kind": {**_NULLABLE_TEXT, "description": "Function, Secret, Policy…; null for a refusal."},
        "name": _TEXT, "outcome": {"enum": ["allowed", "denied"]},
        "reason": {**_NULLABLE_TEXT, "description": "Why a request was denied."},
        "requestId": {**_NULLABLE_TEXT, "description": "The request's X-Request-Id (its correlation id)."},
        "position": {"type": "integer", "description": "Its position in the event log; pages go by it."}}}
AUDIT_PAGE = {"type": "object", "required": ["entries", "next"], "properties": {
    "entries": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
    "next": {"type": ["integer", "null"], "description": "Pass as `after` for the next page; null at the end."}}}
AUDIT_QUERY = [
    {"name": "organization", "in": "query", "schema": _TEXT,
     "description": "Another organization, or * for all: takes a global policy on audit."},
    *({"name": key, "in": "query", "schema": _TEXT, "description": f"Only the entries of this {key}."}
      for key in ("subject", "resource", "name")),
    {"name": "since", "in": "query", "schema": {"type": "number"}, "description": "Unix seconds: entries from then."},
    {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0},
     "description": "The `next` of the previous page."},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 100},
     "description": "Entries a page; a limit over 1000 is taken as 1000."}]
PUSH = ("A webhook driver's push URL (its token as Authorization: Bearer): the body becomes an event, or is one "
        "(a CloudEvent). An exposed driver of another type has the request forwarded to its container, which "
        "answers; 409 while the driver is not READY, 502 when its container does not answer.")
SECURITY = {"bearer": {
    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
    "description": "A service account's RS256/384/512 JWT (iss <organization>/<account>, exp), an OpenID Connect "
                   "ID token of the configured issuer, or a token the platform gave a function. "
                   "`dispatch token` prints one."}}


def _ref(model: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _answer(schema: dict | None, description: str = "OK", links: dict | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = {"application/json": {"schema": schema}}
    return answer | ({"links": links} if links else {})


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _answer({"$ref": "#/components/schemas/Error"}, "error") for code in codes}


VERBS = {"get": "Get", "put": "Update", "delete": "Delete"}


def _links_to(path: str, noun: str, methods: tuple[str, ...], parameters: dict[str, str]) -> dict[str, Any]:
    """OpenAPI links from an answer to the operations of `path` on what it names (`GetFunction`…):
    stateful clients and tests follow them."""
    pointer = "#/paths/" + path.replace("~", "~0").replace("/", "~1")
    return {VERBS[method] + noun: {"operationRef": f"{pointer}/{method}", "parameters": parameters}
            for method in methods}


def _collection(kind: Kind) -> dict[str, Any]:
    """The success codes come from the served endpoints (201 secret PUT, 204 secret DELETE, 200 API POST):
    Dispatch's generated clients accept only the documented code. A body that is not JSON is a 400,
    one past the size caps a 413, one that breaks the schema a 422."""
    model = kind.model
    body = {"required": True, "content": {"application/json": {"schema": _ref(model)}}}
    many = {"type": "array", "items": _ref(model)}
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    item = f"/v1/{kind.path}/{{name}}"
    created = _links_to(item, kind.name, ("get", "put", "delete"), {"name": "$response.body#/name"})
    return {
        "list": {"get": {"parameters": [ORG, TAGS], "responses": {"200": _answer(many), **_errors(400)}},
                 "post": {"parameters": [ORG], "requestBody": body,
                          "responses": {str(kind.created): _answer(_ref(model), links=created),
                                        **_errors(400, 409, 413, 422)}}},
        "item": {"parameters": [name, ORG, TAGS],
                 "get": {"responses": {"200": _answer(_ref(model)), **_errors(400, 404)}},
                 "put": {"requestBody": body,
                         "responses": {str(kind.updated): _answer(_ref(model)), **_errors(400, 404, 409, 413, 422)}},
                 "delete": {"responses": {str(kind.deleted): _answer(None if kind.deleted == 204 else _ref(model),
                                                                      "deleted"), **_errors(400, 404, 409)}}},
    }


@lru_cache(maxsize=1)
def openapi_document(release: str) -> dict[str, Any]:
    models: list[type[BaseModel]] = [kind.model for kind in KINDS] + [r.Run, ce.LegacyEvent, ce.CloudEvent]
    _, schemas = models_json_schema([(m, "serialization") for m in models], by_alias=True,
                                    ref_template="#/components/schemas/{model}")
    paths: dict[str, Any] = {}
    for kind in KINDS:
        parts = _collection(kind)
        paths[f"/v1/{kind.path}"] = parts["list"]
        paths[f"/v1/{kind.path}/{{name}}"] = parts["item"]
    fn = {"name": "functionName", "in": "query", "schema": {"type": "string"}}
    run_name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    ran = _links_to("/v1/runs/{name}", "Run", ("get",), {"name": "$response.body#/name",
                                                   "query.functionName": "$response.body#/functionName"})
    paths["/v1/runs"] = {
        "post": {"parameters": [ORG, {**fn, "required": True, "schema": {"type": "string", "minLength": 1}}, TAGS],
                 "requestBody": {"content": {"application/json": {"schema": _ref(r.Run)}}},
                 "responses": {"200": _answer(_ref(r.Run), "finished (blocking)", ran),
                               "202": _answer(_ref(r.Run), "accepted", ran), **_errors(400, 404, 409, 413)}},
        "get": {"parameters": [ORG, fn, {"name": "since", "in": "query", "schema": {"type": "integer"}}, TAGS],
                "responses": {"200": _answer({"type": "array", "items": _ref(r.Run)}), **_errors(400)}}}
    paths["/v1/runs/{name}"] = {"get": {"parameters": [ORG, fn, run_name, TAGS],
                                        "responses": {"200": _answer(_ref(r.Run)), **_errors(400, 404)}}}
    add_run_paths(paths, ORG, _errors)
    event = {"oneOf": [_ref(ce.LegacyEvent), _ref(ce.CloudEvent)]}
    paths["/v1/event/"] = {"post": {
        "parameters": [ORG], "description": "Emit an event: CloudEvents 0.1, or 1.0 structured, batched or binary.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": event},
                                                      ce.STRUCTURED: {"schema": _ref(ce.CloudEvent)}}},
        "responses": {"200": _answer(event, "emitted"), **_errors(400, 413, 500, 503)}}}
    where = [{"name": part, "in": "path", "required": True, "schema": {"type": "string"}}
             for part in ("organization", "driver")]
    paths["/driver/{organization}/{driver}"] = {"post": {
        "parameters": where, "description": PUSH,
        "responses": {"202": _answer({"type": "object"}, "accepted"), **_errors(400, 401, 404, 409, 413, 500, 502)}}}
    paths["/v1/audit"] = {"get": {
        "parameters": [ORG, *AUDIT_QUERY], "description": "Who did what, when, allowed or denied, oldest first: "
                                                          "the caller's organization's entries (get on audit).",
        "responses": {"200": _answer(AUDIT_PAGE), **_errors(400)}}}
    paths["/home"] = {"get": {"parameters": [ORG], "description": "An authenticated probe (dispatch login).",
                              "responses": {"200": _answer({"type": "object"})}}}
    paths["/metrics"] = {"get": {"description": "Prometheus metrics of this process (a global get on metrics); "
                                                "the health port serves them without a token.",
                                 "responses": {"200": {"description": "OK", "content": {"text/plain": {
                                     "schema": {"type": "string"}}}}}}}
    _secured(paths)
    open_: dict[str, list] = {"security": []}
    paths["/driver/{organization}/{driver}"]["post"] |= open_  # its driver's own token, checked by the push
    paths["/v1/version"] = {"get": {**open_, "responses": {"200": _answer({"type": "object"})}}}
    paths["/healthz"] = {"get": {**open_, "responses": {"200": _answer({"type": "object"}), **_errors(500)}}}
    paths["/readyz"] = {"get": {**open_, "description": "Ready: the bus connected, the store answering, the "
                                                        "read models caught up; 503 names the check that failed.",
                                "responses": {"200": _answer({"type": "object"}), "503": _answer({"type": "object"},
                                                                                                 "not ready")}}}
    paths["/"] = {"get": {**open_, "responses": {"200": _answer({"type": "object"})}}}
    return {"openapi": "3.1.0", "info": {"title": "Dispatch", "version": release}, "security": [{"bearer": []}],
            "paths": paths, "components": {"schemas": {**schemas["$defs"], "Error": ERROR, "AuditEntry": AUDIT_ENTRY},
                                           "securitySchemes": SECURITY}}


def _secured(paths: dict[str, Any]) -> None:
    """Every operation so far needs a token (401 without a valid one) and a policy allowing it (403);
    the organization it names must be a name (422) of one that exists (404)."""
    for operations in paths.values():
        for method, operation in operations.items():
            if method in ("get", "post", "put", "delete"):
                named = ORG in operations.get("parameters", []) + operation.get("parameters", [])
                operation["responses"] = {**operation["responses"], **_errors(401, 403, *((404, 422) if named else ()))}
