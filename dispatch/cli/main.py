"""The `dispatch` command: global options, the command tree, and the one place errors become exit 1."""
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from dispatch import release
from dispatch.cli import (
    admin,
    audit,
    context,
    create,
    delete,
    emit,
    exec as exec_,
    get,
    iam,
    install,
    login,
    logs,
    manage,
    server,
    update,
    version,
)
from dispatch.cli.client import DispatchClientError
from dispatch.cli.config import (
    DEFAULT_CONFIG,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_SCHEME,
    CliState,
    load_config,
    resolve_target,
)
from dispatch.cli.output import check_format
from dispatch.errors import DispatchError

_VALUED = {"--config", "--host", "--port", "--scheme", "--organization", "-o", "--output", "--token",
           "--service-account", "--jwt-private-key"}
_FLAGS = {"--insecure", "--json"}
_SERVER_OWN = {"--host", "--port", "--organization"}
_HELP_ORDER = ["create", "get", "update", "apply", "delete", "exec", "emit", "logs", "iam", "audit", "login", "logout",
               "token", "context", "version", "server", "admin"]


def hoist_global_options(args: list[str]) -> list[str]:
    """Move global options found after the command name in front of it.

    Dispatch's users type `dispatch get functions -o json` and `dispatch exec f --organization o`;
    global options may appear anywhere, as they did there. `server` keeps its own
    `--host`, `--port` and `--organization`.
    """
    front: list[str] = []
    rest: list[str] = []
    command = None
    # `create function … --service-account NAME` names the function's identity, unless a key comes
    # with it (then it is who the CLI is, as anywhere else)
    function_identity = _words(args)[:2] == ["create", "function"] and not any(
        arg.split("=", 1)[0] == "--jwt-private-key" for arg in args)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0]
        own = (command == "server" and name in _SERVER_OWN) or (function_identity and name == "--service-account")
        short_output = arg.startswith("-o") and not arg.startswith("--") and len(arg) > 2
        if not own and (name in _FLAGS or short_output or name in _VALUED):
            width = 2 if name in _VALUED and "=" not in arg and not short_output else 1
            front.extend(args[i : i + width])
            i += width
            continue
        if command is None and not arg.startswith("-"):
            command = arg
        rest.append(arg)
        i += 1
    return front + rest


def _words(args: list[str]) -> list[str]:
    """The arguments that are not options nor the values of global options."""
    words, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in _VALUED
        else:
            words.append(arg)
    return words


_PASSWORD_IN_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]+@", re.IGNORECASE)


def hide_passwords(argv: list[str]) -> None:
    """Every process's command line is readable by every local user (`/proc/<pid>/cmdline`):
    rewrite this one's without the passwords of URLs it was given (`--store postgresql://u:pw@…`),
    as PostgreSQL does with its own. DISPATCH_* variables or --config-file keep them out of it
    from the start."""
    shown = [_PASSWORD_IN_URL.sub(r"\g<scheme>:***@", arg) for arg in argv]
    if shown != argv:
        import setproctitle

        setproctitle.setproctitle(" ".join(shown))


class DispatchGroup(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        hide_passwords(sys.argv)
        return super().parse_args(ctx, hoist_global_options(args))

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: _HELP_ORDER.index(n) if n in _HELP_ORDER else len(_HELP_ORDER))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (DispatchClientError, DispatchError) as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(1) from None
        except typer.BadParameter as error:
            if type(error) is not typer.BadParameter:  # MissingParameter: there the usage helps more
                raise
            # A value outside an option's choices (`--runtime nope`) is an error like any other:
            # one line, exit 1, as Dispatch's CLI did.
            typer.echo(f"Error: {error.format_message().replace('Value error, ', '')}", err=True)
            raise typer.Exit(1) from None


def show_version(shown: bool) -> None:
    if shown:
        typer.echo(f"dispatch {release()}")
        raise typer.Exit()


app = typer.Typer(
    cls=DispatchGroup,
    name="dispatch",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Optional[Path], typer.Option(envvar="DISPATCH_CONFIG", show_default=DEFAULT_CONFIG, help="Config file.")
    ] = None,
    host: Annotated[
        Optional[str],
        typer.Option(envvar="DISPATCH_HOST", show_default=DEFAULT_HOST,
                     help="Server host (default: the local server)."),
    ] = None,
    port: Annotated[
        Optional[int],
        typer.Option(envvar="DISPATCH_PORT", show_default=str(DEFAULT_PORT),
                     help="Server port (default: the local server)."),
    ] = None,
    scheme: Annotated[
        Optional[str], typer.Option(envvar="DISPATCH_SCHEME", show_default=DEFAULT_SCHEME, help="http or https.")
    ] = None,
    organization: Annotated[
        Optional[str],
        typer.Option(envvar="DISPATCH_ORGANIZATION",
                     help="Organization, sent as X-Dispatch-Org; empty means the server's default."),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", envvar="DISPATCH_INSECURE", help="Skip TLS certificate verification.")
    ] = False,
    output: Annotated[
        Optional[str],
        typer.Option("-o", "--output", envvar="DISPATCH_OUTPUT",
                     help="Output format: json or yaml (default: a table)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", envvar="DISPATCH_JSON", hidden=True)] = False,
    token: Annotated[Optional[str], typer.Option(envvar="DISPATCH_TOKEN", help="JWT sent as a bearer token.")] = None,
    service_account: Annotated[Optional[str], typer.Option(
        envvar="DISPATCH_SERVICE_ACCOUNT",
        help="Service account (<org>/<name>, or a name of --organization)"
             " whose key signs each request's token.")] = None,
    jwt_private_key: Annotated[Optional[Path], typer.Option(
        envvar="DISPATCH_JWT_PRIVATE_KEY", help="PEM private key of --service-account.")] = None,
    version_: Annotated[bool, typer.Option(
        "--version", callback=show_version, is_eager=True, help="Print this client's version and exit.")] = False,
) -> None:
    """Manage functions, images, secrets and APIs on a Dispatch server.

    Without a config file, flags or DISPATCH_* variables, commands talk to the local embedded
    server that `dispatch server` starts (http://127.0.0.1:8080). Global options may be given
    before or after the command.
    """
    config_path = config or Path(DEFAULT_CONFIG).expanduser()
    if ctx.resilient_parsing:
        return
    ctx.obj = CliState(
        config_path=config_path,
        target=resolve_target(load_config(config_path), host, port, scheme, organization, insecure, token,
                              service_account, jwt_private_key),
        output=check_format("json" if json_output and output is None else output),
    )


app.add_typer(create.app, name="create")
app.add_typer(get.app, name="get")
app.add_typer(update.app, name="update")
app.command()(update.apply)
app.add_typer(delete.app, name="delete")
app.command("exec")(exec_.execute)
app.command()(emit.emit)
app.add_typer(logs.app, name="logs")
app.add_typer(context.app, name="context")
app.command()(version.version)
app.add_typer(iam.app, name="iam")
app.command()(audit.audit)
app.command()(login.login)
app.command()(login.logout)
app.command()(login.token)
app.command()(server.server)
app.add_typer(admin.app, name="admin")
app.add_typer(manage.app, name="manage")
app.command()(install.install)
