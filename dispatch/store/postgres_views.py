"""Read models on PostgreSQL: the same tables as SQLite's (resources, runs, audit, tracking), in
the store's schema.

Projections are synchronous and asyncpg is not, so a projection runs against a unit of work:
before a batch is projected, every resource row its events touch is read in one query; the
projection reads from those rows and from its own earlier writes, and its writes are flushed, one
statement per kind of write, in the transaction that also moves the tracking position. Ordering
text with sorts names byte-wise, as SQLite does."""
import json
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from dispatch.schemas.events import ResourceEvent
from dispatch.schemas.wirejson import dumps_text

from .ports import Recorded
from .postgres import SELECT_EVENTS, PostgresStore, recorded_from
from .postgres_audit import audit_query, put_audit

Key = tuple[str, str, str]

LOCK_TRACKING = """INSERT INTO tracking (name, position) VALUES ($1, 0)
ON CONFLICT (name) DO UPDATE SET position = tracking.position RETURNING position"""
# Moves the position and returns the one it held, in one round trip. FOR UPDATE reads the latest
# committed position, not the statement's snapshot; joining `old` makes it run before the update.
ADVANCE_TRACKING = """WITH old AS (SELECT position FROM tracking WHERE name = $1 FOR UPDATE)
UPDATE tracking t SET position = GREATEST(old.position, $2) FROM old WHERE t.name = $1 RETURNING old.position"""
MOVE_TRACKING = "UPDATE tracking SET position = $2 WHERE name = $1"
PREFETCH = """SELECT org, kind, name, body FROM resources
WHERE (org, kind, name) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))"""
PUT_RESOURCES = """INSERT INTO resources (org, kind, name, body)
SELECT o, k, n, b::json FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(o, k, n, b)
ON CONFLICT (org, kind, name) DO UPDATE SET body = EXCLUDED.body"""
DELETE_RESOURCES = """DELETE FROM resources
WHERE (org, kind, name) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))"""
DELETE_RUNS = "DELETE FROM runs WHERE (org, function) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
# A rewritten run moves to the end of its millisecond, as SQLite's INSERT OR REPLACE gives it a new rowid.
# A run keeps the position it was first recorded at (`recorded`), the order of its pages.
PUT_RUNS = """INSERT INTO runs (org, name, function, modified, recorded, body)
SELECT o, n, f, m, p, b::json
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[]) AS u(o, n, f, m, p, b)
ON CONFLICT (org, name) DO UPDATE
SET function = EXCLUDED.function, modified = EXCLUDED.modified, body = EXCLUDED.body, seq = DEFAULT"""
# In slices, each a short statement well within the command timeout.
PRUNE_RUNS = """DELETE FROM runs WHERE ctid IN (SELECT ctid FROM runs
WHERE modified < $1 AND body::json->>'status' IN ('READY', 'ERROR') LIMIT $2)"""
PRUNE_SLICE = 5000


def _page_query(org: str, function: str | None, since: int | None, before: int | None,
                limit: int) -> tuple[str, list]:
    """The SELECT of page_runs, with only the conditions asked for: a prepared statement with
    `$n IS NULL OR …` would get a generic plan that no index serves."""
    conditions = ["org = $1"]
    args: list[str | int] = [org]
    for condition, value in (("function = ${}", function), ("modified > ${}", since), ("recorded < ${}", before)):
        if value is not None:
            args.append(value)
            conditions.append(condition.format(len(args)))
    args.append(limit)
    where = " AND ".join(conditions)
    return f"SELECT recorded, body FROM runs WHERE {where} ORDER BY recorded DESC LIMIT ${len(args)}", args


def _transposed(rows: list[tuple]) -> list[list]:
    return [list(column) for column in zip(*rows, strict=True)]


