"""The event log, blob store and read-model contract, run against every adapter."""
import asyncio
import json
import socket
import sqlite3
import time
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest

from dispatch.errors import Unavailable
from dispatch.schemas import events as e
from dispatch.store.ports import ConcurrencyConflict
from dispatch.store.postgres import PostgresStore
from dispatch.store.postgres_views import PostgresViews
from dispatch.store.projector import Projector
from dispatch.store.sqlite import SQLiteStore
from dispatch.store.sqlite_views import SQLiteViews


class Database:
    """A fresh schema of its own; `open()` starts a store on it, as one more process would."""

    def __init__(self, url: str):
        self.url = url
        self.schema = f"test_{uuid.uuid4().hex}"
        self.stores: list[PostgresStore] = []

    async def open(self, url: str | None = None, **options) -> PostgresStore:
        store = PostgresStore(url or self.url, self.schema, **options)
        await store.start()
        self.stores.append(store)
        return store

    async def close(self) -> None:
        await asyncio.gather(*(store.close() for store in self.stores), return_exceptions=True)
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture
async def database(database_url):
    db = Database(database_url)
    yield db
    await db.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request, tmp_path):
    if request.param == "sqlite":
        adapter = SQLiteStore(tmp_path / "dispatch.db")
        await adapter.start()
        yield adapter, SQLiteViews(adapter)
        await adapter.close()
        return
    db = Database(request.getfixturevalue("database_url"))
    try:
        adapter = await db.open()
        yield adapter, PostgresViews(adapter)
    finally:
        await db.close()


def created(name: str, org: str = "o") -> e.FunctionCreated:
    resource = {"name": name, "kind": "Function", "status": "INITIALIZED", "image": "py", "faasId": "f"}
    return e.FunctionCreated(organization=org, name=name, resource=resource, source_digest="d")


async def test_appended_events_read_back_in_order_with_versions(store):
    log, _ = store
    event = created("hello")
    position = await log.append(event.stream, 0, [event])
    recorded = await log.read_stream(event.stream)
    assert [(r.position, r.stream_version, r.event) for r in recorded] == [(position, 1, event)]


async def test_an_append_with_a_stale_expected_version_is_refused(store):
    log, _ = store
    event = created("hello")
    await log.append(event.stream, 0, [event])
    with pytest.raises(ConcurrencyConflict):
        await log.append(event.stream, 0, [created("hello")])
    assert len(await log.read_stream(event.stream)) == 1


async def test_concurrent_appends_get_distinct_gap_free_positions(store):
    log, _ = store
    events = [created(f"f{i}") for i in range(200)]
    positions = await asyncio.gather(*(log.append(ev.stream, 0, [ev]) for ev in events))
    assert sorted(positions) == list(range(1, 201))
    assert await log.last_position() == 200


async def test_concurrent_appends_share_commits(store):
    log, _ = store
    events = [created(f"g{i}") for i in range(300)]
    commits_before = log.commits
    await asyncio.gather(*(log.append(ev.stream, 0, [ev]) for ev in events))
    assert log.commits - commits_before < 300 / 5


async def test_only_one_of_two_racing_creates_wins(store):
    log, _ = store
    first, second = created("race"), created("race")
    outcomes = await asyncio.gather(log.append(first.stream, 0, [first]), log.append(second.stream, 0, [second]),
                                    return_exceptions=True)
    assert sum(isinstance(o, ConcurrencyConflict) for o in outcomes) == 1


async def test_a_stale_append_fails_alone_and_the_rest_of_its_batch_commits(store):
    log, _ = store
    first = created("stale")
    await log.append(first.stream, 0, [first])
    fresh = [created(f"fresh{i}") for i in range(3)]
    outcomes = await asyncio.gather(log.append(first.stream, 0, [created("stale")]),
                                    *(log.append(ev.stream, 0, [ev]) for ev in fresh), return_exceptions=True)
    assert isinstance(outcomes[0], ConcurrencyConflict)
    assert sorted(outcomes[1:]) == [2, 3, 4]
    assert [len(await log.read_stream(ev.stream)) for ev in [first, *fresh]] == [1, 1, 1, 1]


