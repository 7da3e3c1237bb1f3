"""The OpenAPI document's parts for following runs: pages of `GET /v1/runs` and the event stream
of `GET /v1/runs/logs`."""
from typing import Any, Callable

_TEXT = {"type": "string"}
RUN_PAGES = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1},
     "description": "Runs a page, newest first; a limit over 1000 is taken as 1000."},
    {"name": "continue", "in": "query", "schema": _TEXT,
     "description": "The X-Dispatch-Continue of the previous page: the page after it."}]
NEXT_PAGE = {"X-Dispatch-Continue": {"schema": _TEXT, "description": "The next page's token; absent at the end."}}
FOLLOW = {"name": "follow", "in": "query", "schema": {"type": "boolean", "default": False},
          "description": "Keep the stream open and send each run's lines as it finishes."}
RUN_LOGS = ("Each line a run printed is a `log` event ({run, function, time, stream, line}): the runs modified after "
            "`since`, oldest first; then, following, a `following` event and the runs as they finish (a comment "
            "keeps the stream alive). Not following, an `end` event closes it; an `error` event ends a follower "
            "that fell behind.")
LOG_EVENT = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"enum": ["log", "following", "end", "error"]},
    "data": {"type": "string", "contentMediaType": "application/json"}}}


def add_run_paths(paths: dict[str, Any], organization: dict, errors: Callable[..., dict]) -> None:
    """Document `limit`, `continue` and the next page's header on `GET /v1/runs`, and add `/v1/runs/logs`."""
    listing = paths["/v1/runs"]["get"]
    listing["parameters"] = [*listing["parameters"], *RUN_PAGES]
    listing["description"] = "Every run, oldest first; with limit or continue, a page of them, newest first."
    listing["responses"]["200"] = {**listing["responses"]["200"], "headers": NEXT_PAGE}
    since = {"name": "since", "in": "query", "schema": {"type": "integer"}}
    function = {"name": "functionName", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1}}
    paths["/v1/runs/logs"] = {"get": {
        "parameters": [organization, function, since, FOLLOW],
        "description": "A function's logs across its runs, as server-sent events.",
        "responses": {"200": {"description": RUN_LOGS, "content": {"text/event-stream": {"schema": LOG_EVENT}}},
                      **errors(400, 404)}}}
