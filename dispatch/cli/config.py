"""What one invocation talks to: the config file, its contexts, and the global flags.

Precedence for each setting is flag, then `DISPATCH_*` environment variable (both resolved by
the option parser), then the current context of the config file, then this project's default,
which points at the local embedded server (`dispatch server`).
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dispatch.cli.client import DispatchClient, DispatchClientError
from dispatch.iam import contexts
from dispatch.iam.tokens import account_token

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_SCHEME = "http"
DEFAULT_CONFIG = "~/.dispatch/config.json"
DEFAULT_ORGANIZATION = "dispatch"

# Options shared by several commands, declared once.
Application = Annotated[
    Optional[str],
    typer.Option("-a", "--application", help="Application name: sets or filters by the tag Application=NAME."),
]
File = Annotated[Optional[str], typer.Option(
    "-f", "--file", help="A YAML file of resources (documents separated by ---).")]
WorkDir = Annotated[
    Path, typer.Option("-w", "--work-dir", help="Base directory for relative paths, including the -f file.")
]
Wait = Annotated[bool, typer.Option("--wait", help="Wait until the resource is READY (or ERROR, then exit 1).")]


def application_tags(application: str | None) -> list[dict]:
    return [{"key": "Application", "value": application}] if application else []


def application_query(application: str | None) -> dict:
    return {"tags": [f"Application={application}"]} if application else {}


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    scheme: str
    organization: str = ""
    insecure: bool = False
    token: str | None = None
    cookie: str | None = None
    service_account: str | None = None
    """`<org>/<name>`, or a name of the target's organization (contract §6.3)."""
    private_key: Path | None = None
    user_token: str | None = None
    """A user's ID token, kept in the current context by `dispatch login` through the browser."""
    refresh_token: str | None = None

    @property
    def issuer(self) -> str | None:
        if not self.service_account:
            return None
        if "/" in self.service_account:
            return self.service_account
        return f"{self.organization or DEFAULT_ORGANIZATION}/{self.service_account}"

    def bearer(self, ttl_seconds: float = 3600) -> str | None:
        """The token requests carry: --token, else one signed with the service account's key, else
        the logged-in user's (CliState.bearer renews it first when it has expired)."""
        if self.token:
            return self.token
        if not self.issuer:
            return self.user_token
        if self.private_key is None:
            raise DispatchClientError(f"service account {self.service_account} needs --jwt-private-key")
        try:
            pem = self.private_key.expanduser().read_bytes()
        except OSError as error:
            raise DispatchClientError(f"cannot read the private key {self.private_key}: {error.strerror}") from None
        try:
            return account_token(self.issuer, pem, ttl_seconds)
        except (ValueError, TypeError) as error:
            raise DispatchClientError(f"{self.private_key} is not a PEM RSA private key: {error}") from None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class CliState:
    """Built once by the root callback and handed to every command as `ctx.obj`."""

    config_path: Path
    target: Target
    output: str | None = None
    _renewed: dict = field(default_factory=dict, compare=False, repr=False)

    def bearer(self, ttl_seconds: float = 3600) -> str | None:
        """Target.bearer, with a user's expired ID token renewed (once per command) and saved first."""
        t = self.target
        if t.token or t.issuer or not t.user_token:
            return t.bearer(ttl_seconds)
        if "token" not in self._renewed:
            from dispatch.cli.oidc import fresh_token  # only users who logged in through a browser need it
            self._renewed["token"] = fresh_token(self.config_path, t.user_token, t.refresh_token)
        return self._renewed["token"]

    def client(self, timeout: float | None = 60.0) -> DispatchClient:
        t = self.target
        return DispatchClient(t.base_url, t.organization, self.bearer(), t.cookie, t.insecure, timeout)


def state_of(ctx: typer.Context) -> CliState:
    return ctx.find_root().obj


def load_config(path: Path) -> dict:
    """The config file as a dict; a missing file is an empty config."""
    try:
        return contexts.load_config(path)
    except OSError as error:
        raise DispatchClientError(f"cannot read config file {path}: {error.strerror}") from None
    except ValueError as error:
        raise DispatchClientError(f"config file {path} is not valid JSON: {error}") from None


def save_config(path: Path, config: dict) -> None:
    contexts.save_config(path, config)


def _own_organization(service_account: str | None) -> str | None:
    """An account named with its organization (`acme/ci`) acts there unless told otherwise."""
    return service_account.split("/", 1)[0] if service_account and "/" in service_account else None


def resolve_target(
    config: dict,
    host: str | None = None,
    port: int | None = None,
    scheme: str | None = None,
    organization: str | None = None,
    insecure: bool = False,
    token: str | None = None,
    service_account: str | None = None,
    private_key: Path | None = None,
) -> Target:
    """Fill what the flags and environment left unset from the current context, then defaults. A
    token or service account given as flag or environment wins over the context's identity; in the
    context, a logged-in user's token wins over a service account."""
    current: dict[str, Any] = config.get("contexts", {}).get(config.get("current") or "", {}) or {}
    user_token = None if token or service_account else current.get("token") or None
    try:
        port_value = int(port if port is not None else current.get("port") or DEFAULT_PORT)
    except ValueError:
        raise DispatchClientError(f"invalid port in the current context: {current.get('port')!r}") from None
    scheme_value = (scheme or current.get("scheme") or DEFAULT_SCHEME).lower()
    if scheme_value not in ("http", "https"):
        raise DispatchClientError(f"invalid scheme {scheme_value!r}: use http or https")
    return Target(
        host=host or current.get("host") or DEFAULT_HOST,
        port=port_value,
        scheme=scheme_value,
        organization=organization if organization is not None else _own_organization(service_account)
        or current.get("organization") or "",
        insecure=insecure or bool(current.get("insecure")),
        token=token or None,
        cookie=current.get("cookie") or None,
        # a key goes with its account: the context's key is never paired with another account
        service_account=service_account or (None if user_token else current.get("serviceaccount")) or None,
        private_key=private_key or (Path(current["jwtprivatekey"]) if current.get("jwtprivatekey")
                                    and not (service_account or user_token) else None),
        user_token=user_token,
        refresh_token=(current.get("refreshToken") or None) if user_token else None,
    )
