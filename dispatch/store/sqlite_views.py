"""Read models on SQLite: resources by (organization, kind, name) and runs by function."""
import json
import sqlite3
from typing import Any

from .ports import Recorded
from .sqlite import SQLiteStore


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def get_resource(self, org: str, kind: str, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM resources WHERE org = ? AND kind = ? AND name = ?",
                              (org, kind, name)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_resource(self, org: str, kind: str, name: str, body: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO resources (org, kind, name, body) VALUES (?, ?, ?, ?)",
                        (org, kind, name, json.dumps(body)))

    def delete_resource(self, org: str, kind: str, name: str) -> None:
        self.db.execute("DELETE FROM resources WHERE org = ? AND kind = ? AND name = ?", (org, kind, name))

    def put_run(self, org: str, body: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO runs (org, name, function, modified, body) VALUES (?, ?, ?, ?, ?)",
                        (org, body["name"], body["functionName"], body.get("modifiedTime", 0), json.dumps(body)))

    def delete_runs(self, org: str, function: str) -> None:
        self.db.execute("DELETE FROM runs WHERE org = ? AND function = ?", (org, function))


class SQLiteViews:
    def __init__(self, store: SQLiteStore):
        self.store = store

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.store.read_db.execute(sql, args).fetchall()

    async def get_resource(self, org: str, kind: str, name: str) -> dict[str, Any] | None:
        rows = await self.store.read(lambda: self._query(
            "SELECT body FROM resources WHERE org = ? AND kind = ? AND name = ?", (org, kind, name)))
        return json.loads(rows[0][0]) if rows else None

    async def list_resources(self, org: str, kind: str) -> list[dict[str, Any]]:
        rows = await self.store.read(lambda: self._query(
            "SELECT body FROM resources WHERE org = ? AND kind = ? ORDER BY name", (org, kind)))
        return [json.loads(body) for (body,) in rows]

    async def list_all(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.store.read(lambda: self._query(
            "SELECT org, body FROM resources WHERE kind = ? ORDER BY org, name", (kind,)))
        return [(org, json.loads(body)) for org, body in rows]

    async def get_run(self, org: str, name: str) -> dict[str, Any] | None:
        rows = await self.store.read(lambda: self._query(
            "SELECT body FROM runs WHERE org = ? AND name = ?", (org, name)))
        return json.loads(rows[0][0]) if rows else None

    async def list_runs(self, org: str, function: str | None, since: int | None) -> list[dict[str, Any]]:
        sql, args = "SELECT body FROM runs WHERE org = ?", [org]
        if function is not None:
            sql, args = sql + " AND function = ?", args + [function]
        if since is not None:
            sql, args = sql + " AND modified > ?", args + [since]
        rows = await self.store.read(lambda: self._query(sql + " ORDER BY modified, rowid", tuple(args)))
        return [json.loads(body) for (body,) in rows]

    async def tracking(self, name: str) -> int:
        rows = await self.store.read(lambda: self._query("SELECT position FROM tracking WHERE name = ?", (name,)))
        return rows[0][0] if rows else 0

    async def set_tracking(self, name: str, position: int) -> None:
        await self.store.write(lambda: self.store.write_db.execute(
            "INSERT OR REPLACE INTO tracking (name, position) VALUES (?, ?)", (name, position)))

    async def apply(self, name: str, batch: list[Recorded], projection: Any) -> None:
        await self.store.write(lambda: self._apply(name, batch, projection))

    def _apply(self, name: str, batch: list[Recorded], projection: Any) -> None:
        db = self.store.write_db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT position FROM tracking WHERE name = ?", (name,)).fetchone()
            done = row[0] if row else 0
            tx = _Transaction(db)
            for recorded in batch:
                if recorded.position > done:
                    projection.apply(recorded, tx)
                    done = recorded.position
            db.execute("INSERT OR REPLACE INTO tracking (name, position) VALUES (?, ?)", (name, done))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def reset(self, name: str) -> None:
        def empty() -> None:
            db = self.store.write_db
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM resources")
            db.execute("DELETE FROM runs")
            db.execute("INSERT OR REPLACE INTO tracking (name, position) VALUES (?, 0)", (name,))
            db.execute("COMMIT")

        await self.store.write(empty)

    async def dump(self) -> dict[str, list]:
        def read() -> dict[str, list]:
            return {
                "resources": self._query("SELECT org, kind, name, body FROM resources ORDER BY org, kind, name"),
                "runs": self._query("SELECT org, name, function, modified, body FROM runs ORDER BY org, name"),
            }

        return await self.store.read(read)
