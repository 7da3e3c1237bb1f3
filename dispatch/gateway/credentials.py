"""Who may call an API: `basic` (user name and password) or `bearer` (a token), checked against the
values of the secret the API names in `authSecret`."""
import base64
import binascii
import hmac

from aiohttp import web

from dispatch.drivers.ports import Route

CREDENTIALS = web.AppKey("credentials", object)


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
    """Opens each secret once per sealed version: a request pays a read of the secret's view,
    not a decryption per value."""

    def __init__(self, views, box) -> None:
        self.views = views
        self.box = box
        self._opened: dict[tuple[str, str], tuple[dict, dict[str, str]]] = {}

    async def values(self, organization: str, name: str) -> dict[str, str]:
        secret = await self.views.get_resource(organization, "Secret", name)
        sealed = (secret or {}).get("secrets") or {}
        cached = self._opened.get((organization, name))
        if cached is None or cached[0] != sealed:
            try:
                cached = (sealed, self.box.open(sealed))
            except ValueError:
                cached = (sealed, {})
            self._opened[(organization, name)] = cached
        return cached[1]

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
