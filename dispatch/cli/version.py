"""`dispatch version`: the versions of this client and of the server it talks to."""
import typer

from dispatch import release
from dispatch.cli.config import state_of
from dispatch.cli.output import render


def client_version() -> str:
    return release()


def version(ctx: typer.Context) -> None:
    """Print the client version and the version reported by the server."""
    state = state_of(ctx)
    client = client_version()
    if state.output is None:
        # The client line first, so it shows even when the server cannot be reached.
        typer.echo(f"Client: {client}")
    answer = state.client().get("/v1/version", anonymous=True) or {}
    server = answer.get("version", "unknown")
    if state.output is None:
        typer.echo(f"Server: {server}")
    else:
        render({"client": client, "server": server}, state.output)
