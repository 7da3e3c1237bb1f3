"""Who is calling, in which organization, and whether they may: one middleware in front of the
management API (contract §1.2, §2.13).

Every path but `/`, `/v1/version`, `/healthz`, `/readyz` and `/v1/iam/oidc` (where `dispatch login`
finds the issuer) needs a bearer token: a service account's, a function's or a user's ID token (webhook
pushes under `/driver/` carry their driver's own token). The organization is the caller's: a service
account's own unless `X-Dispatch-Org` names another, which only a global policy opens; a user
names theirs in the header. The organization found here replaces the header for everything
after (`context.organization`). A refusal is 401 (no identity) or 403 (not allowed, recorded in
the audit trail); neither says whether what was asked for exists."""
import base64
import ipaddress
import re

import structlog
from aiohttp import web

from dispatch.errors import Rejected
from dispatch.iam.directory import Directory
from dispatch.iam.keys import platform_key
from dispatch.iam.oidc import OIDCUsers
from dispatch.iam.policy import ACCOUNT, ACTIONS, Principal, allowed, global_grant
from dispatch.iam.tokens import Unauthenticated, Verifier
from dispatch.schemas.commands import RecordDenial
from dispatch.schemas.identity import public_key
from dispatch.schemas.resources import PATH_NAME_PATTERN
from dispatch.settings import Settings

from .context import CORRELATION_ID, ORG_HEADER, ORGANIZATION, PRINCIPAL
from .errors import error_response

log = structlog.get_logger("dispatch.gateway")
OPEN_PATHS = frozenset({"/", "/v1/version", "/healthz", "/readyz", "/v1/iam/oidc"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class Authority:
    """What the middleware needs: the identity read model and the token verifier."""

    def __init__(self, directory: Directory, verifier: Verifier, bus, default_organization: str):
        self.directory, self.verifier, self.bus = directory, verifier, bus
        self.default_organization = default_organization

    async def organization(self, request: web.Request, principal: Principal) -> str:
        named = request.headers.get(ORG_HEADER, "").strip()
        if principal.kind == ACCOUNT:
            return named or principal.organization or self.default_organization
        return named or self.default_organization

    async def deny(self, request: web.Request, principal: Principal, organization: str, resource: str,
                   action: str, reason: str) -> web.Response:
        log.warning("access denied", subject=principal.subject, organization=organization, action=action,
                    resource=resource, path=request.path, correlation_id=request.get(CORRELATION_ID))
        try:
            await self.bus.send(RecordDenial(organization=organization, action=action, resource=resource,
                                             name=target_name(request.path), reason=reason,
                                             correlation_id=request.get(CORRELATION_ID), subject=principal.subject))
        except Exception as error:  # noqa: BLE001 - the refusal stands whether or not it could be recorded
            log.warning("access denial not recorded", error=str(error))
        return error_response(403, reason)


AUTHORITY = web.AppKey("authority", Authority)


def authority_for(settings: Settings, platform) -> Authority | None:
    """What authenticates this gateway's requests; None with `--skip-auth`."""
    if settings.skip_auth:
        return None
    bootstrap = None
    if settings.bootstrap_public_key is not None:
        bootstrap = public_key(base64.b64encode(settings.bootstrap_public_key.read_bytes()).decode())
    verifier = Verifier(platform.directory, platform_key(platform.box), users=users_for(settings), bootstrap=bootstrap)
    return Authority(platform.directory, verifier, platform.bus, settings.default_organization)


def users_for(settings: Settings) -> OIDCUsers | None:
    """Users log in when both the issuer and this installation's client id there are set."""
    if bool(settings.oidc_issuer) != bool(settings.oidc_client_id):
        raise Rejected("--oidc-issuer and --oidc-client-id go together: give both to log users in, or neither")
    if settings.oidc_issuer and settings.oidc_client_id:  # both or neither, as checked above
        return OIDCUsers(settings.oidc_issuer, settings.oidc_client_id)
    return None


def resource_of(path: str) -> str | None:
    """The policy resource of a path: its second segment (`/v1/function/x` → function); None for
    paths of fewer segments, which need only authentication."""
    parts = path.strip("/").split("/")
    return parts[1] if len(parts) >= 2 and parts[0] == "v1" and parts[1] else None


def target_name(path: str) -> str:
    """The resource's name in a path, for the audit trail (`/v1/event/drivers/tick` → tick)."""
    parts = [part for part in path.strip("/").split("/") if part]
    nested = len(parts) >= 3 and parts[1] in ("event", "iam")
    return parts[3] if nested and len(parts) > 3 else (parts[2] if not nested and len(parts) > 2 else "")


@web.middleware
async def authenticate(request: web.Request, handler):
    authority = request.app.get(AUTHORITY)
    if authority is None or request.path in OPEN_PATHS or request.path.startswith("/driver/"):
        return await handler(request)
    try:
        principal = await authority.verifier.principal(request.headers.get("Authorization"))
    except Unauthenticated as refused:
        log.info("unauthenticated", path=request.path, reason=str(refused), remote=request.remote)
        return error_response(401, str(refused))
    organization = await authority.organization(request, principal)
    resource, action = resource_of(request.path), ACTIONS.get(request.method, "get")
    if not re.fullmatch(PATH_NAME_PATTERN, organization):
        return error_response(422, f"{ORG_HEADER} in header should match '{PATH_NAME_PATTERN}'")
    grants = authority.directory.grants
    if resource is not None and not allowed(principal, organization, resource, action, grants):
        reason = f"{principal.subject} may not {action} {resource} in organization {organization}"
        return await authority.deny(request, principal, organization, resource, action, reason)
    if not await authority.directory.organization_exists(organization) and not authority.directory.empty:
        if global_grant(principal, resource or "*", action, grants):
            return error_response(404, f"organization {organization} not found")
        reason = f"{principal.subject} may not {action} {resource} in organization {organization}"
        return await authority.deny(request, principal, organization, resource or "", action, reason)
    request[PRINCIPAL] = principal
    request[ORGANIZATION] = organization
    return await handler(request)


def trusted_hosts(settings: Settings):
    """Refuse a request whose Host is a name this server was not told it has: a web page on a
    name that resolves to 127.0.0.1 (DNS rebinding) must not reach the management API through a
    browser. Addresses and loopback names always pass; other names come from --public-name."""
    names = LOOPBACK_NAMES | {name.lower() for name in settings.public_names}

    @web.middleware
    async def check(request: web.Request, handler):
        host = request.headers.get("Host")
        if host and not _known(host, names):
            return error_response(421, f"this server does not answer for host {host.split(':')[0]!r}: "
                                       "add it with --public-name")
        return await handler(request)
    return check


def _known(host: str, names: frozenset[str]) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in names
