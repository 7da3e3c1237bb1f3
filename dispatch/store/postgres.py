"""The distributed event log and blob store on PostgreSQL (asyncpg).

Ordering. Followers read the log by position (`read_all(after)`), so position N+1 must never be
visible while N is not: a follower that saw N+1 would skip N forever. Every append transaction
therefore takes one transaction-scoped advisory lock (`pg_advisory_xact_lock`, keyed by the
schema) before it reads the head and numbers its events, and keeps it until it commits. Appends of
every process commit one after the other, in position order; PostgreSQL makes a commit visible
before it releases the transaction's locks, so the next appender reads the new head. A sequence
would not do: its numbers are taken before commit, a later number can commit first, and a
rollback leaves a hole. The lock costs little: group commit already keeps one append transaction
per process in flight, and one transaction carries hundreds of appends.

Group commit. Appends queue up; one writer task commits everything queued in one transaction,
and what arrives meanwhile goes into the next. Expected versions are enforced by the UNIQUE
(stream, version) constraint, and a conflicting append fails alone, not its batch (see
postgres_append.py). A batch costs three round trips: BEGIN and the lock, one INSERT, and NOTIFY
with COMMIT; hooks (inline projections) add theirs.

Followers. Each append transaction sends NOTIFY <schema>_events with its last position; a
dedicated connection LISTENs and wakes `wait_for_append` (see postgres_sessions.py).

Failures. Connecting and every command are bounded by `timeout`: an unreachable server raises
Unavailable, and the pool reconnects on next use. An append whose commit was cut off may have
been recorded or not; its caller's retry meets ConcurrencyConflict, reloads and decides again.

There is no `committed` hook, unlike SQLite: other processes append to the same log, and
listeners of this process's commits would miss theirs. Followers read the log instead."""
import asyncio
import hashlib
import json
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from dispatch.errors import Unavailable
from dispatch.schemas.envelope import Event, decode, unrelayed_types

from .ports import ConcurrencyConflict, Recorded
from .postgres_append import Batch, SeenVersions, insert_checked, insert_expected, outcomes, recorded
from .postgres_schema import checked, lock_key, migrate
from .postgres_sessions import Leadership, Listener
from .watermark import Watermark

SELECT_EVENTS = "SELECT position, stream, version, type, type_version, data FROM events"
# One row at least: the last position of the window, with the window's relayed events if any.
READ_RELAYED = """WITH window_ AS (
    SELECT position, stream, version, type, type_version, data FROM events
    WHERE position > $1 ORDER BY position LIMIT $2),
last AS (SELECT MAX(position) AS position FROM window_)
SELECT last.position, w.position, w.stream, w.version, w.type, w.type_version, w.data
FROM last LEFT JOIN window_ w ON w.type <> ALL($3::text[]) ORDER BY w.position"""

Hook = Callable[[PoolConnectionProxy, list[Recorded]], Awaitable[None]]


def recorded_from(row: Any) -> Recorded:
    position, stream, version, type_name, type_version, data = row
    return Recorded(position, stream, version, decode(type_name, type_version, json.loads(data)))  # type: ignore[arg-type]


def _unreachable(error: BaseException) -> bool:
    # A bare InterfaceError is "connection is closed"; its subclasses are usage errors.
    return (isinstance(error, (OSError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError))
            or type(error) is asyncpg.InterfaceError)


def unavailable(error: BaseException) -> Unavailable:
    why = "no answer in time" if isinstance(error, TimeoutError) else f"{type(error).__name__}: {error}"
    return Unavailable(f"the event store is unavailable: {why}")


