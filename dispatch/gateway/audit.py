"""`/v1/audit`: who did what, when, allowed or denied, read from the audit trail the log projects
(store.projections.AuditView); and the recording of secret reads, the one kind of read that is
a fact of the log.

The policy resource of the path is `audit`: the middleware lets through only subjects allowed
`get` on it. They see their organization's entries; another organization's, or every one's
(`?organization=*`), takes a global policy on `audit`."""
import asyncio
import re

import structlog
from aiohttp import web

from dispatch.errors import Rejected
from dispatch.iam.policy import global_grant
from dispatch.schemas.commands import RecordSecretRead
from dispatch.schemas.resources import PATH_NAME_PATTERN

from .auth import AUTHORITY
from .context import PRINCIPAL, correlation_id, organization, subject
from .resources import PLATFORM

log = structlog.get_logger("dispatch.audit")
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
EVERY_ORGANIZATION = "*"
SENDING = web.AppKey("audit_sending", set)
"""Recordings sent in the background, held until done (and awaited when the app stops)."""


async def list_audit(request: web.Request) -> web.Response:
    """`{"entries": [...], "next": <position of the last entry, or null at the end>}`; the next
    page is asked for with `after=<next>`."""
    scope = request.query.get("organization", "").strip() or organization(request)
    if scope != organization(request):
        refused = await _refused_elsewhere(request, scope)
        if refused is not None:
            return refused
    limit = min(_integer(request, "limit", DEFAULT_LIMIT, least=1), MAX_LIMIT)
    entries = await request.app[PLATFORM].views.list_audit(
        None if scope == EVERY_ORGANIZATION else scope, subject=_text(request, "subject"),
        resource=_text(request, "resource"), name=_text(request, "name"), since=_since(request),
        after=_integer(request, "after", 0, least=0), limit=limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    return web.json_response({"entries": entries, "next": entries[-1]["position"] if more else None})


async def _refused_elsewhere(request: web.Request, scope: str) -> web.Response | None:
    """The 403 (recorded like the middleware's) of a caller without a global policy on `audit`
    asking for another organization's entries; None when allowed."""
    if scope != EVERY_ORGANIZATION and not re.fullmatch(PATH_NAME_PATTERN, scope):
        raise Rejected(f"organization in query should be {EVERY_ORGANIZATION} or match '{PATH_NAME_PATTERN}'")
    authority, principal = request.app.get(AUTHORITY), request.get(PRINCIPAL)
    if authority is None or principal is None or global_grant(principal, "audit", "get", authority.directory.grants):
        return None
    what = "every organization" if scope == EVERY_ORGANIZATION else f"organization {scope}"
    reason = f"{principal.subject} may not get audit of {what}: it takes a global policy on audit"
    return await authority.deny(request, principal, organization(request), "audit", "get", reason)


def _text(request: web.Request, key: str) -> str | None:
    return request.query.get(key, "").strip() or None


def _integer(request: web.Request, key: str, default: int, least: int) -> int:
    raw = request.query.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Rejected(f"{key} in query must be an integer, not {raw!r}") from None
    if value < least:
        raise Rejected(f"{key} in query must be {least} or more")
    return value


def _since(request: web.Request) -> float | None:
    raw = request.query.get("since", "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise Rejected(f"since in query must be a Unix time in seconds, not {raw!r}") from None


def record_secret_read(request: web.Request, name: str) -> None:
    """Record that the caller was shown secret `name`'s values. Sent in the background: the read
    is answered at once, and the entry follows through the log."""
    command = RecordSecretRead(organization=organization(request), name=name,
                               correlation_id=correlation_id(request), subject=subject(request))
    sending = request.app[SENDING]
    task = asyncio.ensure_future(_send(request.app[PLATFORM].bus, command))
    sending.add(task)
    task.add_done_callback(sending.discard)


async def _send(bus, command: RecordSecretRead) -> None:
    try:
        await bus.send(command)
    except Exception as error:  # noqa: BLE001 - the values were shown either way; say it went unrecorded
        log.warning("secret read not recorded", secret=command.name, organization=command.organization,
                    subject=command.subject, correlation_id=command.correlation_id, error=str(error))


async def _drain(app: web.Application) -> None:
    await asyncio.gather(*app[SENDING], return_exceptions=True)


def serve(app: web.Application) -> None:
    app[SENDING] = set()
    app.on_cleanup.append(_drain)
    app.add_routes([web.get("/v1/audit", list_audit)])
