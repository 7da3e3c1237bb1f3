"""The CLI as an OpenID Connect client of the server's issuer: its discovery document, its token
endpoint (a public client: no secret, PKCE instead), and renewing a login whose ID token expired."""
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import jwt

from dispatch.cli.client import DispatchClientError
from dispatch.iam import contexts
from dispatch.iam.oidc import discovery_url

RENEW_BEFORE_SECONDS = 30
"""An ID token this close to its `exp` is renewed first: it could expire on the way."""
TIMEOUT_SECONDS = 30


def discover(issuer: str) -> dict:
    """The issuer's discovery document, checked to be that issuer's."""
    url = discovery_url(issuer)
    document = _json(url)
    if document.get("issuer") != issuer:
        raise DispatchClientError(f"{url} is the discovery document of {document.get('issuer')!r}, not of {issuer}")
    for endpoint in ("authorization_endpoint", "token_endpoint"):
        if not isinstance(document.get(endpoint), str):
            raise DispatchClientError(f"{url} names no {endpoint}")
    return document


def token_request(endpoint: str, form: dict) -> dict:
    """POST a grant to the token endpoint; the tokens it answers."""
    return _json(endpoint, urllib.parse.urlencode(form).encode())


def claims_of(token: str) -> dict:
    """The claims of the CLI's own ID token, unverified: the server verifies it on every request."""
    try:
        return jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}


def fresh_token(config_path: Path, token: str, refresh_token: str | None) -> str:
    """The current context's ID token, renewed with its refresh token and saved when it has expired."""
    claims = claims_of(token)
    expires = claims.get("exp")
    if not isinstance(expires, (int, float)) or expires > time.time() + RENEW_BEFORE_SECONDS:
        return token
    if not refresh_token:
        raise DispatchClientError("your login has expired: run dispatch login")
    try:
        tokens = _renew(claims, refresh_token)
    except DispatchClientError as error:
        raise DispatchClientError(f"your login has expired and could not be renewed ({error}): "
                                  "run dispatch login") from None
    config = contexts.load_config(config_path)
    current = config["contexts"].get(config["current"])
    if current is not None and current.get("token") == token:
        current["token"] = tokens["id_token"]
        current["refreshToken"] = tokens.get("refresh_token") or refresh_token
        contexts.save_config(config_path, config)
    return tokens["id_token"]


def _renew(claims: dict, refresh_token: str) -> dict:
    issuer, audience = str(claims.get("iss") or ""), claims.get("aud")
    client_id = claims.get("azp") or (audience if isinstance(audience, str) else (audience or [""])[0])
    tokens = token_request(discover(issuer)["token_endpoint"],
                           {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id})
    if not isinstance(tokens.get("id_token"), str):
        raise DispatchClientError(f"{issuer} renewed no ID token")
    if claims_of(tokens["id_token"]).get("sub") != claims.get("sub"):
        raise DispatchClientError(f"{issuer} renewed the login of another user")
    return tokens


def _json(url: str, data: bytes | None = None) -> dict:
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
    # as DispatchClient does: a proxy from the environment must never see requests for this machine
    local = urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")
    handlers = [urllib.request.ProxyHandler({})] if local else []
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=TIMEOUT_SECONDS) as answer:
            body = answer.read()
    except urllib.error.HTTPError as error:
        raise DispatchClientError(_refusal(url, error.code, error.read())) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise DispatchClientError(f"cannot reach {url}: {getattr(error, 'reason', error)}") from None
    try:
        found = json.loads(body)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise DispatchClientError(f"{url} answered no JSON object")
    return found


def _refusal(url: str, status: int, body: bytes) -> str:
    """An OAuth error body (`error`, `error_description`) as one line."""
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if isinstance(error, dict) and error.get("error"):
        described = f": {error['error_description']}" if error.get("error_description") else ""
        return f"{url} refused ({status}): {error['error']}{described}"
    return f"{url} answered {status}"