async def test_an_append_expecting_more_events_than_the_stream_holds_is_refused(store):
    log, _ = store
    first = created("ahead")
    await log.append(first.stream, 0, [first])
    with pytest.raises(ConcurrencyConflict):
        await log.append(first.stream, 3, [created("ahead")])
    with pytest.raises(ConcurrencyConflict):
        await log.append("Function:o:never", 1, [created("never")])
    assert len(await log.read_stream(first.stream)) == 1


async def test_read_all_pages_from_a_position(store):
    log, _ = store
    for i in range(5):
        ev = created(f"p{i}")
        await log.append(ev.stream, 0, [ev])
    page = await log.read_all(2, limit=2)
    assert [r.position for r in page] == [3, 4]


async def test_blobs_are_content_addressed_and_idempotent(store):
    log, _ = store
    first = await log.put_blob(b"source")
    assert await log.put_blob(b"source") == first
    assert await log.get_blob(first) == b"source"
    assert await log.get_blob("missing") is None


async def test_projection_applies_once_even_when_a_batch_is_seen_twice(store):
    log, views = store
    ev = created("proj")
    await log.append(ev.stream, 0, [ev])
    projector = Projector(log, views)
    await projector.catch_up()
    batch = await log.read_all(0)
    await views.apply("views", batch, projector.models)
    assert [f["name"] for f in await views.list_resources("o", "Function")] == ["proj"]
    assert await views.tracking("views") == 1


async def test_rebuilt_read_models_equal_the_live_ones(store):
    log, views = store
    projector = Projector(log, views)
    for i in range(20):
        ev = created(f"r{i}", org="a" if i % 2 else "b")
        ev.subject = f"a/user{i % 3}" if i % 4 else None
        await log.append(ev.stream, 0, [ev])
        await projector.catch_up()
    ready = e.FunctionDeployed(organization="b", name="r0", status="READY", modified_time=5)
    await log.append(ready.stream, 1, [ready])
    gone = e.FunctionDeletionRequested(organization="a", name="r1", subject="a/user1")
    await log.append(gone.stream, 1, [gone, e.FunctionDeleted(organization="a", name="r1")])
    await log.append("Denied:a:1", 0, [denied("a", "a/ci")])
    await projector.catch_up()
    live = await views.dump()
    assert len(live["audit"]) == 22
    await projector.rebuild()
    assert await views.dump() == live
    assert (await views.get_resource("b", "Function", "r0"))["status"] == "READY"
    assert await views.get_resource("a", "Function", "r1") is None


# -- the audit trail -----------------------------------------------------------------------------

def denied(org: str, subject: str, request_id: str = "r-denied") -> e.AccessDenied:
    return e.AccessDenied(organization=org, action="create", resource="secret", name="s", subject=subject,
                          reason=f"{subject} may not create secret in organization {org}", request_id=request_id)


def by(event, subject: str | None, request_id: str | None = None):
    event.subject, event.correlation_id = subject, request_id
    return event


async def audited_history(log) -> None:
    """What users did in organizations a and b, and what the platform did meanwhile."""
    function = by(created("hello", org="a"), "a/admin", "r1")
    await log.append(function.stream, 0, [function])
    built = e.FunctionDeployed(organization="a", name="hello", status="READY", modified_time=5, subject="a/admin")
    await log.append(function.stream, 1, [built])  # the platform's doing, though caused by a user
    run = ran("a", "run1", "hello", 10)
    run.subject = "a/admin"
    await log.append(run.stream, 0, [run])  # recorded as a run, not an entry
    await log.append("Denied:a:1", 0, [denied("a", "a/ci", "r2")])
    secret = by(e.SecretCreated(organization="b", name="s", resource={"name": "s", "secrets": {"k": "sealed"}}),
                "b/owner", "r3")
    await log.append(secret.stream, 0, [secret])
    shown = by(e.SecretRead(organization="b", name="s", request_id="r4"), "b/owner", "r4")
    await log.append(shown.stream, 0, [shown])
    update = by(e.FunctionUpdated(organization="a", name="hello", resource={"name": "hello"}, source_digest="d"),
                "someone@example.com", "r5")
    await log.append(function.stream, 2, [update])
    gone = by(e.FunctionDeletionRequested(organization="a", name="hello"), "a/admin", "r6")
    await log.append(function.stream, 3, [gone, by(e.FunctionDeleted(organization="a", name="hello"), "a/admin", "r6")])
    await log.append(secret.stream, 1, [by(e.SecretDeleted(organization="b", name="s"), "b/owner", "r7")])
    policy = e.PolicyCreated(organization="a", name="p", resource={"name": "p", "rules": []})  # no subject
    await log.append(policy.stream, 0, [policy])


