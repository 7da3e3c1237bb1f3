"""`dispatch get runs --limit N [--continue TOKEN] [--all]`: runs a page at a time, newest first."""
import json
import shlex

import typer

from dispatch.cli.client import DispatchClient, DispatchClientError
from dispatch.cli.config import CliState, application_query
from dispatch.cli.exec import RUN_COLUMNS, run_row
from dispatch.cli.output import print_table, render

NEXT_PAGE = "X-Dispatch-Continue"
PAGE = 100


def show_pages(state: CliState, function: str | None, application: str | None, limit: int | None,
               token: str | None, every: bool) -> None:
    """Print one page (then, on stderr, the command for the next one), or every page."""
    client = state.client()
    query = {"functionName": function, "limit": limit or PAGE, **application_query(application)}
    runs: list[dict] = []
    while True:
        page, token = fetch(client, {**query, "continue": token})
        runs += page
        if token is None or not every:
            break
    if state.output is not None:
        render(runs, state.output)
    else:
        print_table(RUN_COLUMNS, [run_row(run) for run in runs])
    if token is not None:
        words = ["dispatch", "get", "runs", *([function] if function else []), "--limit", str(limit or PAGE),
                 *(["-a", application] if application else []), "--continue", token]
        typer.echo(f"More runs: {shlex.join(words)}", err=True)


def fetch(client: DispatchClient, query: dict) -> tuple[list[dict], str | None]:
    """A page of runs and the token of the next one (None at the end)."""
    try:
        with client.open("/v1/runs", query) as response:
            return json.loads(response.read()) or [], response.headers.get(NEXT_PAGE)
    except (ValueError, OSError) as error:
        raise DispatchClientError(f"unexpected answer to a page of runs: {error}") from None
