"""`dispatch iam`: organizations, policies and service accounts (contract §6.5)."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from dispatch.cli.client import DispatchClientError
from dispatch.cli.config import state_of
from dispatch.cli.output import local_time, print_table, render, to_json
from dispatch.iam.keys import encoded_public_key

app = typer.Typer(no_args_is_help=True, help="Organizations, policies and service accounts.")
create_app = typer.Typer(no_args_is_help=True, help="Create an organization, a policy or a service account.")
get_app = typer.Typer(no_args_is_help=True, help="Show organizations, policies or service accounts.")
delete_app = typer.Typer(no_args_is_help=True, help="Delete an organization, a policy or a service account.")
app.add_typer(create_app, name="create")
app.add_typer(get_app, name="get")
app.add_typer(delete_app, name="delete")

PATHS = {"organization": "/v1/iam/organization", "policy": "/v1/iam/policy", "serviceaccount": "/v1/iam/serviceaccount"}
Name = Annotated[Optional[str], typer.Argument(help="Show only this one.")]


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _create(ctx: typer.Context, kind: str, body: dict, done: str) -> None:
    state = state_of(ctx)
    created = state.client().post(PATHS[kind], body)
    if state.output is not None:
        render(created, state.output)
    else:
        typer.echo(f"{done}: {body['name']}")


@create_app.command("organization")
def create_organization(ctx: typer.Context, name: str) -> None:
    """Create an organization (a tenant). Takes a global policy on iam."""
    _create(ctx, "organization", {"name": name}, "Created organization")


@create_app.command("policy")
def create_policy(
    ctx: typer.Context,
    name: str,
    subject: Annotated[str, typer.Option(
        "-s", "--subject", help="Service accounts or user e-mails, comma-separated, or *.")],
    action: Annotated[str, typer.Option("-a", "--action", help="get, create, update, delete, comma-separated, or *.")],
    resource: Annotated[str, typer.Option(
        "-r", "--resource", help="function, runs, secret, iam…, comma-separated, or *.")],
    global_: Annotated[bool, typer.Option(
        "--global", help="Apply in every organization (takes a global policy).")] = False,
) -> None:
    """Create a policy of one rule: SUBJECTS may ACTIONS on RESOURCES in this organization."""
    rule = {"subjects": _list(subject), "actions": _list(action), "resources": _list(resource)}
    _create(ctx, "policy", {"name": name, "rules": [rule], "global": global_}, "Created policy")


@create_app.command("serviceaccount")
def create_service_account(
    ctx: typer.Context,
    name: str,
    public_key: Annotated[Path, typer.Option("--public-key", help="PEM file of the account's RSA public key.")],
    domain: Annotated[str, typer.Option(help="Optional domain of the account.")] = "",
) -> None:
    """Create a service account: a machine identity signing its own tokens with the private key
    of PUBLIC_KEY (`--service-account NAME --jwt-private-key FILE` on later commands)."""
    try:
        encoded = encoded_public_key(public_key)
    except OSError as error:
        raise DispatchClientError(f"cannot read {public_key}: {error.strerror}") from None
    _create(ctx, "serviceaccount", {"name": name, "publicKey": encoded, "domain": domain}, "Created service account")


def _show(ctx: typer.Context, kind: str, name: str | None, columns, row) -> list[dict] | None:
    state = state_of(ctx)
    data = state.client().get(f"{PATHS[kind]}/{name}" if name else PATHS[kind])
    if state.output is not None:
        render(data, state.output)
        return None
    items = [data] if name else data or []
    print_table(columns, [row(item) for item in items])
    return items


@get_app.command("organization")
def get_organizations(ctx: typer.Context, name: Name = None) -> None:
    """Show organizations: those you may see, or the one named NAME."""
    _show(ctx, "organization", name, ("Name", "Created Date"), lambda o: (o["name"], local_time(o.get("createdTime"))))


@get_app.command("policy")
def get_policies(
    ctx: typer.Context, name: Name = None,
    wide: Annotated[bool, typer.Option("-w", "--wide", help="Show the rules too.")] = False,
) -> None:
    """Show the policies of this organization, or the one named NAME."""
    columns = ("Name", "Global", "Created Date") + (("Rules",) if wide else ())
    shown = _show(ctx, "policy", name, columns, lambda p: (
        p["name"], "true" if p.get("global") else "false", local_time(p.get("createdTime")),
        *((to_json(p.get("rules")),) if wide else ())))
    if shown is not None and not wide:
        typer.echo("Note: rule contents are omitted, please use --wide or -w to print them")


@get_app.command("serviceaccount")
def get_service_accounts(ctx: typer.Context, name: Name = None) -> None:
    """Show the service accounts of this organization, or the one named NAME."""
    _show(ctx, "serviceaccount", name, ("Name", "Created Date"),
          lambda a: (a["name"], local_time(a.get("createdTime"))))


def _delete(ctx: typer.Context, kind: str, name: str, done: str) -> None:
    state = state_of(ctx)
    deleted = state.client().delete(f"{PATHS[kind]}/{name}")
    if state.output is not None:
        render(deleted, state.output)
    else:
        typer.echo(f"{done}: {name}")


@delete_app.command("organization")
def delete_organization(ctx: typer.Context, name: str) -> None:
    """Delete an empty organization."""
    _delete(ctx, "organization", name, "Deleted organization")


@delete_app.command("policy")
def delete_policy(ctx: typer.Context, name: str) -> None:
    """Delete a policy: what it granted stops at once."""
    _delete(ctx, "policy", name, "Deleted policy")


@delete_app.command("serviceaccount")
def delete_service_account(ctx: typer.Context, name: str) -> None:
    """Delete a service account: its tokens stop working at once."""
    _delete(ctx, "serviceaccount", name, "Deleted service account")


for _plural, _single in (("organizations", get_organizations), ("policies", get_policies),
                         ("serviceaccounts", get_service_accounts)):
    get_app.command(_plural, hidden=True)(_single)
