"""`dispatch audit`: who did what, when, allowed or denied (the server's audit trail)."""
import re
import time
from typing import Annotated, Any, Optional

import typer

from dispatch.cli.client import DispatchClientError
from dispatch.cli.config import state_of
from dispatch.cli.output import local_time, print_table, render

PATH = "/v1/audit"
EVERY_ORGANIZATION = "*"
COLUMNS = ("Time", "Subject", "Organization", "Action", "Resource", "Name", "Outcome")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def since_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Unix time as given, or one a duration (`90s`, `10m`, `2h`, `7d`) before now."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    duration = DURATION.fullmatch(text)
    if duration:
        return (time.time() if now is None else now) - float(duration[1]) * UNITS[duration[2]]
    try:
        return float(text)
    except ValueError:
        raise DispatchClientError(f"invalid --since {value!r}: give a Unix time, or a duration like 10m, 2h or 7d") \
            from None


def audit(
    ctx: typer.Context,
    subject: Annotated[Optional[str], typer.Option(help="Only what this subject did (<org>/<account>, an e-mail).")]
    = None,
    resource: Annotated[Optional[str], typer.Option(help="Only this policy resource: function, secret, event, iam…")]
    = None,
    name: Annotated[Optional[str], typer.Option(help="Only the resources of this name.")] = None,
    since: Annotated[Optional[str], typer.Option(help="From a Unix time, or a duration back from now: 10m, 2h, 7d.")]
    = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Entries per page.")] = 100,
    all_: Annotated[bool, typer.Option("--all", help="Every page, not only the first.")] = False,
) -> None:
    """Show who did what, when, allowed or denied, oldest first: the entries of the organization
    (--organization; `*` for every one, which takes a global policy on audit)."""
    state = state_of(ctx)
    client = state.client()
    query: dict[str, Any] = {"subject": subject, "resource": resource, "name": name,
                             "since": since_seconds(since), "limit": limit}
    if state.target.organization == EVERY_ORGANIZATION:
        # `*` is no organization to act in: the caller's own one, asking for every one
        client.organization = ""
        query["organization"] = EVERY_ORGANIZATION
    entries, after = _pages(client, query, all_)
    if state.output is not None:
        render(entries, state.output)
    else:
        print_table(COLUMNS, [(local_time(e.get("time")), e.get("subject"), e.get("organization"), e.get("action"),
                               e.get("resource"), e.get("name"), e.get("outcome")) for e in entries])
    if after is not None:
        typer.echo("More entries follow: --all shows them, or --since narrows them down.", err=True)


def _pages(client, query: dict[str, Any], every: bool) -> tuple[list[dict], int | None]:
    """The entries of the first page, or of every page; and where the next page starts (None at the end)."""
    entries: list[dict] = []
    after = None
    while True:
        page = client.get(PATH, {**query, "after": after}) or {}
        entries += page.get("entries") or []
        after = page.get("next")
        if after is None or not every:
            return entries, after
