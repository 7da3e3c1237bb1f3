"""`dispatch exec`, and the run listings behind `dispatch get runs`."""
import contextlib
import json
import math
import time
import urllib.parse
from typing import Annotated, Any, Optional

import typer

from dispatch.cli.client import FINAL_STATUSES, DispatchClient, DispatchClientError
from dispatch.cli.config import Application, CliState, application_query, state_of
from dispatch.cli.inputs import json_of
from dispatch.cli.output import local_time, print_table, render, spinner

RUN_COLUMNS = ("ID", "Function", "Status", "Started", "Finished", "Output")
# While following, batches are printed as separate tables; fixed widths keep them aligned.
_FOLLOW_WIDTHS = (36, 16, 11, 28, 28, 40)
_OUTPUT_WIDTH = 40


def execute(
    ctx: typer.Context,
    function: Annotated[str, typer.Argument(help="Name of the function to run.")],
    input: Annotated[str, typer.Option(
        "--input", help="Input of the run: any JSON value; - reads it from standard input, @FILE from a file.")] = "{}",
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait for the run to finish and print its result; exit 1 when the run failed.")] = False,
    secret: Annotated[Optional[list[str]], typer.Option(
        "--secret", help="Extra secret for this run (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", hidden=True)] = False,
    application: Application = None,
) -> None:
    """Run a function and print the run (JSON, or YAML with -o yaml). With --wait, the exit status
    tells whether the run succeeded."""
    payload = json_of(input, "--input")
    state = state_of(ctx)
    body = {"blocking": wait, "input": payload, "secrets": secret or []}
    query = {"functionName": function, **application_query(application)}
    # A blocking run lasts as long as the function; the server caps the wait and then answers 202.
    client = state.client(timeout=None if wait else 60.0)
    waiting = spinner(f"Running {function}") if wait else contextlib.nullcontext()
    with waiting:
        run = client.post("/v1/runs", body, query)
        if wait and run.get("status") not in FINAL_STATUSES:
            run = client.wait_for(_run_path(run, query), timeout=math.inf)
    render(run, state.output or "json")
    if wait and (run.get("status") == "ERROR" or run.get("error")):
        raise DispatchClientError(f"run {run.get('name')} of function {function} failed: {_failure(run)}")


def _run_path(run: dict, query: dict) -> str:
    return f"/v1/runs/{urllib.parse.quote(str(run.get('name')), safe='')}?{urllib.parse.urlencode(query, doseq=True)}"


def _failure(run: dict) -> str:
    error = run.get("error") or {}
    kind, message = error.get("type"), " ".join(str(error.get("message") or "").split())
    return ": ".join(part for part in (kind, message) if part) or f"status {run.get('status')}"


def show_runs(
    state: CliState,
    function: str | None,
    run_id: str | None,
    last: bool,
    follow: bool,
    application: str | None,
    interval: float = 2.0,
) -> None:
    """Print the runs of one function (or of all), one run, or the latest; optionally keep polling."""
    client = state.client()
    query = {"functionName": function, **application_query(application)}
    if run_id:
        run = client.get(f"/v1/runs/{urllib.parse.quote(run_id, safe='')}", query)
        _print_runs([run], state.output, single=True)
        return
    runs = sorted(client.get("/v1/runs", query) or [], key=_started)
    if last:
        if not runs:
            raise DispatchClientError(f"no runs of function {function}" if function else "no runs")
        runs = runs[-1:]
    _print_runs(runs, state.output, single=last, widths=_FOLLOW_WIDTHS if follow else ())
    if follow:
        _follow(client, query, runs, state.output, interval)


def run_row(run: dict) -> tuple:
    return (
        run.get("name"),
        run.get("functionName"),
        run.get("status"),
        local_time(run.get("executedTime")),
        local_time(run.get("finishedTime")),
        _outcome(run),
    )


def _outcome(run: dict) -> str:
    """The run's output, or its error, cut to fit a table cell (`-o json` shows it whole)."""
    error = run.get("error")
    text = f"{error.get('type')}: {error.get('message')}" if error else json.dumps(run.get("output"))
    text = " ".join(text.split())
    return text if len(text) <= _OUTPUT_WIDTH else text[: _OUTPUT_WIDTH - 1] + "…"


def _follow(client: DispatchClient, query: dict, runs: list[dict], output: str | None, interval: float) -> None:
    """Poll with `since` and print runs that are new or changed status, until interrupted."""
    seen = {(run.get("name"), run.get("status")) for run in runs}
    since = max((_touched(run) for run in runs), default=int(time.time()))
    try:
        while True:
            time.sleep(interval)
            # One second back: `since` is exclusive and times are whole seconds; `seen` drops repeats.
            fresh = client.get("/v1/runs", {**query, "since": max(since - 1, 0)}) or []
            new = [run for run in sorted(fresh, key=_started) if (run.get("name"), run.get("status")) not in seen]
            seen.update((run.get("name"), run.get("status")) for run in new)
            since = max([since, *(_touched(run) for run in fresh)])
            if new:
                _print_runs(new, output, single=False, header=False, widths=_FOLLOW_WIDTHS)
    except KeyboardInterrupt:
        return


def _print_runs(
    runs: list[dict], output: str | None, single: bool, header: bool = True, widths: tuple[int, ...] = ()
) -> None:
    if output is not None:
        if single or not header:
            for run in runs:
                render(run, output)
        else:
            render(runs, output)
        return
    print_table(RUN_COLUMNS, [run_row(run) for run in runs], show_header=header, min_widths=widths)


def _started(run: dict) -> Any:
    return max(run.get("executedTime") or 0, run.get("createdTime") or 0)


def _touched(run: dict) -> int:
    return max(run.get("modifiedTime") or 0, run.get("finishedTime") or 0, run.get("executedTime") or 0)
