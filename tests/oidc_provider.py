"""A small, real OpenID Connect provider for the tests, built with authlib on the standard library.

It serves discovery, a JWKS (an RSA key made at start; `rotate()` makes another), `/authorize`
(authorization code grant, PKCE with S256 required, a one-field login form that a browser submits)
and `/token` (the code plus its verifier for an ID token signed RS256 with `aud` = the client id
and a refresh token; the refresh grant too, which renews both). The one client is public (no
secret), with redirect URIs http://127.0.0.1:<any port>/callback, as `dispatch login` uses.

    python -m tests.oidc_provider [PORT]    # serves until Ctrl-C, to try `dispatch login` by hand
"""
import json
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Error, OAuth2Request, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

TEST_USER = "jon@winterfell.example"
CLIENT_ID = "dispatch-cli"
SCOPES = ("openid", "email", "profile", "offline_access")


@dataclass(frozen=True)
class User:
    email: str

    @property
    def sub(self) -> str:
        return "user-" + self.email.split("@")[0]


@dataclass(frozen=True)
class Client(ClientMixin):
    client_id: str

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        return " ".join(s for s in (scope or "openid").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri):
        parts = urllib.parse.urlsplit(redirect_uri)
        return parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.port is not None \
            and parts.path == "/callback" and not parts.query

    def check_client_secret(self, client_secret):
        return False

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "none"

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None


@dataclass
class Refresh:
    client_id: str
    scope: str
    user: User
    revoked: bool = False

    def check_client(self, client):
        return client.client_id == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return 86400

    def is_expired(self):
        return False

    def is_revoked(self):
        return self.revoked


class S256Required(CodeChallenge):
    """PKCE required for every authorization request, and only with S256."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        super().validate_code_challenge(grant, redirect_uri)


class Request(OAuth2Request):
    def __init__(self, method: str, uri: str, headers: dict, query: dict, form: dict):
        super().__init__(method, uri, headers=headers)
        self._query, self._form = query, form
        self.payload = Payload({**query, **form})

    @property
    def args(self):
        return {key: values[0] for key, values in self._query.items()}

    @property
    def form(self):
        return {key: values[0] for key, values in self._form.items()}


class Payload:
    def __init__(self, lists: dict[str, list[str]]):
        self.datalist = lists
        self.data = {key: values[0] for key, values in lists.items()}

    client_id = property(lambda self: self.data.get("client_id"))
    response_type = property(lambda self: self.data.get("response_type"))
    grant_type = property(lambda self: self.data.get("grant_type"))
    redirect_uri = property(lambda self: self.data.get("redirect_uri"))
    scope = property(lambda self: self.data.get("scope"))
    state = property(lambda self: self.data.get("state"))


class Provider(AuthorizationServer):
    """The authorization server; `start()` serves it on 127.0.0.1 in a thread of its own."""

    def __init__(self, client_id: str = CLIENT_ID, id_token_seconds: int = 3600, port: int = 0):
        super().__init__(scopes_supported=list(SCOPES))
        self.client_id, self.id_token_seconds = client_id, id_token_seconds
        self.codes: dict[str, Code] = {}
        self.refreshes: dict[str, Refresh] = {}
        self.rotations = 0
        self.keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        """(kid, key) of every published key, the one signing now last."""
        self.jwks_requests = 0
        self.codes_expire = False
        """When set, every code has expired by the time it is exchanged (`invalid_grant`)."""
        self.rotate()
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.issuer = f"http://127.0.0.1:{self._http.server_address[1]}"
        generator = BearerTokenGenerator(lambda **kw: generate_token(42), lambda **kw: generate_token(48))
        self.register_token_generator("default", generator)
        id_tokens = IDTokens(self)
        self.register_grant(CodeGrant, [S256Required(required=True), id_tokens])
        self.register_grant(RefreshGrant, [id_tokens])

    # ---- what the tests use
    def start(self) -> "Provider":
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def rotate(self, keep_old: bool = True) -> None:
        """Sign with a new key from now on; publish it (and the old ones, unless told not to)."""
        self.rotations += 1
        key = (f"key-{self.rotations}", rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self.keys = ([*self.keys] if keep_old else []) + [key]

    @property
    def kid(self) -> str:
        return self.keys[-1][0]

    @property
    def key(self) -> rsa.RSAPrivateKey:
        return self.keys[-1][1]

    def jwks(self) -> dict:
        return {"keys": [{**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig",
                          "alg": "RS256"} for kid, key in self.keys]}

    def id_token(self, user: str = TEST_USER, **claims) -> str:
        """An ID token as /token issues it; `claims` change or (given None) remove standard ones."""
        now = int(time.time())
        base = {"iss": self.issuer, "aud": self.client_id, "sub": User(user).sub, "email": user,
                "email_verified": True, "iat": now, "exp": now + self.id_token_seconds}
        merged = {key: value for key, value in {**base, **claims}.items() if value is not None}
        return self.sign(merged)

    def sign(self, claims: dict, key=None, algorithm: str = "RS256", headers: dict | None = None) -> str:
        """Signed with the current key and its kid unless told otherwise."""
        return jwt.encode(claims, key if key is not None else self.key, algorithm=algorithm,
                          headers={"kid": self.kid} if headers is None else headers)

    def discovery(self) -> dict:
        return {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"], "scopes_supported": list(SCOPES),
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["none"], "code_challenge_methods_supported": ["S256"]}

    # ---- what authlib asks of a framework integration
    def query_client(self, client_id):
        return Client(client_id) if client_id == self.client_id else None

    def save_token(self, token, request):
        if token.get("refresh_token"):
            self.refreshes[token["refresh_token"]] = Refresh(request.client.client_id, token["scope"], request.user)

    def create_oauth2_request(self, request):
        return request

    def handle_response(self, status, body, headers):
        return status, body, headers

    def send_signal(self, name, *args, **kwargs):
        pass


class IDTokens(OpenIDCode):
    """ID tokens for the code grant (and, registered on it too, the refresh grant)."""

    def __init__(self, provider: Provider):
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce, request):
        return False

    def resolve_client_private_key(self, client):
        return {**RSAAlgorithm.to_jwk(self.provider.key, as_dict=True), "kid": self.provider.kid}

    def get_client_algorithm(self, client):
        return "RS256"

    def get_encode_header(self, client):
        return {"alg": "RS256", "kid": self.provider.kid}

    def get_client_claims(self, client):
        return {"iss": self.provider.issuer, "aud": client.client_id,
                "exp": int(time.time()) + self.provider.id_token_seconds}

    def generate_user_info(self, user, scope):
        return UserInfo(sub=user.sub, email=user.email, email_verified=True)


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    def save_authorization_code(self, code, request):
        data = request.payload.data
        self.server.codes[code] = Code(code, request.client.client_id, request.payload.redirect_uri, request.scope,
                                       request.user, data.get("nonce"), data.get("code_challenge"),
                                       data.get("code_challenge_method"))

    def query_authorization_code(self, code, client):
        found = None if self.server.codes_expire else self.server.codes.get(code)
        return found if found is not None and found.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code):
        self.server.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return authorization_code.user


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        found = self.server.refreshes.get(refresh_token)
        return found if found is not None and not found.revoked else None

    def authenticate_user(self, refresh_token):
        return refresh_token.user

    def revoke_old_credential(self, refresh_token):
        refresh_token.revoked = True


LOGIN_FORM = """<!doctype html><title>Test provider: log in</title>
<form method="post" action="{action}">
  <label>E-mail <input name="login" value="{user}"></label>
  <button type="submit" name="consent" value="allow">Log in</button>
  <button type="submit" name="consent" value="deny">Cancel</button>
