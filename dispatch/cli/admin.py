"""`dispatch admin`: maintenance of an embedded server's data directory."""
import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from dispatch.cli.config import state_of
from dispatch.cli.output import render
from dispatch.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Maintain the data directory of an embedded server.")


@app.command("rebuild-views")
def rebuild_views(
    ctx: typer.Context,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Data directory of the server.", show_default="~/.dispatch")
    ] = None,
) -> None:
    """Rebuild every read model from the event log and print how many records each holds."""
    # Imported here: the server pulls in its whole stack, which other commands do not need.
    from dispatch import server as embedded

    settings = Settings(**({"data_dir": data_dir} if data_dir is not None else {}))
    counts = asyncio.run(embedded.rebuild_views(settings))
    state = state_of(ctx)
    if state.output is not None:
        render(counts, state.output)
        return
    for view, count in counts.items():
        typer.echo(f"Rebuilt {view}: {count}")
