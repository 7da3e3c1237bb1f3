"""The PostgreSQL store's long-lived sessions, each on a connection of its own (never a pooled
one: the pool's connections are shared, and LISTEN registrations and session locks belong to one
session): the LISTEN connection that wakes followers, and the leader locks."""
import asyncio
from contextlib import suppress
from typing import Awaitable, Callable

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from dispatch.errors import Unavailable

from .watermark import Watermark

log = structlog.get_logger("dispatch.store")

Connect = Callable[[], Awaitable[asyncpg.Connection]]


def _honour_cancellation() -> None:
    """A cancellation arriving while asyncpg connects can come out as a connection error: a
    retry loop that caught one must still stop when its task was cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Listener:
    """Keeps one connection LISTENing to the log's channel and moves `head` to each notified
    position. When the connection drops it reconnects (with backoff and jitter) and re-listens; it then
    reads the head once, since notifications sent meanwhile were lost. A silent network failure
    shows up in the periodic ping. Until it is back, `wait_for_append` falls back to its timeout."""

    def __init__(self, connect: Connect, channel: str, head: Watermark, ping_every: float = 5.0):
        self.connect = connect
        self.channel = channel
        self.head = head
        self.ping_every = ping_every
        self.listening = asyncio.Event()

    def _notified(self, conn: asyncpg.Connection | PoolConnectionProxy, pid: int, channel: str,
                  payload: object) -> None:
        if isinstance(payload, str) and payload.isdigit():  # anything else on the channel is not ours
            self.head.advance(int(payload))

    async def run(self) -> None:
        while True:
            conn = await self._connected()
            try:
                await self._listen(conn)
            except Exception as error:  # the connection failed: reconnect
                _honour_cancellation()
                log.warning("log listener lost its connection; reconnecting", error=repr(error))
            finally:
                self.listening.clear()
                conn.terminate()

    async def _connected(self) -> asyncpg.Connection:
        """A new connection. While the server cannot be reached, try again after pauses that grow
        from 0.1 s to 5 s, jittered: the processes of an installation that lost the server together
        do not all knock again at the same instant."""
        retrying = AsyncRetrying(retry=retry_if_exception_type(Unavailable), reraise=True, before_sleep=_retrying,
                                 wait=wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.5))
        return await retrying(self._connect_once)

    async def _connect_once(self) -> asyncpg.Connection:
        try:
            return await self.connect()
        except Unavailable:
            _honour_cancellation()
            raise

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        await conn.add_listener(self.channel, self._notified)
        # Listening first, then reading the head: nothing committed in between goes unnoticed.
        self.head.advance(await conn.fetchval("SELECT COALESCE(MAX(position), 0) FROM events"))
        self.listening.set()
        while not lost.is_set():
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(lost.wait(), self.ping_every)
            if not lost.is_set():
                await conn.fetchval("SELECT 1")


def _retrying(state: RetryCallState) -> None:
    pause = state.next_action.sleep if state.next_action else 0.0
    error = state.outcome.exception() if state.outcome else None  # tenacity sets it before any sleep
    log.warning("log listener cannot connect; retrying", error=str(error), retry_in=round(pause, 2))


class Leadership:
    """Leader election by session-level advisory locks, all held on one dedicated connection.

    `try_lead(name)` takes `pg_try_advisory_lock(hashtext(schema || name))`: True if this store
    now leads `name` (or already did), False if another session holds it. The lock is held for as
    long as the connection lives: closing the store, or the process dying, releases it, and a
    waiting `wait_to_lead` elsewhere takes over within its poll interval. Should the connection
    drop, PostgreSQL releases the locks with it: `leads(name)` turns False and another process
    may take over, so a leader doing work that must not overlap checks it."""

    def __init__(self, connect: Connect, schema: str):
        self.connect = connect
        self.schema = schema
        self.held: set[str] = set()
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    def leads(self, name: str) -> bool:
        return name in self.held

    async def try_lead(self, name: str) -> bool:
        async with self._lock:
            if name in self.held:
                return True
            if self._conn is None or self._conn.is_closed():
                self.held.clear()
                self._conn = await self.connect()
                self._conn.add_termination_listener(self._lost)
            try:
                won = await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock(hashtext($1 || $2))", self.schema, name)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                raise Unavailable(f"the event store is unavailable: {type(error).__name__}: {error}") from error
            if won:
                self.held.add(name)
            return bool(won)

    def _lost(self, conn: asyncpg.Connection | PoolConnectionProxy) -> None:
        if conn is self._conn:
            if self.held:
                log.warning("leader locks lost with their connection", names=sorted(self.held))
            self.held.clear()

    async def check(self, timeout: float) -> None:
        """Make sure the session holding the locks still answers: one cut off without a word (a
        network gone silent) would keep leading here while the server, having dropped it, lets
        another process lead. A session silent for `timeout` is dropped, and its locks with it."""
        async with self._lock:
            if self._conn is None or not self.held:
                return
            try:
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), timeout)
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("leader session lost; leading nothing", names=sorted(self.held), error=repr(error))
                self.held.clear()
                self._conn.terminate()
                self._conn = None

    async def resign(self, name: str) -> None:
        """Stop leading `name`, so that another session may lead it at once."""
        async with self._lock:
            if name not in self.held:
                return
            self.held.discard(name)
            if self._conn is not None and not self._conn.is_closed():
                with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await self._conn.fetchval("SELECT pg_advisory_unlock(hashtext($1 || $2))", self.schema, name)

    async def wait_to_lead(self, name: str, poll: float = 1.0) -> None:
        while True:
            try:
                if await self.try_lead(name):
                    return
            except Unavailable:
                _honour_cancellation()
            await asyncio.sleep(poll)

    async def close(self) -> None:
        self.held.clear()
        if self._conn is not None:
            self._conn.terminate()  # the server releases the session's locks at once
            self._conn = None
