"""Pages of `GET /v1/runs` (`limit`, `continue`): newest first, in the order the runs were first
recorded, which never changes, so that walking the pages meets every run once. The answer is
the same list of runs as without paging; the next page's token is in a header."""
import base64
import binascii
import json
from typing import Any, Callable

from aiohttp import web

from dispatch.errors import Rejected

NEXT_PAGE = "X-Dispatch-Continue"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def paged(request: web.Request) -> bool:
    return "limit" in request.query or "continue" in request.query


def limit_of(request: web.Request) -> int:
    raw = request.query.get("limit") or str(DEFAULT_LIMIT)
    try:
        limit = int(raw)
    except ValueError:
        raise Rejected(f"limit must be a whole number of runs, not {raw!r}") from None
    if limit < 1:
        raise Rejected(f"limit must be at least 1, not {limit}")
    return min(limit, MAX_LIMIT)


def token(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": position}).encode()).decode().rstrip("=")


def before_of(request: web.Request) -> int | None:
    """Where the page starts: before the last run of the previous page (None: the newest)."""
    raw = request.query.get("continue")
    if not raw:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["before"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        position = None
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < 2**63:
        raise Rejected("continue is not a token this server gave: pass the X-Dispatch-Continue of the last page")
    return position


async def page(views: Any, organization: str, function: str | None, since: int | None, before: int | None,
               limit: int, keep: Callable[[dict], bool]) -> tuple[list[dict], str | None]:
    """Up to `limit` runs that `keep` keeps, and the token of the next page (None at the end).
    Runs it drops (another application's) do not shorten the page: more are read."""
    runs: list[dict] = []
    while True:
        rows = await views.page_runs(organization, function, since, before, limit + 1)
        for position, run in rows[:limit]:
            if keep(run):
                runs.append(run)
                if len(runs) == limit:
                    more = position != rows[-1][0]
                    return runs, token(position) if more else None
            before = position
        if len(rows) <= limit:
            return runs, None
