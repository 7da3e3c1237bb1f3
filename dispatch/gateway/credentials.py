"""Who may call an API: `basic` (user name and password) or `bearer` (a token), checked against the
values of the secret the API names in `authSecret`."""
import base64
import binascii
import hmac
import time

from aiohttp import web

from dispatch.drivers.ports import Route


class Unauthorized(Exception):
    def __init__(self, route: Route, message: str, error: str = ""):
        super().__init__(message)
        self.message = message
        realm = f'realm="{route.organization}/{route.api}"'
        if route.authentication == "basic":
            self.challenge = f'Basic {realm}, charset="UTF-8"'
        else:
            self.challenge = f'Bearer {realm}' + (f', error="{error}"' if error else "")


class Credentials:
    """Keeps each secret's opened values for a second: a request pays neither a read of the
    secret's view nor a decryption, and a changed secret is in force within a second."""

    ttl = 1.0

    def __init__(self, views, box) -> None:
        self.views = views
        self.box = box
        self._opened: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}

    async def values(self, organization: str, name: str) -> dict[str, str]:
        now = time.monotonic()
        cached = self._opened.get((organization, name))
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        secret = await self.views.get_resource(organization, "Secret", name)
        try:
            values = self.box.open((secret or {}).get("secrets") or {})
        except ValueError:
            values = {}
        self._opened[(organization, name)] = (now, values)
        return values

    async def caller(self, request: web.Request, route: Route) -> str | None:
        """The authenticated caller's name (the user, or the name of the token's key); None for a
        public API. Raises Unauthorized."""
        if route.authentication == "public":
            return None
        scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != route.authentication:
            raise Unauthorized(route, "authentication required")
        accepted = await self.values(route.organization, route.auth_secret)
        found = _basic(accepted, given.strip()) if route.authentication == "basic" else _bearer(accepted, given.strip())
        if found is None:
            raise Unauthorized(route, "invalid credentials", error="invalid_token")
        return found


CREDENTIALS = web.AppKey("credentials", Credentials)


def _basic(accepted: dict[str, str], given: str) -> str | None:
    try:
        user, sep, password = base64.b64decode(given, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = accepted.get(user)
    if not sep or expected is None:
        return None
    return user if hmac.compare_digest(expected.encode(), password.encode()) else None


def _bearer(accepted: dict[str, str], given: str) -> str | None:
    found = None
    for name, token in accepted.items():  # every token compared: the time does not tell which one is close
        if token and hmac.compare_digest(token.encode(), given.encode()):
            found = name
    return found
