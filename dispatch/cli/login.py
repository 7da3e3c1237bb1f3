"""`dispatch login`, `logout` and `token`: who the CLI is, kept in the current context."""
import re
from typing import Annotated

import typer

from dispatch.cli.client import DispatchClientError
from dispatch.cli.config import CliState, load_config, save_config, state_of
from dispatch.iam.contexts import context_name

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def login(
    ctx: typer.Context,
    timeout: Annotated[str, typer.Option("--timeout", help="How long to wait for the browser: 90s, 5m.")] = "5m",
) -> None:
    """Log in: with --service-account and --jwt-private-key (or --token), check them against the
    server and keep them in the current context; otherwise log a user in through the browser
    (the server's OpenID Connect issuer)."""
    state = state_of(ctx)
    if not (state.target.token or state.target.service_account):
        from dispatch.cli import browser_login  # only users who log in through a browser need it
        browser_login.login(state, _seconds(timeout, "--timeout"))
        return
    state.client().get("/home")
    target = state.target
    updates = {"host": target.host, "port": target.port, "scheme": target.scheme,
               "organization": target.organization, "insecure": target.insecure}
    if target.service_account:
        updates |= {"serviceaccount": target.service_account, "token": "", "refreshToken": "",
                    "jwtprivatekey": str(target.private_key.expanduser().resolve()) if target.private_key else ""}
    name = update_context(state, updates)
    typer.echo(f"You have successfully logged in (context {name} of {state.config_path})")


def logout(ctx: typer.Context) -> None:
    """Forget the current context's credentials: its cookie, tokens, service account and key."""
    state = state_of(ctx)
    update_context(state, {"cookie": "", "token": "", "refreshToken": "", "serviceaccount": "", "jwtprivatekey": ""})
    typer.echo("You have successfully logged out")


def token(
    ctx: typer.Context,
    ttl: Annotated[str, typer.Option("--ttl", help="How long the token lasts: 90s, 30m, 1h, 7d.")] = "1h",
) -> None:
    """Print a bearer token for the current context, for curl and scripts:
    curl -H "Authorization: Bearer $(dispatch token)" …"""
    state = state_of(ctx)
    bearer = state.bearer(_seconds(ttl))
    if bearer is None:
        raise DispatchClientError("no identity in the current context: run `dispatch login` first")
    typer.echo(bearer)


def _seconds(ttl: str, option: str = "--ttl") -> float:
    match = _DURATION.match(ttl.strip())
    if match is None or float(match.group(1)) <= 0:
        raise DispatchClientError(f"invalid {option} {ttl!r}: use a number of s, m, h or d, e.g. 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def update_context(state: CliState, updates: dict) -> str:
    """Merge `updates` into the current context (an empty value removes a key); its name."""
    config = load_config(state.config_path)
    name = config["current"] or context_name(state.target.host, state.target.port)
    context = config["contexts"].get(name) or {}
    context = {key: value for key, value in {**context, **updates}.items()
               if value not in ("", None) or key == "cookie"}
    context.pop("writtenBy", None)  # the user's now: a server's first start will not replace it
    config["contexts"][name] = context
    config["current"] = name
    save_config(state.config_path, config)
    return name