class _UnitOfWork:
    """The ViewTransaction a projection sees: reads from prefetched rows, buffers its writes."""

    def __init__(self, rows: dict[Key, dict[str, Any] | None]):
        self.rows = rows
        self.resources: dict[Key, dict[str, Any] | None] = {}
        self.runs: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}
        self.run_deletes: set[tuple[str, str]] = set()
        self.audit: list[dict[str, Any]] = []

    def get_resource(self, org: str, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return self.rows[(org, kind, name)]
        except KeyError:
            raise LookupError(f"resource {kind} {org}/{name} was not read before projecting") from None

    def put_resource(self, org: str, kind: str, name: str, body: dict[str, Any]) -> None:
        self.rows[(org, kind, name)] = self.resources[(org, kind, name)] = body

    def delete_resource(self, org: str, kind: str, name: str) -> None:
        self.rows[(org, kind, name)] = self.resources[(org, kind, name)] = None

    def put_run(self, org: str, body: dict[str, Any], position: int) -> None:
        _, first = self.runs.pop((org, body["name"]), (None, position))  # the last write goes last, as in SQLite
        self.runs[(org, body["name"])] = (body, first)

    def delete_runs(self, org: str, function: str) -> None:
        # Deletes are flushed before puts: drop the puts they would otherwise undo.
        self.runs = {key: run for key, run in self.runs.items()
                     if not (key[0] == org and run[0]["functionName"] == function)}
        self.run_deletes.add((org, function))

    def put_audit(self, entry: dict[str, Any]) -> None:
        self.audit.append(entry)

    async def flush(self, conn: PoolConnectionProxy) -> None:
        puts = [(*key, dumps_text(body)) for key, body in self.resources.items() if body is not None]
        deletes = [key for key, body in self.resources.items() if body is None]
        if puts:
            await conn.execute(PUT_RESOURCES, *_transposed(puts))
        if deletes:
            await conn.execute(DELETE_RESOURCES, *_transposed(deletes))
        if self.run_deletes:
            await conn.execute(DELETE_RUNS, *_transposed(sorted(self.run_deletes)))
        if self.runs:
            await conn.execute(PUT_RUNS, *_transposed([
                (org, name, run["functionName"], int(run.get("modifiedTime") or 0), first, dumps_text(run))
                for (org, name), (run, first) in self.runs.items()]))
        if self.audit:
            await put_audit(conn, self.audit)


async def _prefetch(conn: PoolConnectionProxy, batch: list[Recorded]) -> dict[Key, dict[str, Any] | None]:
    keys = {(r.event.organization, r.event.kind, r.event.name)
            for r in batch if isinstance(r.event, ResourceEvent)}
    rows: dict[Key, dict[str, Any] | None] = dict.fromkeys(keys)
    if keys:
        for org, kind, name, body in await conn.fetch(PREFETCH, *_transposed(list(keys))):
            rows[(org, kind, name)] = json.loads(body)
    return rows


async def _project(conn: PoolConnectionProxy, done: int, batch: list[Recorded], projection: Any) -> int:
    """Apply what `batch` holds past `done`; return the last position applied (or `done`).
    The caller holds the tracking row's lock and moves it."""
    todo = [recorded for recorded in batch if recorded.position > done]
    if not todo:
        return done
    work = _UnitOfWork(await _prefetch(conn, todo))
    for recorded in todo:
        projection.apply(recorded, work)
    await work.flush(conn)
    return todo[-1].position


class PostgresViews:
    def __init__(self, store: PostgresStore):
        self.store = store

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.store.connection() as conn:
            return await conn.fetch(sql, *args)

    async def _value(self, sql: str, *args: Any) -> Any:
        async with self.store.connection() as conn:
            return await conn.fetchval(sql, *args)

    async def get_resource(self, org: str, kind: str, name: str) -> dict[str, Any] | None:
        body = await self._value("SELECT body FROM resources WHERE org = $1 AND kind = $2 AND name = $3",
                                 org, kind, name)
        return None if body is None else json.loads(body)

    async def list_resources(self, org: str, kind: str) -> list[dict[str, Any]]:
        rows = await self._fetch('SELECT body FROM resources WHERE org = $1 AND kind = $2 ORDER BY name',
                                 org, kind)
        return [json.loads(body) for (body,) in rows]

    async def list_all(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        rows = await self._fetch(
            'SELECT org, body FROM resources WHERE kind = $1 ORDER BY org, name', kind)
        return [(org, json.loads(body)) for org, body in rows]

    async def get_run(self, org: str, name: str) -> dict[str, Any] | None:
        body = await self._value("SELECT body FROM runs WHERE org = $1 AND name = $2", org, name)
        return None if body is None else json.loads(body)

    async def list_runs(self, org: str, function: str | None, since: int | None) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT body FROM runs WHERE org = $1 AND ($2::text IS NULL OR function = $2) "
            "AND ($3::bigint IS NULL OR modified > $3) ORDER BY modified, seq", org, function, since)
        return [json.loads(body) for (body,) in rows]

    async def page_runs(self, org: str, function: str | None, since: int | None, before: int | None,
                        limit: int) -> list[tuple[int, dict[str, Any]]]:
        sql, args = _page_query(org, function, since, before, limit)
        return [(recorded, json.loads(body)) for recorded, body in await self._fetch(sql, *args)]

    async def prune_runs(self, older_than: int) -> int:
        dropped = 0
        while True:
            async with self.store.connection() as conn:
                deleted = int((await conn.execute(PRUNE_RUNS, older_than, PRUNE_SLICE)).split()[-1])
            dropped += deleted
            if deleted < PRUNE_SLICE:
                return dropped

    async def unfinished_runs(self) -> list[tuple[str, dict[str, Any]]]:
        rows = await self._fetch("SELECT org, body FROM runs"
                                 " WHERE body::json->>'status' IN ('INITIALIZED', 'CREATING') ORDER BY modified, seq")
        return [(org, json.loads(body)) for org, body in rows]

    async def list_audit(self, organization: str | None, subject: str | None = None, resource: str | None = None,
                         name: str | None = None, since: float | None = None, after: int = 0,
                         limit: int = 100) -> list[dict[str, Any]]:
        sql, args = audit_query(organization, subject, resource, name, since, after, limit)
        return [json.loads(body) for (body,) in await self._fetch(sql, *args)]

    async def tracking(self, name: str) -> int:
        return await self._value("SELECT COALESCE((SELECT position FROM tracking WHERE name = $1), 0)", name)

    async def set_tracking(self, name: str, position: int) -> None:
        async with self.store.connection() as conn:
            await conn.execute("INSERT INTO tracking (name, position) VALUES ($1, $2) "
                               "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position", name, position)

    async def apply(self, name: str, batch: list[Recorded], projection: Any) -> None:
        async with self.store.connection() as conn, conn.transaction():
            done = await conn.fetchval(LOCK_TRACKING, name)
            reached = await _project(conn, done, batch, projection)
            if reached != done:
                await conn.execute(MOVE_TRACKING, name, reached)

    def project_inline(self, name: str, projection: Any) -> None:
        """From now on, project every append inside its own transaction: the read models are
        current the moment an append returns. The caller has caught up first; should the log
        hold events past the tracking position that this process did not append (another
        process appending without projecting inline), they are projected first, so none is
        ever skipped."""
        async def project(conn: PoolConnectionProxy, recorded: list[Recorded]) -> None:
            done = await conn.fetchval(ADVANCE_TRACKING, name, recorded[-1].position)
            if done is None:  # the first projection under this name: create its row
                done = await conn.fetchval(LOCK_TRACKING, name)
                await conn.execute(MOVE_TRACKING, name, recorded[-1].position)
            first = recorded[0].position
            if done < first - 1:
                rows = await conn.fetch(f"{SELECT_EVENTS} WHERE position > $1 AND position < $2 ORDER BY position",
                                        done, first)
                recorded = [recorded_from(row) for row in rows] + recorded
            await _project(conn, done, recorded, projection)

        self.store.in_transaction.append(project)

    async def reset(self, name: str) -> None:
        async with self.store.connection() as conn, conn.transaction():
            await conn.fetchval(LOCK_TRACKING, name)
            await conn.execute("TRUNCATE resources, runs, audit")  # a rebuild: faster than DELETE on large tables
            await conn.execute(MOVE_TRACKING, name, 0)

    async def dump(self) -> dict[str, list]:
        resources = await self._fetch('SELECT org, kind, name, body FROM resources '
                                      'ORDER BY org, kind, name')
        runs = await self._fetch('SELECT org, name, function, modified, recorded, body FROM runs '
                                 'ORDER BY org, name')
        audit = await self._fetch('SELECT position, org, subject, resource, name, time, body FROM audit '
                                  'ORDER BY position')
        return {"resources": [(*row[:3], json.loads(row[3])) for row in resources],
                "runs": [(*row[:5], json.loads(row[5])) for row in runs],
                "audit": [(*row[:6], json.loads(row[6])) for row in audit]}