def seen(entries: list[dict]) -> list[tuple]:
    return [(x["subject"], x["organization"], x["action"], x["resource"], x["kind"], x["name"], x["outcome"],
             x["requestId"]) for x in entries]


async def test_the_audit_trail_holds_what_users_did_and_not_what_the_platform_did(store):
    log, views = store
    await audited_history(log)
    await Projector(log, views).catch_up()
    everything = await views.list_audit(None)
    assert seen(everything) == [
        ("a/admin", "a", "create", "function", "Function", "hello", "allowed", "r1"),
        ("a/ci", "a", "create", "secret", None, "s", "denied", "r2"),
        ("b/owner", "b", "create", "secret", "Secret", "s", "allowed", "r3"),
        ("b/owner", "b", "get", "secret", "Secret", "s", "allowed", "r4"),
        ("someone@example.com", "a", "update", "function", "Function", "hello", "allowed", "r5"),
        ("a/admin", "a", "delete", "function", "Function", "hello", "allowed", "r6"),
        ("b/owner", "b", "delete", "secret", "Secret", "s", "allowed", "r7"),
        ("system", "a", "create", "iam", "Policy", "p", "allowed", None),
    ]
    assert [x["position"] for x in everything] == sorted({x["position"] for x in everything})
    assert everything[1]["reason"] == "a/ci may not create secret in organization a"
    assert all(x["reason"] is None for x in everything if x["outcome"] == "allowed")
    assert all(abs(x["time"] - time.time()) < 60 and round(x["time"], 3) == x["time"] for x in everything)
    assert "sealed" not in json.dumps(everything)


async def test_audit_entries_are_filtered_and_paged_by_position(store):
    log, views = store
    await audited_history(log)
    await Projector(log, views).catch_up()
    assert [x["requestId"] for x in await views.list_audit("a")] == ["r1", "r2", "r5", "r6", None]
    assert [x["requestId"] for x in await views.list_audit("b", subject="b/owner", resource="secret", name="s")] == [
        "r3", "r4", "r7"]
    assert [x["requestId"] for x in await views.list_audit("a", subject="a/admin")] == ["r1", "r6"]
    assert await views.list_audit("b", resource="function") == []
    pages, after = [], 0
    while page := await views.list_audit(None, after=after, limit=3):
        pages.append([x["requestId"] for x in page])
        after = page[-1]["position"]
    assert pages == [["r1", "r2", "r3"], ["r4", "r5", "r6"], ["r7", None]]
    everything = await views.list_audit(None)
    assert await views.list_audit(None, since=everything[-1]["time"] + 1) == []
    assert await views.list_audit(None, since=everything[0]["time"]) == everything


async def test_an_existing_database_gets_the_audit_trail_of_its_whole_log(store):
    log, views = store
    await audited_history(log)
    await Projector(log, views).catch_up()
    expected = await views.dump()
    upgraded = await made_before_the_audit_trail(log)
    try:
        views = SQLiteViews(upgraded) if isinstance(upgraded, SQLiteStore) else PostgresViews(upgraded)
        assert len(await views.list_audit(None)) == 8
        assert (await views.dump())["audit"] == expected["audit"]
        fresh = created("after-upgrade", org="a")
        await upgraded.append(fresh.stream, 0, [fresh])
        await Projector(upgraded, views).catch_up()
        assert [x["name"] for x in await views.list_audit("a")][-1] == "after-upgrade"
    finally:
        await upgraded.close()


async def made_before_the_audit_trail(log):
    """The store of `log` as a release without the audit trail left it, started again."""
    if isinstance(log, SQLiteStore):
        with sqlite3.connect(log.path) as db:
            db.execute("DROP TABLE audit")
        again = SQLiteStore(log.path)
    else:
        async with log.connection() as conn:
            await conn.execute("DROP TABLE audit")
            await conn.execute("DELETE FROM migrations WHERE version = 2")
        again = PostgresStore(log.dsn, log.schema)
    await again.start()
    return again