@contextmanager
def reachable() -> Iterator[None]:
    """Turn a lost, refused or timed-out connection into Unavailable."""
    try:
        yield
    except Exception as error:
        if _unreachable(error):
            raise unavailable(error) from error
        raise


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset: pooled sessions never LISTEN, lock or SET, so skip the reset round trip."""


class PostgresStore:
    def __init__(self, dsn: str, schema: str = "dispatch", timeout: float = 5.0, pool_size: int = 8):
        self.dsn = dsn
        self.schema = checked(schema)
        self.timeout = timeout
        self.pool_size = pool_size
        self.pool: asyncpg.Pool | None = None
        self.commits = 0
        # Awaited inside each append transaction, on its connection, with what it recorded:
        # inline projections hang here.
        self.in_transaction: list[Hook] = []
        self._append_key = lock_key(f"{schema}:append")
        self._pending: list[tuple[str, int, list[Event], asyncio.Future]] = []
        self._writer: asyncio.Task | None = None
        self._head = Watermark()
        self._seen = SeenVersions()
        self._listener = Listener(self._connect, f"{schema}_events", self._head)
        self._listening: asyncio.Task | None = None
        self._leadership = Leadership(self._connect, schema)

    def _settings(self) -> dict[str, Any]:
        # The server ends a session whose client went silent: a writer that died inside its
        # transaction frees the append lock, and a dead leader its leader locks, within seconds.
        stall = str(int(max(10.0, 2 * self.timeout) * 1000))
        return {"timeout": self.timeout, "command_timeout": self.timeout,
                "server_settings": {"search_path": f'"{self.schema}"', "application_name": "dispatch",
                                    "idle_in_transaction_session_timeout": stall, "tcp_keepalives_idle": "10",
                                    "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}}

    async def _connect(self) -> asyncpg.Connection:
        with reachable():
            return await asyncpg.connect(self.dsn, **self._settings())

    async def start(self) -> None:
        with reachable():
            self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size,
                                                  reset=_keep_session, **self._settings())
        try:
            async with self.connection() as conn:
                await migrate(conn, self.schema)
        except BaseException:
            self.pool.terminate()
            self.pool = None
            raise
        self._listening = asyncio.ensure_future(self._listener.run())
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._listener.listening.wait(), self.timeout)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._listening is not None:
            self._listening.cancel()
            await asyncio.gather(self._listening, return_exceptions=True)
        await self._leadership.close()
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), self.timeout)
            except (asyncio.TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.pool.terminate()
            self.pool = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PoolConnectionProxy]:
        """A pooled connection; a failure to reach the server raises Unavailable."""
        if self.pool is None:
            raise Unavailable("the event store is unavailable: it is not started")
        with reachable():
            async with self.pool.acquire(timeout=self.timeout) as conn:
                yield conn

    # -- leader election ------------------------------------------------------------------------
    async def try_lead(self, name: str) -> bool:
        """Lead `name` if no other process does; see postgres_sessions.Leadership."""
        return await self._leadership.try_lead(name)

    async def wait_to_lead(self, name: str, poll: float = 1.0) -> None:
        """Return once this store leads `name`, retrying every `poll` seconds until then."""
        await self._leadership.wait_to_lead(name, poll)

    def leads(self, name: str) -> bool:
        return self._leadership.leads(name)

    async def resign(self, name: str) -> None:
        await self._leadership.resign(name)

    async def check_leadership(self) -> None:
        """Drop the leads of a session that no longer answers (see Leadership.check)."""
        await self._leadership.check(self.timeout)

    # -- event log ------------------------------------------------------------------------------
    async def append(self, stream: str, expected_version: int, events: list[Event]) -> int:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((stream, expected_version, events, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        return await future

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._commit(batch)
            except Exception as error:  # the whole transaction failed: every waiter learns it
                results = [error] * len(batch)
            for (_, _, _, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _commit(self, batch: Batch) -> list[int | Exception]:
        async with self.connection() as conn:
            checked = False
            for _ in range(3):
                try:
                    results = await self._transaction(conn, batch, checked)
                except asyncpg.UniqueViolationError:
                    results = None  # a writer bypassed the lock: check the versions again
                if results is not None:
                    return results
                checked = True
            raise ConcurrencyConflict("the log kept moving under a batch of appends")

    async def _transaction(self, conn: PoolConnectionProxy, batch: Batch,
                           checked: bool) -> list[int | Exception] | None:
        # One simple-protocol round trip: the lock is taken before any snapshot of the log.
        await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({self._append_key})")
        try:
            done = await insert_checked(conn, batch) if checked else await insert_expected(conn, batch, self._seen)
            if done is None:
                await conn.execute("ROLLBACK")
                return None
            planned, head = done
            results = outcomes(batch, planned, head)
            last = max((r for r in results if type(r) is int), default=head)
            if last > head:
                if self.in_transaction:
                    written = recorded(batch, planned, head)
                    for hook in self.in_transaction:
                        await hook(conn, written)
                await conn.execute(f"NOTIFY \"{self.schema}_events\", '{last}'; COMMIT")
            else:
                await conn.execute("COMMIT")
        except Exception:
            with suppress(Exception):
                await conn.execute("ROLLBACK")
            raise
        self.commits += 1
        for (stream, _, events, _), after in zip(batch, planned, strict=True):
            if type(after) is int:
                self._seen.saw(stream, after + len(events))
        self._head.advance(last)
        return results

    async def read_stream(self, stream: str) -> list[Recorded]:
        async with self.connection() as conn:
            rows = await conn.fetch(f"{SELECT_EVENTS} WHERE stream = $1 ORDER BY version", stream)
        if rows:
            self._seen.saw(stream, rows[-1][2])
        return [recorded_from(row) for row in rows]

    async def read_all(self, after: int, limit: int = 1000) -> list[Recorded]:
        async with self.connection() as conn:
            rows = await conn.fetch(f"{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2", after, limit)
        return [recorded_from(row) for row in rows]

    async def read_relayed(self, after: int, limit: int = 1000) -> tuple[list[Recorded], int]:
        async with self.connection() as conn:
            rows = await conn.fetch(READ_RELAYED, after, limit, unrelayed_types())
        last = rows[0][0] if rows else None
        return [recorded_from(row[1:]) for row in rows if row[1] is not None], last or after

    async def last_position(self) -> int:
        async with self.connection() as conn:
            return await conn.fetchval("SELECT COALESCE(MAX(position), 0) FROM events")

    async def wait_for_append(self, after: int, timeout: float) -> None:
        with suppress(asyncio.TimeoutError):
            await self._head.reach(after + 1, timeout)

    # -- blobs ----------------------------------------------------------------------------------
    async def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        async with self.connection() as conn:
            await conn.execute("INSERT INTO blobs (digest, data) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                               digest, data)
        return digest

    async def get_blob(self, digest: str) -> bytes | None:
        async with self.connection() as conn:
            return await conn.fetchval("SELECT data FROM blobs WHERE digest = $1", digest)

