"""`dispatch emit`: emit an event, as Dispatch's CLI did (a CloudEvents 0.1 event), to the
functions subscribed to its type."""
import base64
import datetime as dt
import json
import mimetypes
import uuid
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dispatch.cli.client import DispatchClientError
from dispatch.cli.config import state_of
from dispatch.cli.inputs import text_of
from dispatch.cli.output import render

JSON = "application/json"


def emit(
    ctx: typer.Context,
    event_type: Annotated[str, typer.Argument(help="Type of the event, e.g. user.created.")],
    data: Annotated[Optional[str], typer.Option(
        "--data", "--payload", help="Data of the event: any JSON value (content type application/json); - reads "
                                    "it from standard input, @FILE from a file.")] = None,
    data_from_file: Annotated[Optional[Path], typer.Option(
        "--data-from-file",
        help="Data read from a file: JSON and text as they are, anything else base64-encoded.")] = None,
    binary: Annotated[bool, typer.Option("--binary", help="Send the data base64-encoded whatever it is.")] = False,
    content_type: Annotated[Optional[str], typer.Option(help="Content type of the data (default: sniffed).")] = None,
    source_id: Annotated[str, typer.Option(help="Source of the event.")] = "dispatch",
    event_id: Annotated[Optional[str], typer.Option(help="Id of the event (default: a new UUID).")] = None,
    event_type_version: Annotated[Optional[str], typer.Option(help="Version of the event type.")] = None,
    event_schema_url: Annotated[Optional[str], typer.Option(help="URL of the data's schema.")] = None,
) -> None:
    """Emit an event; every function subscribed to its type runs with the data as input."""
    if data is not None and data_from_file is not None:
        raise DispatchClientError("--data and --data-from-file are mutually exclusive")
    event: dict[str, Any] = {
        "eventType": event_type, "cloudEventsVersion": "0.1", "source": source_id,
        "eventID": event_id or str(uuid.uuid4()),
        "eventTime": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    optional = {"eventTypeVersion": event_type_version, "schemaURL": event_schema_url}
    event.update({key: value for key, value in optional.items() if value})
    if data is not None:
        event.update(_inline(data, content_type, binary))
    elif data_from_file is not None:
        event.update(_from_file(data_from_file, content_type, binary))
    state = state_of(ctx)
    echoed = state.client().post("/v1/event/", event)
    if state.output is not None:
        render(echoed, state.output)
    else:
        typer.echo("event emitted")


def _inline(data: str, content_type: str | None, binary: bool) -> dict[str, Any]:
    text, origin = text_of(data, "--data")
    if binary:
        return {"contentType": content_type or "application/octet-stream",
                "data": base64.b64encode(text.encode()).decode()}
    try:
        return {"contentType": content_type or JSON, "data": json.loads(text)}
    except ValueError as error:
        raise DispatchClientError(f"invalid {origin}, it must be JSON: {error}") from None


def _from_file(path: Path, content_type: str | None, binary: bool) -> dict[str, Any]:
    try:
        raw = path.expanduser().read_bytes()
    except OSError as error:
        raise DispatchClientError(f"cannot read --data-from-file {path}: {error.strerror}") from None
    sniffed = content_type or mimetypes.guess_type(path.name)[0]
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = None
    if binary or text is None or "\x00" in text:
        return {"contentType": sniffed or "application/octet-stream", "data": base64.b64encode(raw).decode()}
    if sniffed == JSON or (sniffed or "").endswith("+json"):
        try:
            return {"contentType": sniffed, "data": json.loads(text)}
        except ValueError as error:
            raise DispatchClientError(f"{path} is not valid JSON: {error}") from None
    return {"contentType": sniffed or "text/plain; charset=utf-8", "data": text}
