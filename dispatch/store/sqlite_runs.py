"""Runs on SQLite beyond their table: the position each run was first recorded at (the order
pages go in), retention, and the one-time upgrade of a database made before either."""
import sqlite3
from typing import Any

from dispatch.schemas.wirejson import dumps_text

# Pages walk an organization's runs, or a function's, by position; retention finds old runs by age.
INDEXES = """
CREATE INDEX IF NOT EXISTS runs_by_position ON runs (org, recorded);
CREATE INDEX IF NOT EXISTS runs_of_function_by_position ON runs (org, function, recorded);
CREATE INDEX IF NOT EXISTS runs_by_age ON runs (modified);
"""
# INSERT OR REPLACE gives a rewritten run a new rowid (list_runs orders ties by it); the position
# it was first recorded at is carried over.
PUT = """INSERT OR REPLACE INTO runs (org, name, function, modified, recorded, body)
VALUES (?, ?, ?, ?, COALESCE((SELECT recorded FROM runs WHERE org = ? AND name = ?), ?), ?)"""
FINISHED = "json_extract(body, '$.status') IN ('READY', 'ERROR')"
PRUNE = f"DELETE FROM runs WHERE rowid IN (SELECT rowid FROM runs WHERE modified < ? AND {FINISHED} LIMIT ?)"
FIRST_POSITIONS = """UPDATE runs SET recorded = COALESCE(
    (SELECT MIN(position) FROM events WHERE stream = 'Run:' || runs.org || ':' || runs.name), 0)"""


def put_run(db: sqlite3.Connection, org: str, body: dict[str, Any], position: int) -> None:
    name = body["name"]
    db.execute(PUT, (org, name, body["functionName"], body.get("modifiedTime", 0), org, name, position,
                     dumps_text(body)))


def page_query(org: str, function: str | None, since: int | None, before: int | None,
               limit: int) -> tuple[str, tuple]:
    """The SELECT of Views.page_runs, with only the conditions asked for (so an index serves it)."""
    sql = "SELECT recorded, body FROM runs WHERE org = ?"
    args: list[str | int] = [org]
    for condition, value in (("function = ?", function), ("modified > ?", since), ("recorded < ?", before)):
        if value is not None:
            sql, args = f"{sql} AND {condition}", [*args, value]
    return sql + " ORDER BY recorded DESC LIMIT ?", (*args, limit)


def upgrade(db: sqlite3.Connection) -> None:
    """Give the runs of a database made before paging the position they were first recorded at,
    read from the log, in one transaction."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    if not columns or "recorded" in columns:
        return  # a new database (the schema makes the column) or one already upgraded
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE runs ADD COLUMN recorded INTEGER NOT NULL DEFAULT 0")
        db.execute(FIRST_POSITIONS)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
