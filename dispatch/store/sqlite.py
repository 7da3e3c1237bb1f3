"""The embedded event log and blob store on SQLite (WAL).

All writes go through one writer thread; appends that arrive while a transaction is being written
wait and are committed together in the next one (group commit), so a burst of N appends costs a
handful of commits, not N."""
import asyncio
import hashlib
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from dispatch.schemas.envelope import Event, decode

from .ports import ConcurrencyConflict, Recorded
from .watermark import Watermark

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL, version INTEGER NOT NULL,
    type TEXT NOT NULL, type_version INTEGER NOT NULL, data TEXT NOT NULL,
    UNIQUE (stream, version));
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tracking (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    org TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (org, kind, name));
CREATE TABLE IF NOT EXISTS runs (
    org TEXT NOT NULL, name TEXT NOT NULL, function TEXT NOT NULL,
    modified INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (org, name));
CREATE INDEX IF NOT EXISTS runs_by_function ON runs (org, function, modified);
"""


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def _record(row: tuple) -> Recorded:
    position, stream, version, type_name, type_version, data = row
    event = decode(type_name, type_version, json.loads(data))
    return Recorded(position, stream, version, event)  # type: ignore[arg-type]


class SQLiteStore:
    def __init__(self, path: Path):
        self.path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        self._pending: list[tuple[str, int, list[Event], asyncio.Future]] = []
        self._flushing = False
        self._head = Watermark()
        self.commits = 0
        self.write_db: sqlite3.Connection | None = None
        self.read_db: sqlite3.Connection | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.write_db = await self.write(lambda: _connect(self.path))
        await self.write(lambda: self.write_db.executescript(SCHEMA))
        self.read_db = await self.read(lambda: _connect(self.path))
        self._head.advance(await self.last_position())

    async def close(self) -> None:
        # Each connection is closed on its own thread, after the work already queued there.
        if self.write_db is not None:
            await self.write(self.write_db.close)
        if self.read_db is not None:
            await self.read(self.read_db.close)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    async def write(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn)

    async def read(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn)

    # -- event log -------------------------------------------------------------------------------
    async def append(self, stream: str, expected_version: int, events: list[Event]) -> int:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((stream, expected_version, events, future))
        if not self._flushing:
            self._flushing = True
            asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    outcomes = await self.write(lambda: self._commit(batch))
                except Exception as error:  # the whole transaction failed: every waiter learns it
                    outcomes = [error] * len(batch)
                for (_, _, _, future), outcome in zip(batch, outcomes):
                    if future.done():
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                        self._head.advance(outcome)
        finally:
            self._flushing = False

    def _commit(self, batch: list) -> list[int | Exception]:
        db = self.write_db
        outcomes: list[int | Exception] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for stream, expected, events, _ in batch:
                outcomes.append(self._append_one(db, stream, expected, events))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.commits += 1
        return outcomes

    @staticmethod
    def _append_one(db: sqlite3.Connection, stream: str, expected: int, events: list[Event]) -> int | Exception:
        (current,) = db.execute("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?", (stream,)).fetchone()
        if current != expected:
            return ConcurrencyConflict(f"stream {stream} is at version {current}, expected {expected}")
        position = 0
        for offset, event in enumerate(events, start=1):
            cursor = db.execute(
                "INSERT INTO events (stream, version, type, type_version, data) VALUES (?, ?, ?, ?, ?)",
                (stream, expected + offset, event.type_name(), event.version, event.model_dump_json()))
            position = cursor.lastrowid
        return position

    async def read_stream(self, stream: str) -> list[Recorded]:
        rows = await self.read(lambda: self.read_db.execute(
            "SELECT position, stream, version, type, type_version, data FROM events "
            "WHERE stream = ? ORDER BY version", (stream,)).fetchall())
        return [_record(row) for row in rows]

    async def read_all(self, after: int, limit: int = 1000) -> list[Recorded]:
        rows = await self.read(lambda: self.read_db.execute(
            "SELECT position, stream, version, type, type_version, data FROM events "
            "WHERE position > ? ORDER BY position LIMIT ?", (after, limit)).fetchall())
        return [_record(row) for row in rows]

    async def last_position(self) -> int:
        row = await self.read(lambda: self.read_db.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone())
        return row[0]

    async def wait_for_append(self, after: int, timeout: float) -> None:
        try:
            await self._head.reach(after + 1, timeout)
        except asyncio.TimeoutError:
            pass

    # -- blobs -----------------------------------------------------------------------------------
    async def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        await self.write(lambda: self.write_db.execute(
            "INSERT OR IGNORE INTO blobs (digest, data) VALUES (?, ?)", (digest, data)))
        return digest

    async def get_blob(self, digest: str) -> bytes | None:
        row = await self.read(lambda: self.read_db.execute(
            "SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone())
        return None if row is None else bytes(row[0])