</form>"""


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode()) if self.command == "POST" else {}
            request = Request(self.command, provider.issuer + self.path, dict(self.headers),
                              urllib.parse.parse_qs(parts.query), form)
            with provider._lock:
                status, body, headers = self._route(parts.path, request)
            payload = json.dumps(body).encode() if isinstance(body, dict) else str(body).encode()
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if isinstance(body, dict):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _route(self, path: str, request: Request) -> tuple[int, object, list]:
            if path == "/.well-known/openid-configuration":
                return 200, provider.discovery(), []
            if path == "/jwks":
                provider.jwks_requests += 1
                return 200, provider.jwks(), []
            if path == "/token" and self.command == "POST":
                return provider.create_token_response(request)
            if path == "/authorize":
                return self._authorize(request)
            return 404, {"error": "not_found"}, []

        def _authorize(self, request: Request) -> tuple[int, object, list]:
            user = None
            if self.command == "POST" and request.form.get("consent") == "allow":
                user = User(request.form.get("login") or TEST_USER)
            try:
                grant = provider.get_consent_grant(request, end_user=user)
            except OAuth2Error as error:
                return provider.handle_error_response(request, error)
            if self.command == "GET":
                action = "/authorize?" + urllib.parse.urlsplit(self.path).query
                page = LOGIN_FORM.format(action=action.replace("&", "&amp;").replace('"', "&quot;"), user=TEST_USER)
                return 200, page, [("Content-Type", "text/html; charset=utf-8")]
            return provider.create_authorization_response(request, grant_user=user, grant=grant)

        def log_message(self, *args) -> None:
            pass

    return Handler


if __name__ == "__main__":
    served = Provider(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(f"issuer {served.issuer}, client id {served.client_id}, user {TEST_USER}; Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        served.stop()
