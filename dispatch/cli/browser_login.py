"""`dispatch login` for people: OpenID Connect's authorization-code flow with PKCE (RFC 7636, S256)
through the user's browser, at the issuer the server names (`GET /v1/iam/oidc`).

The redirect comes back to a listener on 127.0.0.1 on a free port (a loopback redirect URI, RFC
8252), so the issuer must allow http://127.0.0.1:*/callback for this public client. `state`
ties the answer to this login and `nonce` the ID token to it; the code verifier never leaves this
process until the code is exchanged. The ID token and the refresh token go into the current
context (a file only its owner reads)."""
import base64
import hashlib
import html
import secrets
import threading
import urllib.parse
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer

import typer

from dispatch.cli.client import DispatchClient, DispatchClientError
from dispatch.cli.config import CliState, Target
from dispatch.cli.login import update_context
from dispatch.cli.oidc import claims_of, discover, token_request
from dispatch.iam.oidc import user_name


def login(state: CliState, timeout: float = 300.0) -> None:
    target = state.target
    issuer, client_id = _issuer_of(target)
    endpoints = discover(issuer)
    methods = endpoints.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise DispatchClientError(f"{issuer} does not offer PKCE with S256, which this login needs")
    verifier, expected, nonce = secrets.token_urlsafe(64), secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    scopes = ["openid", "email"] + ["offline_access"] * ("offline_access" in (endpoints.get("scopes_supported") or ()))
    callback = Callback()
    try:
        url = _with_query(endpoints["authorization_endpoint"], {
            "response_type": "code", "client_id": client_id, "redirect_uri": callback.uri, "scope": " ".join(scopes),
            "state": expected, "nonce": nonce, "code_challenge": _challenge(verifier), "code_challenge_method": "S256"})
        typer.echo(f"Log in at {issuer} in your browser. If none opens, visit:\n\n    {url}\n\n"
                   f"(With a browser on another machine, open the address it ends on, {callback.uri}?…, "
                   "on this one, e.g. with curl.)", err=True)
        threading.Thread(target=_open_browser, args=(url,), daemon=True).start()
        if not callback.received.wait(timeout):
            raise DispatchClientError(f"login timed out: no answer from the browser within {timeout:g}s")
    finally:
        callback.close()
    code = _code(callback.answer or {}, expected, issuer)
    tokens = _exchange(endpoints["token_endpoint"], code, callback.uri, client_id, verifier)
    claims = claims_of(tokens["id_token"])
    if claims.get("nonce") != nonce:
        raise DispatchClientError(f"login refused: the ID token from {issuer} was not issued for this login (nonce)")
    DispatchClient(target.base_url, target.organization, tokens["id_token"], insecure=target.insecure).get("/home")
    name = update_context(state, {
        "host": target.host, "port": target.port, "scheme": target.scheme, "organization": target.organization,
        "insecure": target.insecure, "token": tokens["id_token"], "refreshToken": tokens.get("refresh_token") or "",
        "serviceaccount": "", "jwtprivatekey": "", "cookie": ""})
    typer.echo(f"You are logged in as {user_name(claims)} (context {name} of {state.config_path})")


def _issuer_of(target: Target) -> tuple[str, str]:
    server = DispatchClient(target.base_url, insecure=target.insecure)
    try:
        found = server.get("/v1/iam/oidc", anonymous=True) or {}
    except DispatchClientError as error:
        if error.code != 404:
            raise
        raise DispatchClientError(f"{target.base_url} logs no users in through a browser (it has no --oidc-issuer): "
                                  "log in with --service-account and --jwt-private-key") from None
    if not (isinstance(found.get("issuer"), str) and isinstance(found.get("clientId"), str)):
        raise DispatchClientError(f"{target.base_url}/v1/iam/oidc names no issuer and clientId")
    return found["issuer"], found["clientId"]


def _code(answer: dict, expected: str, issuer: str) -> str:
    if answer.get("error"):
        described = f": {answer['error_description']}" if answer.get("error_description") else ""
        raise DispatchClientError(f"login refused by {issuer}: {answer['error']}{described}")
    if not secrets.compare_digest(answer.get("state", "").encode(), expected.encode()):
        raise DispatchClientError("login refused: the browser brought back the answer to another login (state "
                                  "mismatch); run dispatch login again")
    if not answer.get("code"):
        raise DispatchClientError(f"login failed: {issuer} sent the browser back without a code")
    return answer["code"]


def _exchange(endpoint: str, code: str, redirect_uri: str, client_id: str, verifier: str) -> dict:
    try:
        tokens = token_request(endpoint, {"grant_type": "authorization_code", "code": code,
                                          "redirect_uri": redirect_uri, "client_id": client_id,
                                          "code_verifier": verifier})
    except DispatchClientError as error:
        raise DispatchClientError(f"login failed: the code was not exchanged: {error}") from None
    if not isinstance(tokens.get("id_token"), str):
        raise DispatchClientError(f"login failed: {endpoint} answered no ID token (is the openid scope allowed?)")
    return tokens


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _with_query(url: str, params: dict) -> str:
    parts = urllib.parse.urlsplit(url)
    query = "&".join(part for part in (parts.query, urllib.parse.urlencode(params)) if part)
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _open_browser(url: str) -> None:
    """In a thread of its own: a browser command ($BROWSER) may not return until it exits."""
    try:
        webbrowser.open(url)
    except webbrowser.Error:
        pass  # the URL is printed


class Callback:
    """Listens on 127.0.0.1 for the issuer's redirect; keeps the first answer to /callback."""

    def __init__(self) -> None:
        self.answer: dict[str, str] | None = None
        self.received = threading.Event()
        self._server = HTTPServer(("127.0.0.1", 0), self._handler())
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}/callback"
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        callback = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                if parts.path != "/callback" or callback.received.is_set():
                    self.send_error(404)
                    return
                answer = {key: values[0] for key, values in urllib.parse.parse_qs(parts.query).items()}
                said = answer.get("error_description") or answer.get("error")
                text = f"Login failed: {said}." if said else "Dispatch received your login."
                page = (f"<!doctype html><title>Dispatch login</title><p>{html.escape(text)} "
                        "You may close this tab and return to the terminal.</p>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                callback.answer = answer
                callback.received.set()

            def log_message(self, *args: object) -> None:
                pass

        return Handler
