"""Per-kind adjustments of request and response bodies."""
import structlog
from aiohttp import web

from dispatch.errors import Rejected
from dispatch.store.sealing import SecretBox

from .audit import record_secret_read
from .context import correlation_id
from .resources import PLATFORM

audit = structlog.get_logger("dispatch.audit")


def function_source(request: web.Request, raw: dict, resource: dict) -> tuple[dict, dict]:
    """The source travels in the command (base64 of a tar.gz); `es://` URLs are Dispatch-internal."""
    source = raw.get("source")
    if not source:
        if raw.get("sourceURL"):
            raise Rejected(f"sourceURL {raw['sourceURL']} cannot be resolved; send the source inline")
        raise Rejected("either source or sourceURL must be specified")
    return resource, {"source": source}


def sealed_secret(request: web.Request, raw: dict, resource: dict) -> tuple[dict, dict]:
    """Values are sealed here, before they reach the bus or the log."""
    values = resource.get("secrets") or {}
    if not all(isinstance(v, str) for v in values.values()):
        raise Rejected("secret values must be strings")
    return {**resource, "secrets": request.app[PLATFORM].box.seal(values)}, {}


def present_secret(request: web.Request, resource: dict, single: bool) -> dict:
    """Values show only on a single GET, which the audit trail records; lists and write answers
    mask them."""
    values = resource.get("secrets") or {}
    if not (single and request.method == "GET"):
        return {**resource, "secrets": SecretBox.masked(values)}
    audit.info("secret read", secret=resource["name"], correlation_id=correlation_id(request),
               remote=request.remote)
    record_secret_read(request, resource["name"])
    return {**resource, "secrets": request.app[PLATFORM].box.open(values)}
