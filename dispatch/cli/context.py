"""`dispatch context`: list, show, switch and delete the contexts of the config file."""
import json

import typer

from dispatch.cli.client import DispatchClientError
from dispatch.cli.config import load_config, save_config, state_of
from dispatch.cli.output import render

app = typer.Typer()


@app.callback(invoke_without_command=True)
def contexts(ctx: typer.Context) -> None:
    """List the contexts of the config file; the current one is marked with '* '."""
    if ctx.invoked_subcommand is not None:
        return
    state = state_of(ctx)
    config = load_config(state.config_path)
    # Cookies and a user's tokens are credentials: never print them.
    listed = {name: {**values, **{key: "" for key in ("cookie", "token", "refreshToken") if key in values}}
              for name, values in config["contexts"].items()}
    if state.output is not None:
        render({"current": config["current"], "contexts": listed}, state.output)
        return
    if not listed:
        typer.echo(f"No contexts in {state.config_path}; commands talk to {state.target.base_url}")
        return
    for name, values in listed.items():
        typer.echo(f"{'* ' if name == config['current'] else '  '}{name}")
        typer.echo("\n".join("    " + line for line in json.dumps(values, indent=4).splitlines()))


@app.command()
def current(ctx: typer.Context) -> None:
    """Print the name of the current context."""
    config = load_config(state_of(ctx).config_path)
    if not config["current"]:
        raise DispatchClientError("No current context")
    typer.echo(config["current"])


@app.command("set")
def set_context(ctx: typer.Context, name: str) -> None:
    """Make NAME the current context."""
    state = state_of(ctx)
    config = load_config(state.config_path)
    if name not in config["contexts"]:
        raise DispatchClientError(f"No such context {name}")
    config["current"] = name
    save_config(state.config_path, config)
    typer.echo(f"Set context to {name}")


@app.command("delete")
def delete_context(ctx: typer.Context, name: str) -> None:
    """Remove the context NAME from the config file."""
    state = state_of(ctx)
    config = load_config(state.config_path)
    if name not in config["contexts"]:
        raise DispatchClientError(f"No such context {name}")
    del config["contexts"][name]
    if config["current"] == name:
        config["current"] = ""
    save_config(state.config_path, config)
    typer.echo(f"Deleted context {name}")
