"""`dispatch logs`: what the platform printed while working on a resource (an image's build), and
what a function printed across its runs."""
import json
from typing import Annotated, Optional

import typer

from dispatch.cli.audit import since_seconds
from dispatch.cli.client import DispatchClientError
from dispatch.cli.config import state_of
from dispatch.cli.output import render
from dispatch.cli.sse import events

app = typer.Typer(no_args_is_help=True, help="Show what the platform printed while working on a resource (an "
                                             "image's build), or what a function's runs printed.")


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


@app.command("function")
def function(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The function.")],
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing the lines of new runs as they "
                                                                "finish, until Ctrl-C.")] = False,
    since: Annotated[Optional[str], typer.Option(help="Only runs from then: a duration back from now (10m, 2h, "
                                                      "7d) or a Unix time.")] = None,
) -> None:
    """Show what the function's runs printed, each line with its run's id and start time: the runs
    recorded so far (--since narrows them down), oldest first, then, with -f, each new run as it
    finishes. The server pushes them (server-sent events); nothing is polled."""
    state = state_of(ctx)
    started = since_seconds(since)
    query = {"functionName": name, "follow": "true" if follow else "false",
             "since": None if started is None else int(started)}
    try:
        with state.client().open("/v1/runs/logs", query, accept="text/event-stream") as response:
            for kind, data in events(response):
                if kind == "log":
                    _print(data, state.output)
                elif kind == "following":
                    typer.echo(f"Following the runs of {name}; Ctrl-C stops.", err=True)
                elif kind == "error":
                    raise DispatchClientError(data.get("message", "the log stream failed"))
                elif kind == "end":
                    return
    except KeyboardInterrupt:
        return
    raise DispatchClientError("the server ended the log stream (it stopped?)")


def _print(line: dict, output: str | None) -> None:
    """One line as `TIME RUN STREAM LINE`; with -o json one object a line, with -o yaml a document each."""
    if output == "json":
        typer.echo(json.dumps(line, ensure_ascii=False))
    elif output == "yaml":
        typer.echo("---")
        render(line, output)
    else:
        typer.echo(f"{line.get('time')} {line.get('run')} {line.get('stream')} {line.get('line')}")
