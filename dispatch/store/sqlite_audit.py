"""The audit trail on SQLite: its table, its writes and query, and the one-time fill of a
database made by a release without it."""
import json
import sqlite3
from typing import Any

from dispatch.schemas.envelope import decode
from dispatch.schemas.events import RunEvent
from dispatch.schemas.wirejson import dumps_text

from .ports import Recorded
from .projections import AuditView

# Listing pages through an organization by position; a subject's entries have an index of their own.
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    position INTEGER PRIMARY KEY, org TEXT NOT NULL, subject TEXT NOT NULL, resource TEXT NOT NULL,
    name TEXT NOT NULL, time REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_org ON audit (org, position);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit (org, subject, position);
"""
PUT = "INSERT OR REPLACE INTO audit (position, org, subject, resource, name, time, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
FILL_BATCH = 1000


def put_audit(db: sqlite3.Connection, entry: dict[str, Any]) -> None:
    db.execute(PUT, (entry["position"], entry["organization"], entry["subject"], entry["resource"], entry["name"],
                     entry["time"], dumps_text(entry)))


def audit_query(organization: str | None, subject: str | None, resource: str | None, name: str | None,
                since: float | None, after: int, limit: int) -> tuple[str, tuple]:
    """The SELECT of Views.list_audit, with only the conditions asked for (so an index serves it)."""
    sql = "SELECT body FROM audit WHERE position > ?"
    args: list[str | float] = [after]
    for column, value in (("org", organization), ("subject", subject), ("resource", resource), ("name", name)):
        if value is not None:
            sql, args = f"{sql} AND {column} = ?", [*args, value]
    if since is not None:
        sql, args = sql + " AND time >= ?", [*args, since]
    return sql + " ORDER BY position LIMIT ?", (*args, limit)


class _Entries:
    """The ViewTransaction the fill gives AuditView: it only writes entries."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def put_audit(self, entry: dict[str, Any]) -> None:
        put_audit(self.db, entry)


def upgrade(db: sqlite3.Connection) -> None:
    """Give a database made before the audit trail its table, filled from the log so far, in one
    transaction: the trail of an upgraded installation starts at its first event. Later events
    reach it through the read models' projection."""
    if not _lacks_audit(db):
        return  # a new database (the schema makes the table) or one already upgraded
    db.execute("BEGIN IMMEDIATE")
    try:
        if _lacks_audit(db):  # checked again under the write lock
            for statement in filter(str.strip, SCHEMA.split(";")):
                db.execute(statement)
            _fill(db)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _lacks_audit(db: sqlite3.Connection) -> bool:
    tables = {name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('events', 'audit')")}
    return tables == {"events"}


def _fill(db: sqlite3.Connection) -> None:
    # Runs are most of a log and never audit entries: they are not even decoded.
    runs = [cls.type_name() for cls in RunEvent.__subclasses__()]
    marks = ",".join("?" * len(runs))
    view, entries, after = AuditView(), _Entries(db), 0
    while batch := db.execute(
            "SELECT position, stream, version, type, type_version, data FROM events "
            f"WHERE position > ? AND type NOT IN ({marks}) ORDER BY position LIMIT ?",
            (after, *runs, FILL_BATCH)).fetchall():
        for position, stream, version, type_name, type_version, data in batch:
            event = decode(type_name, type_version, json.loads(data))
            view.apply(Recorded(position, stream, version, event), entries)  # type: ignore[arg-type]
        after = batch[-1][0]
