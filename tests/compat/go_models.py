"""The models of Dispatch's Go client (pkg/api/v1) that its CLI decodes, as field -> JSON type, and
a check that a response body decodes into one of them.

Type tokens, after the Go types and how encoding/json decodes them:
  str, int, bool  string (and string enums such as Status), int64 (an integer literal: Go refuses 1.0
                  and 1e3), bool. A JSON null leaves such a field unchanged, so Go accepts it.
  str!            *string of a field the swagger spec requires: the CLI dereferences it to print
                  it, so it must be present and a string.
  uuid, time,     strfmt.UUID, strfmt.DateTime (RFC 3339), strfmt.Base64: these decode through
  base64          easyjson's lexer, which refuses null and anything but a string.
  any             interface{} or json.RawMessage: any JSON.
  [T]             a slice: null or an array of T; a model item may not be null (the CLI
                  dereferences every *Model of a list).
  {T}             a map of string to T: null or an object.
  Model           a *Model (or embedded struct): null or an object; Model! may not be null.
"""
import base64
import binascii
import re
from datetime import datetime

C = {"createdTime": "int", "modifiedTime": "int"}  # camelCase times
H = {"created-time": "int", "modified-time": "int"}  # the event manager's hyphenated times
COMMON = {"id": "uuid", "kind": "str", "tags": "[Tag]"}
CLOUD_EVENT = {"eventType": "str", "eventTypeVersion": "str", "cloudEventsVersion": "str", "source": "str",
               "eventID": "str", "eventTime": "time", "schemaURL": "str", "contentType": "str",
               "extensions": "{any}", "data": "any"}

MODELS: dict[str, dict[str, str]] = {
    "Error": {"code": "int", "message": "str!"},
    "Tag": {"key": "str", "value": "str"},
    "Config": {"key": "str", "value": "str"},
    "Version": {k: "str" for k in ("version", "commit", "buildDate", "goVersion", "compiler", "platform")},
    "BaseImage": {**COMMON, **C, "dockerUrl": "str!", "groups": "[str]", "language": "str!", "name": "str!",
                  "reason": "[str]", "spec": "str", "status": "str"},
    "Image": {**COMMON, **C, "baseImageName": "str!", "dockerUrl": "str", "groups": "[str]", "language": "str",
              "name": "str!", "reason": "[str]", "runtimeDependencies": "RuntimeDependencies", "spec": "str",
              "status": "str", "systemDependencies": "SystemDependencies"},
    "RuntimeDependencies": {"manifest": "str"},
    "SystemDependencies": {"packages": "[SystemDependency]"},
    "SystemDependency": {"name": "str!", "version": "str"},
    "Function": {**COMMON, **C, "source": "base64", "sourceURL": "str", "sourcePath": "str", "faasId": "uuid",
                 "image": "str!", "functionImageURL": "str", "handler": "str", "name": "str!", "reason": "[str]",
                 "schema": "Schema", "secrets": "[str]", "services": "[str]", "status": "str", "timeout": "int"},
    "Schema": {"in": "any", "out": "any"},
    "Run": {"blocking": "bool", "error": "InvocationError", "event": "CloudEvent", "executedTime": "int",
            "faasId": "uuid", "finishedTime": "int", "functionId": "str", "functionName": "str",
            "httpContext": "{any}", "input": "any", "logs": "Logs", "name": "uuid", "output": "any",
            "reason": "[str]", "secrets": "[str]", "services": "[str]", "status": "str", "tags": "[Tag]"},
    "InvocationError": {"message": "str!", "stacktrace": "[str]", "type": "str"},
    "Logs": {"stderr": "[str]", "stdout": "[str]"},
    "CloudEvent": CLOUD_EVENT,
    "Emission": {**CLOUD_EVENT, "emitted-time": "int", "id": "uuid", "tags": "[Tag]"},
    "Secret": {**COMMON, "name": "str!", "secrets": "{str}"},
    "API": {**COMMON, "authentication": "str", "cors": "bool", "enabled": "bool", "function": "str!",
            "hosts": "[str]", "methods": "[str]", "name": "str!", "protocols": "[str]", "status": "str",
            "tls": "str", "uris": "[str]"},
    "Subscription": {**COMMON, **C, "eventType": "str!", "function": "str!", "name": "str!", "secrets": "[str]",
                     "status": "str"},
    "EventDriverType": {**COMMON, **H, "config": "[Config]", "image": "str!", "expose": "bool", "name": "str!"},
    "EventDriver": {**COMMON, **H, "config": "[Config]", "name": "str!", "reason": "[str]", "secrets": "[str]",
                    "expose": "bool", "url": "str", "status": "str", "type": "str!"},
    "Application": {**COMMON, **C, "name": "str!", "status": "str"},
    "Organization": {"id": "uuid", "kind": "str", **C, "name": "str!", "status": "str"},
    "Policy": {"id": "uuid", "kind": "str", **C, "name": "str!", "global": "bool", "rules": "[Rule]",
               "status": "str"},
    "Rule": {"actions": "[str]", "resources": "[str]", "subjects": "[str]"},
    "ServiceAccount": {"id": "uuid", "kind": "str", **C, "name": "str!", "domain": "str", "publicKey": "str!",
                       "status": "str"},
    "Message": {"message": "str!"},
}
NEVER_NULL = {"uuid", "time", "base64"}  # strfmt types


def _is_time(value) -> bool:
    return isinstance(value, str) and bool(re.match(r"\d{4}-\d\d-\d\dT", value)) and _parses(value)


def _parses(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _is_base64(value) -> bool:
    try:
        return isinstance(value, str) and base64.b64decode(value, validate=True) is not None
    except binascii.Error:
        return False


SCALARS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "uuid": lambda v: isinstance(v, str),
    "time": _is_time,
    "base64": _is_base64,
    "any": lambda v: True,
}


def violations(value, token: str, where: str = "$") -> list[str]:
    """What stops Go from decoding `value` (parsed JSON) as `token`; empty when it decodes."""
    required = token.endswith("!")
    token = token.rstrip("!")
    if value is None:
        refused = required or token in NEVER_NULL
        return [f"{where}: null, which Go's {token} refuses" + (" (the CLI dereferences it)" if required else "")] \
            if refused else []
    if token.startswith("["):
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__} where Go wants an array"]
        item = token[1:-1] + ("!" if token[1:-1] in MODELS else "")
        return [v for i, x in enumerate(value) for v in violations(x, item, f"{where}[{i}]")]
    if token.startswith("{"):
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__} where Go wants an object"]
        return [v for k, x in value.items() for v in violations(x, token[1:-1], f"{where}.{k}")]
    if token in MODELS:
        return _model_violations(value, token, where)
    return [] if SCALARS[token](value) else [f"{where}: {value!r} does not decode as Go's {token}"]


def _model_violations(value, model: str, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: {type(value).__name__} where Go wants a {model} object"]
    fields = MODELS[model]
    found = [f"{where}.{k}: missing; {model} requires it"
             for k, t in fields.items() if t.endswith("!") and k not in value]
    return found + [v for k, t in fields.items() if k in value for v in violations(value[k], t, f"{where}.{k}")]
