"""Reading a stream of server-sent events (text/event-stream) from an open response."""
import json
from typing import Any, Iterator

from dispatch.cli.client import DispatchClientError


def events(response: Any) -> Iterator[tuple[str, Any]]:
    """(event name, data decoded from JSON) of each event, as it arrives; comment lines (the
    server's keepalives) are skipped. Ends when the server closes the stream."""
    kind = "message"
    data: list[str] = []
    try:
        for raw in response:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line:
                if data:
                    yield kind, _decoded("\n".join(data))
                kind, data = "message", []
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    kind = value
                elif field == "data":
                    data.append(value)
    except TimeoutError:
        raise DispatchClientError("the server stopped sending the stream (nothing, not even a keepalive, "
                                  "for a minute)") from None
    except ConnectionError as error:
        raise DispatchClientError(f"the stream from the server was cut: {error}") from None


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
