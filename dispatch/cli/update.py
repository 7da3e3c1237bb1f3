"""`dispatch update -f`, `dispatch update function` and `dispatch apply -f`: replace resources."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from dispatch.cli import create
from dispatch.cli.client import DispatchClient, DispatchClientError
from dispatch.cli.config import Application, Wait, WorkDir, state_of
from dispatch.cli.manifest import KINDS, Document, load, process
from dispatch.cli.output import render

RequiredFile = Annotated[str, typer.Option(
    "-f", "--file", help="A YAML file of resources (documents separated by ---).")]
FileOption = Annotated[Optional[str], typer.Option("-f", "--file",
                                                   help="A YAML file of resources (documents separated by ---).")]

app = typer.Typer(no_args_is_help=False)


@app.callback(invoke_without_command=True)
def update(ctx: typer.Context, file: FileOption = None, work_dir: WorkDir = Path(".")) -> None:
    """Update every resource of a YAML file (PUT), in file order, stopping at the first error; or one
    function with `update function`."""
    if ctx.invoked_subcommand is not None:
        return
    if file is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(1)
    state = state_of(ctx)
    client = state.client()
    documents = load(file, work_dir, "update")
    process(documents, lambda d: client.put(d.kind.path_of(d.name), d.body), "Updated", state.output)


@app.command()
def function(
    ctx: typer.Context,
    name: str,
    path: create.SourcePath,
    image: create.ImageName,
    handler: create.Handler = "",
    schema_in: create.SchemaIn = None,
    schema_out: create.SchemaOut = None,
    secret: create.Secrets = None,
    service: create.Services = None,
    timeout: create.Timeout = None,
    min_replicas: create.MinReplicas = None,
    max_replicas: create.MaxReplicas = None,
    concurrency: create.Concurrency = None,
    idle_seconds: create.IdleSeconds = None,
    memory_mb: create.MemoryMB = None,
    cpu_seconds: create.CpuSeconds = None,
    cpus: create.Cpus = None,
    application: Application = None,
    wait: Wait = False,
) -> None:
    """Replace a function (PUT) with the same options as `create function`; it is deployed again."""
    body = create.function_body(name, path, image, handler, schema_in, schema_out, secret, service, timeout,
                                application)
    body.update(create.scale_and_limits(min_replicas, max_replicas, concurrency, idle_seconds, memory_mb,
                                        cpu_seconds, cpus))
    state = state_of(ctx)
    kind = KINDS["Function"]
    updated = state.client().put(kind.path_of(name), body)
    if state.output is None:
        typer.echo(f"Updated {kind.label}: {name}")
    if wait:
        updated = create.wait_until_ready(state, kind, name, quiet=state.output is not None)
    if state.output is not None:
        render(updated, state.output)


def apply(ctx: typer.Context, file: RequiredFile, work_dir: WorkDir = Path(".")) -> None:
    """Update every resource of a YAML file, creating those that do not exist yet."""
    state = state_of(ctx)
    client = state.client()
    documents = load(file, work_dir, "apply")
    process(documents, lambda d: _put_or_post(client, d), "Applied", state.output)


def _put_or_post(client: DispatchClient, document: Document) -> object:
    try:
        return client.put(document.kind.path_of(document.name), document.body)
    except DispatchClientError as error:
        # Existing clients decide on the `[Code: 404] ` prefix, i.e. the code of the error body.
        if error.code != 404:
            raise
    return client.post(document.kind.path, document.body)