# -- PostgreSQL: several processes on one log ------------------------------------------------------

def ran(org: str, run: str, function: str, modified: int) -> e.RunFinished:
    body = {"name": run, "functionName": function, "status": "READY", "modifiedTime": modified}
    return e.RunFinished(organization=org, run=body)


@pytest.mark.postgres
async def test_appends_from_two_processes_are_read_in_order_without_gaps(database):
    first, second, reader = await database.open(), await database.open(), await database.open()
    total = 2 * 20 * 25

    async def appender(log, prefix: str) -> None:
        for i in range(25):
            event = created(f"{prefix}-{i}")
            await log.append(event.stream, 0, [event])

    async def follow() -> list[int]:
        seen: list[int] = []
        while len(seen) < total:
            for recorded in await reader.read_all(seen[-1] if seen else 0):
                assert recorded.position == len(seen) + 1, f"position {len(seen) + 1} was skipped"
                seen.append(recorded.position)
        return seen

    follower = asyncio.ensure_future(follow())
    await asyncio.gather(*(appender(log, f"{name}{n}") for name, log in (("a", first), ("b", second))
                           for n in range(20)))
    assert await asyncio.wait_for(follower, 30) == list(range(1, total + 1))
    assert first.commits < total / 5 and second.commits < total / 5


@pytest.mark.postgres
async def test_only_one_process_leads_and_another_takes_over_when_it_stops(database):
    leader, other = await database.open(), await database.open()
    assert await leader.try_lead("relay") is True
    assert await leader.try_lead("relay") is True
    assert await other.try_lead("relay") is False
    assert await other.try_lead("projector") is True
    waiting = asyncio.ensure_future(other.wait_to_lead("relay", poll=0.05))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await leader.close()
    await asyncio.wait_for(waiting, 5)
    assert other.leads("relay")


@pytest.mark.postgres
async def test_a_follower_wakes_promptly_when_another_process_appends(database):
    follower, writer = await database.open(), await database.open()
    head = await follower.last_position()
    started = asyncio.get_running_loop().time()
    waiting = asyncio.ensure_future(follower.wait_for_append(head, timeout=20))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    event = created("wake")
    await writer.append(event.stream, 0, [event])
    await asyncio.wait_for(waiting, 2)
    assert asyncio.get_running_loop().time() - started < 2


@pytest.mark.postgres
async def test_inline_projection_equals_a_rebuild_from_position_zero(database):
    log, elsewhere = await database.open(), await database.open()
    views = PostgresViews(log)
    projector = Projector(log, views)
    await projector.catch_up()
    assert projector.follow_inline()
    for i in range(10):
        ev = created(f"f{i}", org="a" if i % 2 else "b")
        position = await log.append(ev.stream, 0, [ev])
        assert await views.tracking("views") == position  # projected in the append's own transaction
    appends = [log.append(f"Run:b:r{i}", 0, [ran("b", f"r{i}", "f0", 100 + i % 3)]) for i in range(30)]
    appends.append(log.append(created("f0", org="b").stream, 0, [created("f0", org="b")]))  # a conflict
    outcomes = await asyncio.gather(*appends, return_exceptions=True)
    assert [type(o) for o in outcomes].count(ConcurrencyConflict) == 1
    position = await log.append("Run:b:r0", 1, [ran("b", "r0", "f0", 200)])
    assert await views.tracking("views") == position
    ready = e.FunctionDeployed(organization="b", name="f2", status="READY", modified_time=5)
    await elsewhere.append(ready.stream, 1, [ready])  # a process that does not project inline
    gone = e.FunctionDeletionRequested(organization="a", name="f1")
    position = await log.append(gone.stream, 1, [gone, e.FunctionDeleted(organization="a", name="f1")])
    assert await views.tracking("views") == position
    assert (await views.get_resource("b", "Function", "f2"))["status"] == "READY"
    assert await views.get_resource("a", "Function", "f1") is None
    assert [r["name"] for r in await views.list_runs("b", "f0", None)][-1] == "r0"
    live = await views.dump()
    assert len(live["resources"]) == 9 and len(live["runs"]) == 30
    await projector.rebuild()
    assert await views.dump() == live


