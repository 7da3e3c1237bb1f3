"""Read models on SQLite: resources by (organization, kind, name), runs by function and the
audit trail by position."""
import asyncio
import json
import sqlite3
from typing import Any

from dispatch.schemas.wirejson import dumps_text

from . import sqlite_runs
from .ports import Recorded
from .sqlite import SQLiteStore
from .sqlite_audit import audit_query, put_audit

PRUNE_SLICE = 1000


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def get_resource(self, org: str, kind: str, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM resources WHERE org = ? AND kind = ? AND name = ?",
                              (org, kind, name)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_resource(self, org: str, kind: str, name: str, body: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO resources (org, kind, name, body) VALUES (?, ?, ?, ?)",
                        (org, kind, name, dumps_text(body)))

    def delete_resource(self, org: str, kind: str, name: str) -> None:
        self.db.execute("DELETE FROM resources WHERE org = ? AND kind = ? AND name = ?", (org, kind, name))

    def put_run(self, org: str, body: dict[str, Any], position: int) -> None:
        sqlite_runs.put_run(self.db, org, body, position)

    def delete_runs(self, org: str, function: str) -> None:
        self.db.execute("DELETE FROM runs WHERE org = ? AND function = ?", (org, function))

    def put_audit(self, entry: dict[str, Any]) -> None:
        put_audit(self.db, entry)


class SQLiteViews:
    """Lookups by primary key and writes run on the event loop's connection: they take
    microseconds, far less than a hop to a thread. Scans go to the reader thread."""

    def __init__(self, store: SQLiteStore):
        self.store = store

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.store.read_db.execute(sql, args).fetchall()

    def _lookup(self, sql: str, args: tuple) -> tuple | None:
        return self.store.write_db.execute(sql, args).fetchone()

    async def get_resource(self, org: str, kind: str, name: str) -> dict[str, Any] | None:
        row = self._lookup("SELECT body FROM resources WHERE org = ? AND kind = ? AND name = ?", (org, kind, name))
        return None if row is None else json.loads(row[0])

    async def list_resources(self, org: str, kind: str) -> list[dict[str, Any]]:
        rows = await self.store.read(lambda: self._query(
            "SELECT body FROM resources WHERE org = ? AND kind = ? ORDER BY name", (org, kind)))
        return [json.loads(body) for (body,) in rows]

    async def list_all(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.store.read(lambda: self._query(
            "SELECT org, body FROM resources WHERE kind = ? ORDER BY org, name", (kind,)))
        return [(org, json.loads(body)) for org, body in rows]

    async def get_run(self, org: str, name: str) -> dict[str, Any] | None:
        row = self._lookup("SELECT body FROM runs WHERE org = ? AND name = ?", (org, name))
        return None if row is None else json.loads(row[0])

    async def list_runs(self, org: str, function: str | None, since: int | None) -> list[dict[str, Any]]:
        sql = "SELECT body FROM runs WHERE org = ?"
        args: list[str | int] = [org]
        if function is not None:
            sql, args = sql + " AND function = ?", args + [function]
        if since is not None:
            sql, args = sql + " AND modified > ?", args + [since]
        rows = await self.store.read(lambda: self._query(sql + " ORDER BY modified, rowid", tuple(args)))
        return [json.loads(body) for (body,) in rows]

    async def page_runs(self, org: str, function: str | None, since: int | None, before: int | None,
                        limit: int) -> list[tuple[int, dict[str, Any]]]:
        sql, args = sqlite_runs.page_query(org, function, since, before, limit)
        rows = await self.store.read(lambda: self._query(sql, args))
        return [(recorded, json.loads(body)) for recorded, body in rows]

    async def prune_runs(self, older_than: int) -> int:
        """In slices, each a short write on the loop's connection, so that appends go on meanwhile."""
        dropped = 0
        while True:
            deleted = await self.store.write(lambda: self.store.write_db.execute(
                sqlite_runs.PRUNE, (older_than, PRUNE_SLICE)).rowcount)
            dropped += deleted
            if deleted < PRUNE_SLICE:
                return dropped
            await asyncio.sleep(0)

    async def unfinished_runs(self) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.store.read(lambda: self._query(
            "SELECT org, body FROM runs WHERE json_extract(body, '$.status') IN ('INITIALIZED', 'CREATING') "
            "ORDER BY modified"))
        return [(org, json.loads(body)) for org, body in rows]

    async def list_audit(self, organization: str | None, subject: str | None = None, resource: str | None = None,
                         name: str | None = None, since: float | None = None, after: int = 0,
                         limit: int = 100) -> list[dict[str, Any]]:
        sql, args = audit_query(organization, subject, resource, name, since, after, limit)
        rows = await self.store.read(lambda: self._query(sql, args))
        return [json.loads(body) for (body,) in rows]

    async def tracking(self, name: str) -> int:
        row = self._lookup("SELECT position FROM tracking WHERE name = ?", (name,))
        return 0 if row is None else row[0]

    async def set_tracking(self, name: str, position: int) -> None:
        await self.store.write(lambda: self.store.write_db.execute(
            "INSERT OR REPLACE INTO tracking (name, position) VALUES (?, ?)", (name, position)))

    async def apply(self, name: str, batch: list[Recorded], projection: Any) -> None:
        await self.store.write(lambda: self._apply(name, batch, projection))

    def _apply(self, name: str, batch: list[Recorded], projection: Any) -> None:
        db = self.store.write_db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._project(db, name, batch, projection)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @staticmethod
    def _project(db: sqlite3.Connection, name: str, batch: list[Recorded], projection: Any) -> None:
        row = db.execute("SELECT position FROM tracking WHERE name = ?", (name,)).fetchone()
        done = row[0] if row else 0
        tx = _Transaction(db)
        for recorded in batch:
            if recorded.position > done:
                projection.apply(recorded, tx)
                done = recorded.position
        db.execute("INSERT OR REPLACE INTO tracking (name, position) VALUES (?, ?)", (name, done))

    def project_inline(self, name: str, projection: Any) -> None:
        """From now on, project every append inside its own transaction: the read models are
        current the moment an append returns. The caller has caught up first."""
        self.store.in_transaction.append(lambda db, recorded: self._project(db, name, recorded, projection))

    async def reset(self, name: str) -> None:
        def empty() -> None:
            db = self.store.write_db
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM resources")
            db.execute("DELETE FROM runs")
            db.execute("DELETE FROM audit")
            db.execute("INSERT OR REPLACE INTO tracking (name, position) VALUES (?, 0)", (name,))
            db.execute("COMMIT")

        await self.store.write(empty)

    async def dump(self) -> dict[str, list]:
        def read() -> dict[str, list]:
            return {
                "resources": self._query("SELECT org, kind, name, body FROM resources ORDER BY org, kind, name"),
                "runs": self._query("SELECT org, name, function, modified, recorded, body FROM runs "
                                    "ORDER BY org, name"),
                "audit": self._query("SELECT position, org, subject, resource, name, time, body FROM audit "
                                     "ORDER BY position"),
            }

        return await self.store.read(read)
