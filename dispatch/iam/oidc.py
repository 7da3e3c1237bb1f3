"""Users: ID tokens of the configured OpenID Connect issuer (contract §2.13).

The issuer's discovery document and key set (JWKS) are fetched with aiohttp and kept. The key set
is fetched again when a token names a key it lacks (the issuer rotated its keys), at most once a
minute: tokens with made-up key ids must not turn every request into a fetch. Only asymmetric
signatures count; `none` and HMAC are refused before a key is looked at, or a published public
key could serve as an HMAC secret. An issuer that cannot be reached is a 503 naming it, not a
401: the token may well be good."""
import asyncio
import ipaddress
import math
import time
from typing import Callable
from urllib.parse import urlsplit

import aiohttp
import jwt

from dispatch.errors import Rejected, Unavailable

from .policy import USER, Principal
from .tokens import LEEWAY_SECONDS, Unauthenticated

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
REFETCH_SECONDS = 60.0
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=10)


class OIDCUsers:
    """Implements tokens.UserTokens for one issuer and this installation's client id there."""

    def __init__(self, issuer: str, client_id: str, clock: Callable[[], float] = time.monotonic):
        check_issuer(issuer)
        self.issuer, self.client_id = issuer, client_id
        self._clock = clock
        self._jwks_uri: str | None = None
        self._keys: dict[str | None, dict] | None = None
        self._fetched_at = -math.inf
        self._fetches = 0
        self._failure: str | None = None
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: {error}") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Unauthenticated(f"invalid token: algorithm {algorithm!r} is not accepted for users of "
                                  f"{self.issuer} (asymmetric ones only: {', '.join(ALGORITHMS)})")
        key = await self._key(header.get("kid"), algorithm)
        try:
            claims = jwt.decode(token, key.key, algorithms=[algorithm], audience=self.client_id, issuer=self.issuer,
                                leeway=LEEWAY_SECONDS, options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("invalid token: the login has expired (run dispatch login)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"invalid token: its audience is not {self.client_id}, this installation's "
                                  f"client id at {self.issuer}") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(f"invalid token: its issuer is not {self.issuer}") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated(f"invalid token: its signature does not match {self.issuer}'s key") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: {error}") from None
        return Principal(USER, user_name(claims))

    async def _key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        if self._keys is None or (kid not in self._keys and self._clock() - self._fetched_at >= REFETCH_SECONDS):
            await self._fetch(self._fetches)
        keys = self._keys or {}
        found = keys.get(kid) if kid is not None or len(keys) != 1 else next(iter(keys.values()))
        if found is None:
            named = f"the key {kid!r}" if kid is not None else "no key (kid), and it has several"
            raise Unauthenticated(f"invalid token: it names {named}, which {self.issuer} does not publish")
        declared = found.get("alg")
        if declared and declared != algorithm:
            raise Unauthenticated(f"invalid token: signed with {algorithm}, but key {kid!r} is for {declared}")
        try:
            return jwt.PyJWK(found, algorithm)
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: key {kid!r} does not fit {algorithm}: {error}") from None

    async def _fetch(self, seen: int) -> None:
        async with self._lock:
            if seen != self._fetches:  # another request fetched while this one waited: use its answer
                if self._failure is not None:
                    raise Unavailable(self._failure)
                return
            self._fetches += 1
            self._fetched_at = self._clock()
            try:
                async with aiohttp.ClientSession(timeout=FETCH_TIMEOUT, trust_env=not _loopback(self.issuer)) as http:
                    if self._jwks_uri is None:
                        self._jwks_uri = _jwks_uri(self.issuer, await _json(http, discovery_url(self.issuer)))
                    self._keys = _signing_keys(await _json(http, self._jwks_uri))
                self._failure = None
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
                self._failure = f"cannot fetch the keys of the OpenID Connect issuer {self.issuer}: {_reason(error)}"
                raise Unavailable(self._failure) from None


def user_name(claims: dict) -> str:
    """How policies name a user: the e-mail, unless the issuer says it is not verified; else `sub`."""
    email = claims.get("email")
    if isinstance(email, str) and email and claims.get("email_verified") not in (False, "false"):
        return email
    return str(claims.get("sub") or "")


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def check_issuer(issuer: str) -> None:
    """An issuer is an https URL (http for loopback addresses only: keys fetched in the clear from
    another host could be anyone's)."""
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise Rejected(f"invalid --oidc-issuer {issuer!r}: an https URL such as https://accounts.example.com")
    if parts.scheme == "http" and not _loopback(issuer):
        raise Rejected(f"invalid --oidc-issuer {issuer!r}: use https (http only for a loopback address)")


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _json(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(url, headers={"Accept": "application/json"}) as answer:
        if answer.status != 200:
            raise ValueError(f"GET {url} answered {answer.status}")
        body = await answer.json(content_type=None)
    if not isinstance(body, dict):
        raise ValueError(f"GET {url} answered no JSON object")
    return body


def _jwks_uri(issuer: str, discovery: dict) -> str:
    if discovery.get("issuer") != issuer:
        raise ValueError(f"its discovery document names the issuer {discovery.get('issuer')!r}")
    if not isinstance(discovery.get("jwks_uri"), str):
        raise ValueError("its discovery document has no jwks_uri")
    return discovery["jwks_uri"]


def _signing_keys(jwks: dict) -> dict[str | None, dict]:
    """The signature keys PyJWT can use, by kid; encryption and symmetric keys are left out."""
    keys = {}
    for raw in jwks.get("keys") or ():
        if not isinstance(raw, dict) or raw.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if raw.get("use") not in (None, "sig"):
            continue
        try:
            jwt.PyJWK(raw)
        except jwt.PyJWTError:
            continue
        keys[raw.get("kid")] = raw
    if not keys:
        raise ValueError("its key set holds no usable signature key")
    return keys


def _reason(error: Exception) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return f"no answer within {FETCH_TIMEOUT.total:g}s"
    return str(error) or type(error).__name__