@pytest.mark.postgres
async def test_a_database_nothing_listens_on_is_unavailable_within_seconds(database):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        started = asyncio.get_running_loop().time()
        with pytest.raises(Unavailable, match="the event store is unavailable"):
            await database.open(f"postgresql://postgres@127.0.0.1:{port}/test", timeout=1.0)
    assert asyncio.get_running_loop().time() - started < 3


async def behind_a_relay(database: Database, outage) -> tuple:
    """A store reaching PostgreSQL through a relay the test can cut or stall."""
    address = urlsplit(database.url)
    relay = await outage(address.hostname or "127.0.0.1", address.port or 5432)
    credentials = address.netloc.rsplit("@", 1)[0] + "@" if "@" in address.netloc else ""
    url = address._replace(netloc=f"{credentials}127.0.0.1:{relay.port}").geturl()
    return relay, await database.open(url, timeout=1.0)


@pytest.mark.postgres
async def test_a_lost_database_is_unavailable_within_seconds_and_the_store_recovers(database, outage):
    relay, log = await behind_a_relay(database, outage)
    writer = await database.open()
    first = created("before")
    await log.append(first.stream, 0, [first])

    await relay.cut()
    started = asyncio.get_running_loop().time()
    lost = created("during")
    with pytest.raises(Unavailable, match="the event store is unavailable"):
        await log.append(lost.stream, 0, [lost])
    with pytest.raises(Unavailable):
        await log.read_all(0)
    assert asyncio.get_running_loop().time() - started < 5

    await relay.restore()
    again = created("after")
    await log.append(again.stream, 0, [again])
    assert [r.event.name for r in await log.read_all(0)] == ["before", "after"]
    waiting = asyncio.ensure_future(log.wait_for_append(await log.last_position(), timeout=30))
    other = created("elsewhere")
    await writer.append(other.stream, 0, [other])
    await asyncio.wait_for(waiting, 10)  # the listener is back


@pytest.mark.postgres
async def test_a_database_that_stops_answering_is_unavailable_within_seconds(database, outage):
    relay, log = await behind_a_relay(database, outage)
    first = created("before")
    await log.append(first.stream, 0, [first])

    relay.stall()
    started = asyncio.get_running_loop().time()
    lost = created("during")
    with pytest.raises(Unavailable, match="no answer in time"):
        await log.append(lost.stream, 0, [lost])
    with pytest.raises(Unavailable):
        await log.read_stream(first.stream)
    assert asyncio.get_running_loop().time() - started < 8

    await relay.restore()
    again = created("after")
    await log.append(again.stream, 0, [again])
    assert [r.event.name for r in await log.read_all(0)] == ["before", "after"]


async def test_unfinished_runs_are_the_accepted_ones_not_yet_finished(store):
    log, views = store
    projector = Projector(log, views)
    await projector.catch_up()
    projector.follow_inline()
    for name, event_type, status in (("waiting", e.RunAccepted, "INITIALIZED"), ("slow", e.RunAccepted, "CREATING"),
                                     ("done", e.RunFinished, "READY")):
        run = {"name": name, "functionName": "f", "status": status, "modifiedTime": 1}
        await log.append(f"Run:o:{name}", 0, [event_type(organization="o", run=run)])
    assert sorted(run["name"] for _, run in await views.unfinished_runs()) == ["slow", "waiting"]


async def test_the_relay_reads_back_only_relayed_events_and_where_it_got_to(store):
    log, _ = store
    function = created("relayed")
    await log.append(function.stream, 0, [function])
    for i in range(3):
        run = e.RunFinished(organization="o", run={"name": f"r{i}", "functionName": "relayed", "status": "READY"})
        await log.append(run.stream, 0, [run])
    later = created("later")
    await log.append(later.stream, 0, [later])

    first, last = await log.read_relayed(0, limit=3)
    assert ([r.event.name for r in first], last) == (["relayed"], 3)
    skipped, last = await log.read_relayed(1, limit=3)
    assert (skipped, last) == ([], 4)
    rest, last = await log.read_relayed(4)
    assert ([(r.position, r.event.name) for r in rest], last) == ([(5, "later")], 5)
    assert await log.read_relayed(5) == ([], 5)
