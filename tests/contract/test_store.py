"""The event log, blob store and read-model contract, run against every adapter."""
import asyncio

import pytest

from dispatch.schemas import events as e
from dispatch.store.ports import ConcurrencyConflict
from dispatch.store.projector import Projector
from dispatch.store.sqlite import SQLiteStore
from dispatch.store.sqlite_views import SQLiteViews


@pytest.fixture(params=["sqlite"])
async def store(request, tmp_path):
    adapter = SQLiteStore(tmp_path / "dispatch.db")
    await adapter.start()
    yield adapter, SQLiteViews(adapter)
    await adapter.close()


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
        await log.append(ev.stream, 0, [ev])
        await projector.catch_up()
    ready = e.FunctionDeployed(organization="b", name="r0", status="READY", modified_time=5)
    await log.append(ready.stream, 1, [ready])
    gone = e.FunctionDeletionRequested(organization="a", name="r1")
    await log.append(gone.stream, 1, [gone, e.FunctionDeleted(organization="a", name="r1")])
    await projector.catch_up()
    live = await views.dump()
    await projector.rebuild()
    assert await views.dump() == live
    assert (await views.get_resource("b", "Function", "r0"))["status"] == "READY"
    assert await views.get_resource("a", "Function", "r1") is None
