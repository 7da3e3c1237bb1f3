"""`dispatch update -f` and `dispatch apply -f`: replace resources described in a YAML file."""
from pathlib import Path
from typing import Annotated

import typer

from dispatch.cli.client import DispatchClient, DispatchClientError
from dispatch.cli.config import WorkDir, state_of
from dispatch.cli.manifest import Document, load, process

RequiredFile = Annotated[str, typer.Option("-f", "--file", help="A YAML file of resources (documents separated by ---).")]


def update(ctx: typer.Context, file: RequiredFile, work_dir: WorkDir = Path(".")) -> None:
    """Update every resource of a YAML file (PUT), in file order, stopping at the first error."""
    state = state_of(ctx)
    client = state.client()
    documents = load(file, work_dir, "update")
    process(documents, lambda d: client.put(d.kind.path_of(d.name), d.body), "Updated", state.output)


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
