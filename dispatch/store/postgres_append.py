"""How a batch of appends goes into the log, inside a transaction holding the append lock.

Expected versions are enforced by the UNIQUE (stream, version) constraint. The common case takes
one statement: assume each stream is at the version its first append expects and insert every
event; an insert of version expected + 1 violates the constraint if the stream holds more. That
it holds no fewer is checked in the same statement, except where this process has already seen
the stream at that version (a stream never shrinks, and a handler appends after reading it). On
a violation or a failed check the caller rolls back and calls `append_checked`, which reads every
stream's version first, so a stale append fails alone and the rest of its batch commits.
Positions are numbered from the head read under the lock: they follow on without holes."""
from typing import Any

from asyncpg.pool import PoolConnectionProxy

from dispatch.schemas.envelope import Event

from .ports import ConcurrencyConflict, Recorded

Batch = list[tuple[str, int, list[Event], Any]]
Plan = list[int | Exception]
"""For each append of a batch, the stream version its events follow, or the conflict refusing it."""

HEADS = """SELECT s.stream, (SELECT MAX(version) FROM events e WHERE e.stream = s.stream)
FROM unnest($1::text[]) AS s(stream) UNION ALL SELECT NULL, MAX(position) FROM events"""
# Positions are the head plus each row's ordinal: a batch's events follow on in batch order.
ROWS = "unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::text[]) WITH ORDINALITY AS u(s, v, t, tv, d, n)"
INSERT = f"""INSERT INTO events (position, stream, version, type, type_version, data)
SELECT $6::bigint + n, s, v, t, tv, d::json FROM {ROWS}"""
INSERT_EXPECTED = f"""WITH head AS (SELECT COALESCE(MAX(position), 0) AS h FROM events),
missing AS (
    SELECT count(*) AS n FROM unnest($6::text[], $7::int[]) AS a(s, v)
    WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream = a.s AND e.version = a.v)),
inserted AS (
    INSERT INTO events (position, stream, version, type, type_version, data)
    SELECT h + n, s, v, t, tv, d::json FROM head, {ROWS})
SELECT (SELECT h FROM head), (SELECT n FROM missing)"""


class SeenVersions:
    """The highest version this process has seen of recently used streams (bounded)."""

    def __init__(self, size: int = 100_000):
        self.size = size
        self.versions: dict[str, int] = {}

    def saw(self, stream: str, version: int) -> None:
        self.versions.pop(stream, None)
        self.versions[stream] = version
        if len(self.versions) > self.size:
            del self.versions[next(iter(self.versions))]

    def holds(self, stream: str, version: int) -> bool:
        return self.versions.get(stream, 0) >= version


def plan(batch: Batch, versions: dict[str, int]) -> Plan:
    """Refuse each append whose expected version is not its stream's (`versions`, updated as
    the batch's own appends move the streams)."""
    planned: Plan = []
    for stream, expected, events, _ in batch:
        current = versions.get(stream, 0)
        if current != expected:
            planned.append(ConcurrencyConflict(f"stream {stream} is at version {current}, expected {expected}"))
        else:
            planned.append(expected)
            versions[stream] = expected + len(events)
    return planned


def _written(batch: Batch, planned: Plan) -> list[tuple[str, int, Event]]:
    return [(stream, after + i, event) for (stream, _, events, _), after in zip(batch, planned, strict=True)
            if type(after) is int for i, event in enumerate(events, start=1)]


def _columns(written: list[tuple[str, int, Event]]) -> list[list]:
    return [[stream for stream, _, _ in written], [version for _, version, _ in written],
            [event.type_name() for _, _, event in written], [event.version for _, _, event in written],
            [event.model_dump_json() for _, _, event in written]]


def recorded(batch: Batch, planned: Plan, head: int) -> list[Recorded]:
    return [Recorded(head + n, stream, version, event)
            for n, (stream, version, event) in enumerate(_written(batch, planned), start=1)]


def outcomes(batch: Batch, planned: Plan, head: int) -> list[int | Exception]:
    """What each append's caller gets: the position of its last event, or its conflict."""
    results: list[int | Exception] = []
    for (_, _, events, _), after in zip(batch, planned, strict=True):
        if type(after) is int:
            head += len(events)
            results.append(head)
        else:
            results.append(after)
    return results


async def insert_expected(conn: PoolConnectionProxy, batch: Batch, seen: SeenVersions) -> tuple[Plan, int] | None:
    """The one-statement path: the plan and the head it followed, or None when some stream holds
    fewer events than its append expects (one holding more raises UniqueViolationError) and
    when the batch writes nothing."""
    assumed: dict[str, int] = {}
    for stream, expected, _, _ in batch:
        assumed.setdefault(stream, expected)
    planned = plan(batch, dict(assumed))
    written = _written(batch, planned)
    if not written:
        return None  # nothing to insert: the checked path reads the head to answer with
    unseen = [(stream, version) for stream, version in assumed.items() if version and not seen.holds(stream, version)]
    row = await conn.fetchrow(INSERT_EXPECTED, *_columns(written), [s for s, _ in unseen], [v for _, v in unseen])
    assert row is not None  # a SELECT without FROM always answers one row
    head, missing = row
    return None if missing else (planned, head)


async def insert_checked(conn: PoolConnectionProxy, batch: Batch) -> tuple[Plan, int]:
    """Read every stream's version, refuse the stale appends, insert the others."""
    rows = await conn.fetch(HEADS, list({stream for stream, *_ in batch}))
    versions = {stream: version or 0 for stream, version in rows if stream is not None}
    head = next(version for stream, version in rows if stream is None) or 0
    planned = plan(batch, versions)
    written = _written(batch, planned)
    if written:
        await conn.execute(INSERT, *_columns(written), head)
    return planned, head
