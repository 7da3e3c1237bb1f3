"""`dispatch delete KIND NAME` and `dispatch delete -f FILE`."""
from pathlib import Path
from typing import Annotated, Callable

import typer

from dispatch.cli.config import Application, File, WorkDir, application_query, state_of
from dispatch.cli.manifest import KINDS, Kind, load, process
from dispatch.cli.output import render

app = typer.Typer(no_args_is_help=False)


@app.callback(invoke_without_command=True)
def delete(ctx: typer.Context, file: File = None, work_dir: WorkDir = Path(".")) -> None:
    """Delete the resources of a YAML file (-f, last document first), or one resource with a command below."""
    if ctx.invoked_subcommand is not None:
        return
    if file is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(1)
    state = state_of(ctx)
    client = state.client()
    # Last first: a file lists what others depend on before them, so dependents go first and
    # nothing is left for a moment naming what is already gone.
    documents = load(file, work_dir, "delete")[::-1]
    process(documents, lambda d: client.delete(d.kind.path_of(d.name)), "Deleted", state.output)


def _delete_command(kind: Kind) -> Callable:
    def delete_one(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help=f"Name of the {kind.label}.")],
        application: Application = None,
    ) -> None:
        state = state_of(ctx)
        deleted = state.client().delete(kind.path_of(name), application_query(application))
        if state.output is not None:
            render(deleted, state.output)
        else:
            typer.echo(f"Deleted {kind.label}: {name}")

    delete_one.__doc__ = f"Delete the {kind.label} NAME."
    return delete_one


for _kind in KINDS.values():
    if "delete" in _kind.verbs and _kind.aliases:
        _command = _delete_command(_kind)
        app.command(_kind.aliases[0])(_command)
        for _alias in _kind.aliases[1:]:
            app.command(_alias, hidden=True)(_command)
