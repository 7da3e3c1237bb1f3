"""Bearer tokens, verified with PyJWT (contract §2.13, §6.3).

- A service account's token is an RS256/384/512 JWT it signs itself, `iss` = `<org>/<account>`,
  with `exp`, checked with the account's public key. `alg: none`, HMAC and every other algorithm
  are refused: a public key must never double as an HMAC secret.
- The platform signs short-lived tokens for functions given an identity on purpose (EdDSA, `iss`
  = `dispatch`, `sub` = `<org>/<account>`), with a key no client holds (keys.platform_key).
- A user's token is an OIDC ID token of the configured issuer (oidc.py).
- With a bootstrap key configured, a token of `iss` = `bootstrap` signed by it may set up the
  first organization, account and policy (`iam` only), until an organization exists.

A verified token is kept (up to its `exp`) only while its account exists with the same key."""
import time
from collections import OrderedDict
from typing import Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .directory import Directory
from .policy import ACCOUNT, BOOTSTRAP, Principal

ACCOUNT_ALGORITHMS = ("RS256", "RS384", "RS512")
PLATFORM_ISSUER = "dispatch"
BOOTSTRAP_ISSUER = "bootstrap"
LEEWAY_SECONDS = 60
CACHED_TOKENS = 10_000


class Unauthenticated(Exception):
    """Why a request carries no identity this gateway accepts (answered 401)."""


class UserTokens(Protocol):
    issuer: str

    async def verify(self, token: str) -> Principal: ...


class Verifier:
    def __init__(self, directory: Directory, platform: ed25519.Ed25519PrivateKey,
                 users: UserTokens | None = None, bootstrap: rsa.RSAPublicKey | None = None):
        self.directory = directory
        self._platform = platform.public_key()
        self.users = users
        self._bootstrap = bootstrap
        self._verified: OrderedDict[str, tuple[Principal, float, str]] = OrderedDict()

    async def principal(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("authentication required: send Authorization: Bearer <token> "
                                  "(`dispatch token` prints one for the current context)")
        cached = self._verified.get(token)
        if cached is not None and await self._still_valid(*cached):
            return cached[0]
        principal, expires, fingerprint = await self._verify(token)
        self._verified[token] = (principal, expires, fingerprint)
        if len(self._verified) > CACHED_TOKENS:
            self._verified.popitem(last=False)
        return principal

    async def _still_valid(self, principal: Principal, expires: float, fingerprint: str) -> bool:
        if time.time() > expires + LEEWAY_SECONDS:
            return False
        if principal.kind != ACCOUNT:
            return principal.kind != BOOTSTRAP or self.directory.empty
        account = await self.directory.account(principal.organization or "", principal.name)
        return account is not None and account.fingerprint == fingerprint

    async def _verify(self, token: str) -> tuple[Principal, float, str]:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: {error}") from None
        issuer, algorithm = claims.get("iss"), header.get("alg")
        if not isinstance(issuer, str) or not issuer:
            raise Unauthenticated("invalid token: no iss claim")
        if self.users is not None and issuer == self.users.issuer:
            principal = await self.users.verify(token)
            return principal, float(claims.get("exp") or 0), ""
        if issuer == PLATFORM_ISSUER:
            return await self._platform_token(token)
        if issuer == BOOTSTRAP_ISSUER and self._bootstrap is not None:
            if not self.directory.empty:
                raise Unauthenticated("the bootstrap identity is spent: an organization exists")
            verified = _decode(token, self._bootstrap, algorithm, ACCOUNT_ALGORITHMS)
            return Principal(BOOTSTRAP, BOOTSTRAP_ISSUER), float(verified["exp"]), ""
        organization, _, name = issuer.partition("/")
        if not organization or not name:
            raise Unauthenticated(f"invalid token: iss {issuer!r} is not <organization>/<service account>")
        account = await self.directory.account(organization, name)
        if account is None:
            raise Unauthenticated(f"invalid token: service account {issuer} does not exist")
        verified = _decode(token, account.key, algorithm, ACCOUNT_ALGORITHMS)
        return Principal(ACCOUNT, name, organization), float(verified["exp"]), account.fingerprint

    async def _platform_token(self, token: str) -> tuple[Principal, float, str]:
        verified = _decode(token, self._platform, jwt.get_unverified_header(token).get("alg"), ("EdDSA",))
        organization, _, name = str(verified.get("sub") or "").partition("/")
        account = await self.directory.account(organization, name)
        if account is None:
            raise Unauthenticated(f"invalid token: service account {organization}/{name} does not exist")
        return Principal(ACCOUNT, name, organization), float(verified["exp"]), account.fingerprint


def _decode(token: str, key, algorithm: str | None, accepted: tuple[str, ...]) -> dict:
    if algorithm not in accepted:
        raise Unauthenticated(f"invalid token: algorithm {algorithm!r} is not accepted (use {', '.join(accepted)})")
    try:
        return jwt.decode(token, key, algorithms=[algorithm], leeway=LEEWAY_SECONDS,
                          options={"require": ["exp", "iss"], "verify_aud": False})
    except jwt.PyJWTError as error:
        raise Unauthenticated(f"invalid token: {error}") from None


def account_token(issuer: str, private_key_pem: bytes, ttl_seconds: float = 3600) -> str:
    """A service account's token as Dispatch's CLI signs it: RS256, `iat` a minute back for
    clock skew, `exp` after `ttl_seconds`."""
    now = int(time.time())
    key = load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("Expecting a PEM-formatted key.")  # what PyJWT says of any other key for RS256
    return jwt.encode({"iss": issuer, "iat": now - 60, "exp": now + int(ttl_seconds)}, key, algorithm="RS256")


def platform_token(key: ed25519.Ed25519PrivateKey, organization: str, account: str, ttl_seconds: float) -> str:
    """A short-lived token the platform hands a function that was given an identity."""
    now = int(time.time())
    return jwt.encode({"iss": PLATFORM_ISSUER, "sub": f"{organization}/{account}", "iat": now,
                       "exp": now + int(ttl_seconds)}, key, algorithm="EdDSA")
