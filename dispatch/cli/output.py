"""How results reach the terminal: borderless tables, JSON (4-space indent) or YAML, spinners."""
import contextlib
import json
import sys
from datetime import datetime
from typing import Any, Callable, Iterator, Sequence

import typer
import yaml
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dispatch.cli.client import DispatchClientError

FORMATS = ("json", "yaml")

# Dispatch's tables: no outer border, "|" between columns, a dashed line under the header.
_BORDERLESS = box.Box(
    "    \n"
    "  | \n"
    "----\n"
    "  | \n"
    "----\n"
    "----\n"
    "  | \n"
    "    \n",
    ascii=True,
)


def check_format(output: str | None) -> str | None:
    """The output format to use: None for tables, else `json` or `yaml`."""
    if output is None:
        return None
    if output.lower() not in FORMATS:
        raise DispatchClientError("invalid format option [yaml|json]")
    return output.lower()


def to_json(data: Any) -> str:
    return json.dumps(data, indent=4, ensure_ascii=False)


def render(data: Any, output: str) -> None:
    """Print `data` as JSON or YAML."""
    if output == "yaml":
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False), nl=False)
    else:
        typer.echo(to_json(data))


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    show_header: bool = True,
    min_widths: Sequence[int] = (),
) -> None:
    """`min_widths` keeps the columns of tables printed one after another aligned."""
    table = Table(box=_BORDERLESS, show_edge=False, show_header=show_header, header_style="bold", pad_edge=True)
    for column, width in zip(columns, [*min_widths, *[None] * len(columns)], strict=False):
        table.add_column(column.upper(), overflow="fold", min_width=width)
    for row in rows:
        # Text(...) so that brackets in names are shown as typed, not read as markup.
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    _console(sys.stdout).print(table)


def local_time(seconds: Any) -> str:
    """A Unix time in seconds as a local date-time; empty when unset (0 or missing)."""
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return ""
    return datetime.fromtimestamp(seconds).astimezone().strftime("%a %b %d %H:%M:%S %Z %Y")


def joined(values: Any) -> str:
    return ", ".join(str(v) for v in values or [])


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


@contextlib.contextmanager
def spinner(text: str) -> Iterator[Callable[[str], None]]:
    """Show a spinner on stderr while the block runs; yields a function to change its text.

    Only on a terminal, so that piped or captured output stays clean.
    """
    if not sys.stderr.isatty():
        yield lambda _text: None
        return
    with _console(sys.stderr).status(text) as status:
        yield lambda new_text: status.update(new_text)


def _console(stream: Any) -> Console:
    # Off a terminal, never wrap or cut table rows: scripts read them line by line.
    width = None if stream.isatty() else 1000
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)
