"""What every management request carries: its organization, its correlation id, its tag filter."""
import re

from aiohttp import web

from dispatch.errors import Rejected
from dispatch.iam.policy import Principal
from dispatch.schemas.resources import PATH_NAME_PATTERN
from dispatch.settings import Settings

from .errors import Unprocessable

SETTINGS = web.AppKey("settings", Settings)
CORRELATION_ID = web.RequestKey("correlation_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
ORGANIZATION = web.RequestKey("organization", str)
"""The caller's organization, as authentication found it (auth.py)."""
ORG_HEADER = "X-Dispatch-Org"
APPLICATION_KEYS = {"application", "app"}


def organization(request: web.Request) -> str:
    """The caller's organization. With authentication off (`--skip-auth`), the header as sent:
    required, as in Dispatch; sent empty (the CLI's way of saying "none configured") it means
    the server's default organization."""
    authorized = request.get(ORGANIZATION)
    if authorized is not None:
        return authorized
    if ORG_HEADER not in request.headers:
        raise Unprocessable(f"{ORG_HEADER} in header is required")
    name = request.headers[ORG_HEADER].strip() or request.app[SETTINGS].default_organization
    # the name becomes the `/<org>/` prefix of API routes: a `/` in it would let one organization
    # claim another's paths
    if not re.fullmatch(PATH_NAME_PATTERN, name):
        raise Unprocessable(f"{ORG_HEADER} in header should match '{PATH_NAME_PATTERN}'")
    return name


def correlation_id(request: web.Request) -> str:
    return request[CORRELATION_ID]


def subject(request: web.Request) -> str | None:
    """Who is asking, for the commands the request sends (None with authentication off)."""
    principal = request.get(PRINCIPAL)
    return principal.subject if principal is not None else None


def application_filter(request: web.Request) -> str | None:
    """The `tags` query parameters: only `Application=<name>` (or `app`) is supported."""
    wanted = None
    for tag in request.query.getall("tags", []):
        if "=" not in tag:
            raise Rejected(f"error parsing tag '{tag}': invalid format")
        key, value = tag.split("=", 1)
        if key.lower() not in APPLICATION_KEYS:
            raise Rejected(f"error parsing tag '{tag}': key '{key}' not exist")
        wanted = value
    return wanted


def matches_application(resource: dict, application: str | None) -> bool:
    if application is None:
        return True
    return any(t.get("key", "").lower() in APPLICATION_KEYS and t.get("value") == application
               for t in resource.get("tags") or [])
