"""`dispatch logs`: what the platform printed while working on a resource."""
from typing import Annotated

import typer

from dispatch.cli.config import state_of
from dispatch.cli.output import render

app = typer.Typer(no_args_is_help=True, help="Show what the platform printed while working on a resource: an image's build.")


@app.command("image")
def image(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The image.")]) -> None:
    """Show what the image's last build printed (its last 5,000 lines)."""
    state = state_of(ctx)
    log = state.client().get(f"/v1/image/{name}/logs")
    if state.output is not None:
        render(log, state.output)
        return
    for line in log.get("lines", []):
        typer.echo(line)
