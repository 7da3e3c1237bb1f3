"""`dispatch get`: tables (or -o json|yaml) of base images, images, functions, secrets, APIs,
subscriptions, event drivers, event driver types, applications and runs."""
from typing import Annotated, Any, Callable, Optional

import typer

from dispatch.cli import exec as runs, run_pages
from dispatch.cli.client import DispatchClientError
from dispatch.cli.config import Application, application_query, state_of
from dispatch.cli.manifest import KINDS, Kind
from dispatch.cli.output import joined, local_time, print_table, render

app = typer.Typer(no_args_is_help=True, help="Show resources as a table, or with -o json|yaml.")

Name = Annotated[Optional[str], typer.Argument(help="Show only this one.")]
HIDDEN_NOTE = "Note: secret values are hidden, please use --all flag to get them"


def _register(command: Callable, names: tuple[str, ...]) -> None:
    app.command(names[0])(command)
    for alias in names[1:]:
        app.command(alias, hidden=True)(command)


def _show(
    ctx: typer.Context,
    kind: Kind,
    name: str | None,
    application: str | None,
    columns: tuple[str, ...],
    row: Callable[[dict], tuple],
    query: dict | None = None,
) -> None:
    state = state_of(ctx)
    path = kind.path_of(name) if name else kind.path
    data = state.client().get(path, {**application_query(application), **(query or {})})
    if state.output is not None:
        render(data, state.output)
        return
    items: list[Any] = [data] if name else data or []
    print_table(columns, [row(item) for item in items])


def base_images(ctx: typer.Context, name: Name = None) -> None:
    """Show base images: all, or the one named NAME."""
    _show(ctx, KINDS["BaseImage"], name, None, ("Name", "URL", "Status", "Created Date"),
          lambda b: (b.get("name"), b.get("dockerUrl"), b.get("status"), local_time(b.get("createdTime"))))


def images(ctx: typer.Context, name: Name = None, application: Application = None) -> None:
    """Show images: all, or the one named NAME."""
    _show(ctx, KINDS["Image"], name, application, ("Name", "URL", "BaseImage", "Status", "Created Date"),
          lambda i: (i.get("name"), i.get("dockerUrl"), i.get("baseImageName"), i.get("status"),
                     local_time(i.get("createdTime"))))


def functions(ctx: typer.Context, name: Name = None, application: Application = None) -> None:
    """Show functions: all, or the one named NAME."""
    _show(ctx, KINDS["Function"], name, application, ("Name", "FunctionImage", "Status", "Created Date"),
          lambda f: (f.get("name"), f.get("functionImageURL"), f.get("status"), local_time(f.get("createdTime"))))


def secrets(
    ctx: typer.Context,
    name: Name = None,
    all_: Annotated[bool, typer.Option("--all", help="Show the values too (as JSON).")] = False,
    application: Application = None,
) -> None:
    """Show secrets with their values hidden: all, or the one named NAME."""
    state = state_of(ctx)
    kind = KINDS["Secret"]
    data = state.client().get(kind.path_of(name) if name else kind.path, application_query(application))
    if state.output is not None or all_:
        render(data, state.output or "json")
        return
    items = [data] if name else data or []
    print_table(("ID", "Name", "Content"), [(s.get("id"), s.get("name"), "<hidden>") for s in items])
    typer.echo(f"\n{HIDDEN_NOTE}\n")


def apis(
    ctx: typer.Context,
    name: Name = None,
    func: Annotated[Optional[str], typer.Option("-f", "--func", help="Only the APIs of this function.")] = None,
    application: Application = None,
) -> None:
    """Show APIs: all, or the one named NAME."""
    columns = ("Name", "Function", "Protocol", "Method", "Domain", "Path", "Auth", "Status", "Enabled")
    _show(ctx, KINDS["API"], name, application, columns,
          lambda a: (a.get("name"), a.get("function"), joined(a.get("protocols")), joined(a.get("methods")),
                     joined(a.get("hosts")), joined(a.get("uris")), a.get("authentication"), a.get("status"),
                     "true" if a.get("enabled") else "false"),
          {"function": func})


def subscriptions(ctx: typer.Context, name: Name = None, application: Application = None) -> None:
    """Show event subscriptions: all, or the one named NAME."""
    _show(ctx, KINDS["Subscription"], name, application,
          ("Name", "Event type", "Function name", "Status", "Created date"),
          lambda s: (s.get("name"), s.get("eventType"), s.get("function"), s.get("status"),
                     local_time(s.get("createdTime"))))


def event_drivers(ctx: typer.Context, name: Name = None, application: Application = None) -> None:
    """Show event drivers: all, or the one named NAME."""
    _show(ctx, KINDS["Driver"], name, application, ("Name", "Type", "Status", "Secrets", "Config", "URL", "Reason"),
          lambda d: (d.get("name"), d.get("type"), d.get("status"), joined(d.get("secrets")),
                     joined(f"{c.get('key')}={c.get('value', '')}" for c in d.get("config") or []), d.get("url"),
                     joined(d.get("reason"))))


def event_driver_types(ctx: typer.Context, name: Name = None, application: Application = None) -> None:
    """Show event driver types, the built-in ones first: all, or the one named NAME."""
    _show(ctx, KINDS["DriverType"], name, application, ("Name", "Image", "Expose"),
          lambda t: (t.get("name"), "(built in)" if t.get("builtin") else t.get("image"),
                     "true" if t.get("expose") else "false"),
          {"builtin": "true"})


def applications(ctx: typer.Context, name: Name = None) -> None:
    """Show applications: all, or the one named NAME."""
    _show(ctx, KINDS["Application"], name, None, ("Name", "Status", "Created Date"),
          lambda a: (a.get("name"), a.get("status"), local_time(a.get("createdTime"))))


def run_list(
    ctx: typer.Context,
    function: Annotated[Optional[str], typer.Argument(help="Only the runs of this function.")] = None,
    run_id: Annotated[Optional[str], typer.Argument(help="Only this run.")] = None,
    last: Annotated[bool, typer.Option("--last", help="Only the latest run.")] = False,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep polling and print new runs.")] = False,
    limit: Annotated[Optional[int], typer.Option(
        min=1, help="A page of at most this many runs, newest first; the command for the next page follows.")] = None,
    continue_: Annotated[Optional[str], typer.Option(
        "--continue", metavar="TOKEN", help="The next page: the token the previous page printed.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every page, newest first (pages of --limit, or 100).")] = False,
    application: Application = None,
) -> None:
    """Show runs: all, those of FUNCTION, or the run RUN_ID of FUNCTION."""
    state = state_of(ctx)
    if limit is None and continue_ is None and not all_:
        runs.show_runs(state, function, run_id, last, follow, application)
        return
    if run_id or last or follow:
        raise DispatchClientError("--limit, --continue and --all page through runs: not with RUN_ID, --last or -f")
    run_pages.show_pages(state, function, application, limit, continue_, all_)


_register(base_images, KINDS["BaseImage"].aliases)
_register(images, KINDS["Image"].aliases)
_register(functions, KINDS["Function"].aliases)
_register(secrets, KINDS["Secret"].aliases)
_register(apis, KINDS["API"].aliases)
_register(subscriptions, KINDS["Subscription"].aliases)
_register(event_drivers, KINDS["Driver"].aliases)
_register(event_driver_types, KINDS["DriverType"].aliases)
_register(applications, KINDS["Application"].aliases)
_register(run_list, ("run", "runs"))
