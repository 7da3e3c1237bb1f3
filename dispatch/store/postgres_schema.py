"""The PostgreSQL store's tables, created and upgraded when a store starts.

Every table lives in the store's own schema (the installation's namespace), reached through the
connections' search_path, so installations and test runs sharing a database stay apart. Each
migration runs once, recorded in `migrations`; processes starting together serialize on an
advisory lock, so exactly one of them applies a new migration and the others find it done.

Keys are TEXT COLLATE "C": compared byte-wise (memcmp, abbreviated keys), which is faster than a
locale's collation and sorts names as SQLite does. Documents are JSON, not JSONB: they are only
ever stored and read whole, and JSON keeps the text as given, so writes skip JSONB's conversion
(measured: a third of an append batch's insert) and reads skip the conversion back."""
import hashlib
import re
from typing import Awaitable, Callable

from asyncpg.pool import PoolConnectionProxy

from . import postgres_audit

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "event log, blobs, tracking positions and read models", """
CREATE TABLE events (
    position BIGINT PRIMARY KEY,
    stream TEXT COLLATE "C" NOT NULL, version INTEGER NOT NULL,
    type TEXT NOT NULL, type_version INTEGER NOT NULL, data JSON NOT NULL,
    UNIQUE (stream, version));
CREATE TABLE blobs (digest TEXT COLLATE "C" PRIMARY KEY, data BYTEA NOT NULL);
CREATE TABLE tracking (name TEXT COLLATE "C" PRIMARY KEY, position BIGINT NOT NULL);
CREATE TABLE resources (
    org TEXT COLLATE "C" NOT NULL, kind TEXT COLLATE "C" NOT NULL, name TEXT COLLATE "C" NOT NULL,
    body JSON NOT NULL, PRIMARY KEY (org, kind, name));
CREATE TABLE runs (
    org TEXT COLLATE "C" NOT NULL, name TEXT COLLATE "C" NOT NULL, function TEXT COLLATE "C" NOT NULL,
    modified BIGINT NOT NULL, seq BIGSERIAL NOT NULL, body JSON NOT NULL, PRIMARY KEY (org, name));
CREATE INDEX runs_by_function ON runs (org, function, modified);
"""),
    (2, "the audit trail, filled from the log", postgres_audit.SCHEMA),
    (3, "runs in the order first recorded, for pages; runs by age, for retention", """
ALTER TABLE runs ADD COLUMN recorded BIGINT NOT NULL DEFAULT 0;
UPDATE runs SET recorded = COALESCE(
    (SELECT MIN(position) FROM events WHERE stream = 'Run:' || runs.org || ':' || runs.name), 0);
CREATE INDEX runs_by_position ON runs (org, recorded);
CREATE INDEX runs_of_function_by_position ON runs (org, function, recorded);
CREATE INDEX runs_by_age ON runs (modified);
"""),
]
# What a migration does beyond its SQL, in the same transaction.
FILLS: dict[int, Callable[[PoolConnectionProxy], Awaitable[None]]] = {2: postgres_audit.fill}


def checked(schema: str) -> str:
    """The schema name, refused unless it is a plain identifier: it is spliced into SQL."""
    if not NAME.fullmatch(schema):
        raise ValueError(f"invalid PostgreSQL schema name {schema!r}: use letters, digits and _ (at most 48)")
    return schema


def lock_key(text: str) -> int:
    """A stable signed 64-bit advisory-lock key for `text`."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


async def migrate(conn: PoolConnectionProxy, schema: str) -> list[int]:
    """Apply the migrations this schema lacks; return the versions applied."""
    applied = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(f"{schema}:migrate"))
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'''CREATE TABLE IF NOT EXISTS "{schema}".migrations (
            version INTEGER PRIMARY KEY, description TEXT NOT NULL,
            applied TIMESTAMPTZ NOT NULL DEFAULT now())''')
        done = {row[0] for row in await conn.fetch(f'SELECT version FROM "{schema}".migrations')}
        for version, description, sql in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(sql)
            if version in FILLS:
                await FILLS[version](conn)
            await conn.execute(f'INSERT INTO "{schema}".migrations (version, description) VALUES ($1, $2)',
                               version, description)
            applied.append(version)
    return applied
