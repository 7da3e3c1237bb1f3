"""`dispatch admin`: maintenance of a server's data: its read models and its dead letters."""
import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dispatch.cli.config import state_of
from dispatch.cli.output import print_table, render
from dispatch.errors import NotFound, Rejected
from dispatch.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Maintain a server's read models and dead letters.")


@app.command("rebuild-views")
def rebuild_views(
    ctx: typer.Context,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Data directory of the server.", show_default="~/.dispatch")
    ] = None,
    store: Annotated[
        Optional[str], typer.Option(help="sqlite (under --data-dir) or a PostgreSQL URL.", show_default="sqlite")
    ] = None,
    namespace: Annotated[
        Optional[str], typer.Option(help="The PostgreSQL schema of the installation.", show_default="dispatch")
    ] = None,
    run_retention: Annotated[Optional[str], typer.Option(
        help="Leave out the finished runs modified longer ago than this (30d, 12h or seconds), as the server's "
             "--run-retention does.", show_default="DISPATCH_RUN_RETENTION")] = None,
) -> None:
    """Rebuild every read model from the event log and print how many records each holds.

    Stop the servers first: with SQLite this is enforced; with PostgreSQL, writes made during
    the rebuild wait for it."""
    # Imported here: the server pulls in its whole stack, which other commands do not need.
    from dispatch import server as embedded

    given: dict[str, Any] = {"data_dir": data_dir, "store": store, "namespace": namespace,
                             "run_retention": run_retention}
    try:
        settings = Settings(**{name: value for name, value in given.items() if value is not None})
    except ValueError as error:  # pydantic's ValidationError is one
        raise Rejected(f"invalid settings: {error}") from None
    counts = asyncio.run(embedded.rebuild_views(settings))
    state = state_of(ctx)
    if state.output is not None:
        render(counts, state.output)
        return
    for view, count in counts.items():
        typer.echo(f"Rebuilt {view}: {count}")


@app.command("drop")
def drop(
    bus: Annotated[str, typer.Option(help="Message bus URL (amqp://...).")],
    store: Annotated[str, typer.Option(help="PostgreSQL URL.")],
    namespace: Annotated[str, typer.Option(help="The installation's namespace.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this deletes every run and resource.")] = False,
) -> None:
    """Delete an installation: every exchange and queue of its namespace and its PostgreSQL schema.

    Stop its servers first."""
    from dispatch import server as embedded

    if not yes:
        raise Rejected(f"this deletes every resource and run of namespace {namespace}; add --yes to confirm")
    asyncio.run(embedded.drop_installation(Settings(bus=bus, store=store, namespace=namespace)))
    typer.echo(f"Dropped namespace {namespace}")


@app.command("dead-letters")
def dead_letters(
    ctx: typer.Context,
    replay: Annotated[
        Optional[str], typer.Option(metavar="MESSAGE_ID", help="Send this dead letter to its consumer again.")
    ] = None,
    bus: Annotated[
        Optional[str], typer.Option(help="Message bus URL (amqp://...).", show_default="DISPATCH_BUS")
    ] = None,
    namespace: Annotated[
        Optional[str], typer.Option(help="Prefix of the bus's exchanges and queues.", show_default="dispatch")
    ] = None,
) -> None:
    """List the messages that kept failing, or replay one once its fault is fixed."""
    given: dict[str, Any] = {"bus": bus, "namespace": namespace}
    settings = Settings(**{name: value for name, value in given.items() if value is not None})
    if settings.bus == "memory":
        raise Rejected("dead letters live on the message bus; pass --bus amqp://…")
    if replay is not None:
        if not asyncio.run(_on_bus(settings, lambda b: b.replay(replay))):
            raise NotFound(f"no dead letter {replay}")
        typer.echo(f"Replayed {replay}")
        return
    letters = asyncio.run(_on_bus(settings, lambda b: b.dead_letters()))
    state = state_of(ctx)
    if state.output is not None:
        render([asdict(letter) for letter in letters], state.output)
        return
    print_table(["id", "type", "consumer", "attempts", "error"],
                [(d.message_id, d.type, d.consumer, d.attempts, d.error.splitlines()[0] if d.error else "")
                 for d in letters])


async def _on_bus(settings: Settings, act):
    # Imported here: only this command needs a bus adapter.
    from dispatch.handlers.adapters import bus_from

    adapter = bus_from(settings)
    await adapter.start()
    try:
        return await act(adapter)
    finally:
        await adapter.close()
