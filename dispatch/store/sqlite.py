"""The embedded event log and blob store on SQLite (WAL).

Writes run on the event loop's own connection. A commit in WAL mode without fsync takes tens of
microseconds, less than handing the work to a thread and back (measured: ~110 us a hop, plus GIL
contention with the loop); the fsync-heavy part, checkpointing the WAL into the database, runs on
the reader thread instead. Appends made while the loop is busy wait for the next loop iteration
and are committed together in one transaction (group commit), so a burst of N appends costs a
handful of commits, not N. Scans (lists, log reads) run on the reader thread."""
import asyncio
import hashlib
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from dispatch.schemas.envelope import Event, decode, unrelayed_types

from . import sqlite_audit, sqlite_runs
from .ports import ConcurrencyConflict, Recorded
from .watermark import Watermark

# Every table an append touches is one B-tree page write in the WAL per commit: positions are
# plain rowids (events are never deleted, so the next is always the highest plus one, without
# AUTOINCREMENT's sqlite_sequence row), and tracking is keyed by its name alone (WITHOUT ROWID).
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL, version INTEGER NOT NULL,
    type TEXT NOT NULL, type_version INTEGER NOT NULL, data TEXT NOT NULL,
    UNIQUE (stream, version));
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tracking (name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS resources (
    org TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (org, kind, name));
CREATE TABLE IF NOT EXISTS runs (
    org TEXT NOT NULL, name TEXT NOT NULL, function TEXT NOT NULL,
    modified INTEGER NOT NULL, body TEXT NOT NULL, recorded INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (org, name));
CREATE INDEX IF NOT EXISTS runs_by_function ON runs (org, function, modified);
""" + sqlite_runs.INDEXES + sqlite_audit.SCHEMA


CHECKPOINT_SECONDS = 1.0


def _connect(path: Path, checkpoints: bool = True) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    if not checkpoints:
        db.execute("PRAGMA wal_autocheckpoint=0")
    return db


def _record(row: tuple) -> Recorded:
    position, stream, version, type_name, type_version, data = row
    event = decode(type_name, type_version, json.loads(data))
    return Recorded(position, stream, version, event)  # type: ignore[arg-type]


def _conflict(stream: str, current: int, expected: int) -> ConcurrencyConflict:
    return ConcurrencyConflict(f"stream {stream} is at version {current}, expected {expected}")


class SQLiteStore:
    def __init__(self, path: Path):
        self.path = path
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        self._pending: list[tuple[str, int, list[Event], asyncio.Future]] = []
        self._flush_scheduled = False
        self._head = Watermark()
        self.commits = 0
        # Called inside each append transaction with what it recorded, and once it committed:
        # inline projections and the relay hang here.
        self.in_transaction: list[Callable[[sqlite3.Connection, list[Recorded]], None]] = []
        self.committed: list[Callable[[list[Recorded]], None]] = []
        self._write_db: sqlite3.Connection | None = None
        self._read_db: sqlite3.Connection | None = None
        self._checkpoints: asyncio.Task | None = None

    @property
    def write_db(self) -> sqlite3.Connection:
        if self._write_db is None:
            raise RuntimeError("SQLiteStore is not started")
        return self._write_db

    @property
    def read_db(self) -> sqlite3.Connection:
        if self._read_db is None:
            raise RuntimeError("SQLiteStore is not started")
        return self._read_db

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_db = _connect(self.path, checkpoints=False)
        sqlite_audit.upgrade(self._write_db)
        sqlite_runs.upgrade(self._write_db)
        self._write_db.executescript(SCHEMA)
        self._read_db = await self.read(lambda: _connect(self.path))
        self._head.advance(await self.last_position())
        self._checkpoints = asyncio.ensure_future(self._checkpoint_forever())

    async def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            await asyncio.gather(self._checkpoints, return_exceptions=True)
        if self._pending:
            self._flush()
        if self._read_db is not None:
            await self.read(lambda: self.read_db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
            await self.read(self.read_db.close)
        if self._write_db is not None:
            self._write_db.close()
        self._reader.shutdown(wait=True)

    async def _checkpoint_forever(self) -> None:
        done = self.commits
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            if self.commits != done:
                done = self.commits
                await self.read(lambda: self.read_db.execute("PRAGMA wal_checkpoint(PASSIVE)"))

    async def write(self, fn: Callable[[], Any]) -> Any:
        """Run a write on the loop's connection (see the module docstring)."""
        return fn()

    async def read(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn)

    # -- event log -------------------------------------------------------------------------------
    async def append(self, stream: str, expected_version: int, events: list[Event]) -> int:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((stream, expected_version, events, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        try:
            outcomes = self._commit(batch)
        except Exception as error:  # the whole transaction failed: every waiter learns it
            outcomes = [error] * len(batch)
        recorded = [r for outcome in outcomes if not isinstance(outcome, Exception) for r in outcome]
        if recorded:
            self._head.advance(recorded[-1].position)
            for listener in self.committed:
                listener(recorded)
        for (_, _, _, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome[-1].position if outcome else self._head.value)

    def _commit(self, batch: list) -> list[list[Recorded] | Exception]:
        db = self.write_db
        outcomes: list[list[Recorded] | Exception] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for stream, expected, events, _ in batch:
                outcomes.append(self._append_one(db, stream, expected, events))
            recorded = [r for outcome in outcomes if not isinstance(outcome, Exception) for r in outcome]
            for hook in self.in_transaction:
                hook(db, recorded)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.commits += 1
        return outcomes

    @staticmethod
    def _append_one(db: sqlite3.Connection, stream: str, expected: int,
                    events: list[Event]) -> list[Recorded] | Exception:
        # A new stream (most appends: every run is one) needs no lookup: its first version is 1,
        # and the unique (stream, version) index refuses it when the stream already exists.
        if expected != 0:
            (current,) = db.execute("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?",
                                    (stream,)).fetchone()
            if current != expected:
                return _conflict(stream, current, expected)
        recorded = []
        for version, event in enumerate(events, start=expected + 1):
            try:
                cursor = db.execute(
                    "INSERT INTO events (stream, version, type, type_version, data) VALUES (?, ?, ?, ?, ?)",
                    (stream, version, event.type_name(), event.version, event.model_dump_json()))
            except sqlite3.IntegrityError:
                (current,) = db.execute("SELECT MAX(version) FROM events WHERE stream = ?", (stream,)).fetchone()
                return _conflict(stream, current, expected)
            assert cursor.lastrowid is not None  # an INSERT into a rowid table always sets it
            recorded.append(Recorded(cursor.lastrowid, stream, version, event))
        return recorded

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

    async def read_relayed(self, after: int, limit: int = 1000) -> tuple[list[Recorded], int]:
        skipped = unrelayed_types()
        marks = ",".join("?" * len(skipped))

        # One pass over the window; the data of the events left in the log is not read.
        rows = await self.read(lambda: self.read_db.execute(
            f"SELECT position, stream, version, type, type_version, "
            f"CASE WHEN type IN ({marks}) THEN NULL ELSE data END FROM events "
            "WHERE position > ? ORDER BY position LIMIT ?", (*skipped, after, limit)).fetchall())
        last = rows[-1][0] if rows else after
        return [_record(row) for row in rows if row[5] is not None], last

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
