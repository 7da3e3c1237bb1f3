"""`dispatch manage bootstrap`: the first administrator of an installation whose gateways were
started with `--bootstrap-public-key` (contract §6.5), through its REST API."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from dispatch.cli.client import DispatchClient, DispatchClientError
from dispatch.cli.config import load_config, save_config, state_of
from dispatch.iam.admin import admin_policy
from dispatch.iam.contexts import context_name
from dispatch.iam.keys import new_key_pair, write_private
from dispatch.iam.tokens import BOOTSTRAP_ISSUER, account_token

app = typer.Typer(no_args_is_help=True, help="Set up an installation.")


@app.command()
def bootstrap(
    ctx: typer.Context,
    bootstrap_key: Annotated[Path, typer.Option(
        "--bootstrap-key", help="PEM private key whose public key the gateways were given (--bootstrap-public-key).")],
    organization: Annotated[str, typer.Option("--bootstrap-org", help="The first organization.")] = "dispatch",
    account: Annotated[str, typer.Option(
        "--bootstrap-svc-account", help="The administrator's service account.")] = "admin",
    key_file: Annotated[Optional[Path], typer.Option(
        help="Where to keep the administrator's new private key.", show_default="next to the config file")] = None,
) -> None:
    """Create the first organization, a service account with a new key pair and a global
    all-* policy for it, then make that account the current context. The bootstrap key stops
    working once the organization exists."""
    state = state_of(ctx)
    target = state.target
    try:
        token = account_token(BOOTSTRAP_ISSUER, bootstrap_key.expanduser().read_bytes(), 600)
    except OSError as error:
        raise DispatchClientError(f"cannot read {bootstrap_key}: {error.strerror}") from None
    except (ValueError, TypeError) as error:
        raise DispatchClientError(f"{bootstrap_key} is not a PEM RSA private key: {error}") from None
    client = DispatchClient(target.base_url, organization, token, insecure=target.insecure)
    name = context_name(target.host, target.port)
    key_file = (key_file or state.config_path.expanduser().parent / f"{name}-{account}.pem").expanduser().resolve()
    if key_file.exists():
        raise DispatchClientError(f"{key_file} exists: give the new key another place with --key-file")
    pem, public = new_key_pair()
    # the organization last: once one exists, the bootstrap identity may do nothing more
    client.post("/v1/iam/serviceaccount", {"name": account, "publicKey": public})
    write_private(key_file, pem)
    client.post("/v1/iam/policy", admin_policy(account, account))
    client.post("/v1/iam/organization", {"name": organization})
    config = load_config(state.config_path)
    config["contexts"][name] = {"host": target.host, "port": target.port, "scheme": target.scheme,
                                "organization": organization, "cookie": "", "insecure": target.insecure,
                                "serviceaccount": f"{organization}/{account}", "jwtprivatekey": str(key_file)}
    config["current"] = name
    save_config(state.config_path, config)
    typer.echo(f"Created organization {organization}, service account {account} (key in {key_file}) and its "
               f"global policy; context {name} of {state.config_path} is current.")
