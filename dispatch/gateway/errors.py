"""One middleware turns every failure into the contract's `{code, message}` body."""
import structlog
from aiohttp import web
from pydantic import ValidationError

from dispatch.errors import DispatchError

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


class Unprocessable(DispatchError):
    status = 422


def too_large_message(error: web.HTTPRequestEntityTooLarge) -> str:
    """aiohttp's own words (`Maximum request body size 1024 exceeded, actual body size 4100`),
    with the setting that changes the cap."""
    return f"request body is too large: {error.text} (max_payload_bytes)"


@web.middleware
async def errors_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except DispatchError as error:
        return error_response(error.status, error.message)
    except ValidationError as error:
        return error_response(422, validation_message(error))
    except web.HTTPRequestEntityTooLarge as error:
        return error_response(413, too_large_message(error))
    except web.HTTPException as error:
        if error.status >= 400 and error.content_type != "application/json":
            answer = error_response(error.status, error.reason)
            if "Allow" in error.headers:  # a 405 says which methods the path takes (RFC 9110)
                answer.headers["Allow"] = error.headers["Allow"]
            return answer
        raise
    except TimeoutError:
        return error_response(503, "the platform did not answer in time; try again")
    except Exception:
        log.exception("unhandled error", path=request.path)
        return error_response(500, f"internal error when processing {request.method} {request.path}")
