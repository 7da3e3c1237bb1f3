"""One middleware turns every failure into the contract's `{code, message}` body."""
import json

import structlog
from aiohttp import web
from pydantic import ValidationError

from dispatch.errors import DispatchError, Rejected

log = structlog.get_logger("dispatch.gateway")


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


def validation_message(error: ValidationError, where: str = "body") -> str:
    """Every violation, in the wording Dispatch clients know (`name in body is required`)."""
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or where
        if item["type"] == "missing":
            parts.append(f"{field} in {where} is required")
        elif item["type"] == "string_pattern_mismatch":
            parts.append(f"{field} in {where} should match '{item['ctx']['pattern']}'")
        else:
            parts.append(f"{field} in {where}: {item['msg']}")
    return "; ".join(parts)


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


_STRICT = json.JSONDecoder(parse_constant=_not_json)


def loads(body: bytes):
    """Strict JSON: Python would take NaN and Infinity, which later turn silently into null. As
    json.loads, with one decoder built once rather than one per call."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode(json.detect_encoding(body), "surrogatepass")
    return _STRICT.decode(body)


class Unprocessable(DispatchError):
    status = 422


async def read_json(request: web.Request, default=None):
    body = await request.read()
    if not body.strip():
        if default is None:
            raise Rejected("request body is empty; a JSON object is required")
        return default
    try:
        return loads(body)
    except ValueError as error:
        raise Rejected(f"request body is not valid JSON: {error}") from None


@web.middleware
async def errors_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except DispatchError as error:
        return error_response(error.status, error.message)
    except ValidationError as error:
        return error_response(422, validation_message(error))
    except web.HTTPRequestEntityTooLarge as error:
        return error_response(413, f"request body is too large: {error.text}")
    except web.HTTPException as error:
        if error.status >= 400 and error.content_type != "application/json":
            return error_response(error.status, error.reason)
        raise
    except TimeoutError:
        return error_response(503, "the platform did not answer in time; try again")
    except Exception:
        log.exception("unhandled error", path=request.path)
        return error_response(500, f"internal error when processing {request.method} {request.path}")
