"""The audit trail on PostgreSQL: its table (migration 2), its writes and query, and the fill
from the log that the migration runs, so an upgraded installation's trail starts at its first
event."""
import json
from typing import Any

from asyncpg.pool import PoolConnectionProxy

from dispatch.schemas.envelope import decode
from dispatch.schemas.events import RunEvent
from dispatch.schemas.wirejson import dumps_text

from .ports import Recorded
from .projections import AuditView

# Listing pages through an organization by position; a subject's entries have an index of their own.
SCHEMA = """
CREATE TABLE audit (
    position BIGINT PRIMARY KEY, org TEXT COLLATE "C" NOT NULL, subject TEXT COLLATE "C" NOT NULL,
    resource TEXT COLLATE "C" NOT NULL, name TEXT COLLATE "C" NOT NULL, time DOUBLE PRECISION NOT NULL,
    body JSON NOT NULL);
CREATE INDEX audit_by_org ON audit (org, position);
CREATE INDEX audit_by_subject ON audit (org, subject, position);
"""
PUT_AUDIT = """INSERT INTO audit (position, org, subject, resource, name, time, body)
SELECT p, o, s, r, n, t, b::json
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::text[])
    AS u(p, o, s, r, n, t, b)
ON CONFLICT (position) DO NOTHING"""
FILL_BATCH = 1000


async def put_audit(conn: PoolConnectionProxy, entries: list[dict[str, Any]]) -> None:
    """Write entries in one statement; an entry already written (the same position) stays as it is."""
    columns: list[list] = [[], [], [], [], [], [], []]
    for entry in entries:
        row = (entry["position"], entry["organization"], entry["subject"], entry["resource"], entry["name"],
               float(entry["time"]), dumps_text(entry))
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    await conn.execute(PUT_AUDIT, *columns)


def audit_query(organization: str | None, subject: str | None, resource: str | None, name: str | None,
                since: float | None, after: int, limit: int) -> tuple[str, list]:
    """The SELECT of Views.list_audit, with only the conditions asked for: a prepared statement
    with `$n IS NULL OR …` would get a generic plan that no index serves."""
    conditions = ["position > $1"]
    args: list[str | float] = [after]
    for column, value in (("org", organization), ("subject", subject), ("resource", resource), ("name", name)):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    if since is not None:
        args.append(float(since))
        conditions.append(f"time >= ${len(args)}")
    args.append(limit)
    return f"SELECT body FROM audit WHERE {' AND '.join(conditions)} ORDER BY position LIMIT ${len(args)}", args


class _Entries:
    """The ViewTransaction the fill gives AuditView: it only collects entries."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_audit(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)


async def fill(conn: PoolConnectionProxy) -> None:
    """Project the log so far into the audit table (inside the migration's transaction)."""
    runs = [cls.type_name() for cls in RunEvent.__subclasses__()]  # most of a log, never entries
    view, after = AuditView(), 0
    while batch := await conn.fetch(
            "SELECT position, stream, version, type, type_version, data FROM events "
            "WHERE position > $1 AND type <> ALL($2::text[]) ORDER BY position LIMIT $3", after, runs, FILL_BATCH):
        entries = _Entries()
        for position, stream, version, type_name, type_version, data in batch:
            event = decode(type_name, type_version, json.loads(data))
            view.apply(Recorded(position, stream, version, event), entries)  # type: ignore[arg-type]
        if entries.entries:
            await put_audit(conn, entries.entries)
        after = batch[-1][0]
