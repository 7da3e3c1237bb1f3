"""Per-kind adjustments of request and response bodies."""
import asyncio
import base64
import binascii

import structlog
from aiohttp import web

from dispatch.errors import Rejected
from dispatch.schemas import source as archives
from dispatch.store.sealing import SecretBox

from .audit import record_secret_read
from .context import SETTINGS, correlation_id
from .resources import PLATFORM

audit = structlog.get_logger("dispatch.audit")


async def function_source(request: web.Request, raw: dict, resource: dict) -> tuple[dict, dict]:
    """The source travels in the command (base64 of a tar.gz); `es://` URLs are Dispatch-internal.
    It is checked here, on a thread, before the command is sent: an archive bomb (413) or an
    unsafe entry (400) never reaches the bus. The handler checks again; so does the runtime."""
    source = raw.get("source")
    if not source:
        if raw.get("sourceURL"):
            raise Rejected(f"sourceURL {raw['sourceURL']} cannot be resolved; send the source inline")
        raise Rejected("either source or sourceURL must be specified")
    if not isinstance(source, str):
        raise Rejected("source must be a string: base64 of a gzip-compressed tar")
    await asyncio.to_thread(_check_source, source, archives.Caps.of(request.app[SETTINGS]))
    return resource, {"source": source}


def _check_source(source: str, caps: archives.Caps) -> None:
    try:
        data = base64.b64decode(source, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected("source is not valid base64") from None
    archives.validate(data, caps)


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
