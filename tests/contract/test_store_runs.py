"""The runs read model's pages and retention, against every store adapter."""
import sqlite3
import time

import pytest

from dispatch.schemas import events as e
from dispatch.server import rebuild_views
from dispatch.settings import Settings
from dispatch.store.postgres import PostgresStore
from dispatch.store.postgres_views import PostgresViews
from dispatch.store.projector import Projector
from dispatch.store.sqlite import SQLiteStore
from dispatch.store.sqlite_views import SQLiteViews

from .test_store import database, store  # noqa: F401 - the fixtures: every adapter; a PostgreSQL schema

DAY = 86400


def finished(name: str, function: str = "f", modified: int = 100, org: str = "o", status: str = "READY"):
    return e.RunFinished(organization=org, run={"name": name, "functionName": function, "status": status,
                                                "modifiedTime": modified})


def accepted(name: str, function: str = "f", modified: int = 100, org: str = "o"):
    return e.RunAccepted(organization=org, run={"name": name, "functionName": function, "status": "CREATING",
                                                "modifiedTime": modified})


async def projected(store_pair) -> Projector:
    log, views = store_pair
    projector = Projector(log, views)
    await projector.catch_up()
    projector.follow_inline()
    return projector


async def record(log, *events) -> None:
    for event in events:
        stream = await log.read_stream(event.stream)
        await log.append(event.stream, len(stream), [event])


async def walk(views, function: str | None, limit: int, since: int | None = None, org: str = "o") -> list[list[str]]:
    """The names on each page, following each page's last position as the next one's start."""
    pages, before = [], None
    while True:
        rows = await views.page_runs(org, function, since, before, limit)
        if not rows:
            return pages
        pages.append([run["name"] for _, run in rows])
        before = rows[-1][0]


async def test_pages_go_newest_first_and_meet_every_run_once(store):
    log, views = store
    await projected(store)
    # names that do not sort in the order the runs were made (event-triggered runs have such names)
    names = [f"{'zyxwvutsrq'[i]}-run" for i in range(10)]
    for i, name in enumerate(names):
        await record(log, finished(name, function="f" if i % 2 else "g"))
    assert await walk(views, None, 4) == [names[::-1][:4], names[::-1][4:8], names[::-1][8:]]
    assert sum(await walk(views, "f", 2), []) == [n for i, n in enumerate(names) if i % 2][::-1]
    assert await views.page_runs("other", None, None, None, 5) == []


async def test_a_run_keeps_its_place_in_the_pages_when_it_finishes_later(store):
    log, views = store
    await projected(store)
    await record(log, accepted("slow", modified=100), finished("quick", modified=101))
    await record(log, finished("slow", modified=102))
    rows = await views.page_runs("o", "f", None, None, 10)
    assert [(run["name"], run["status"]) for _, run in rows] == [("quick", "READY"), ("slow", "READY")]
    assert [run["name"] for run in await views.list_runs("o", "f", None)] == ["quick", "slow"]  # as before


async def test_a_page_keeps_only_runs_modified_after_since(store):
    log, views = store
    await projected(store)
    await record(log, *(finished(f"r{i}", modified=100 + i) for i in range(6)))
    assert sum(await walk(views, "f", 2, since=102), []) == ["r5", "r4", "r3"]


async def test_pruning_drops_finished_runs_older_than_the_cutoff_and_the_log_keeps_them(store):
    log, views = store
    await projected(store)
    await record(log, finished("old"), finished("failed-old", status="ERROR"), accepted("waiting-old"),
                 finished("new", modified=500))
    assert await views.prune_runs(older_than=300) == 2
    assert sorted(run["name"] for run in await views.list_runs("o", None, None)) == ["new", "waiting-old"]
    assert await views.get_run("o", "old") is None
    assert len(await log.read_stream("Run:o:old")) == 1
    assert await views.prune_runs(older_than=300) == 0


async def test_pruning_many_runs_goes_in_slices_and_misses_none(store):
    log, views = store
    await projected(store)
    for i in range(0, 5100, 100):
        await log.append("batch", i, [finished(f"r{n}") for n in range(i, i + 100)])
    assert await views.prune_runs(older_than=200) == 5100
    assert await views.page_runs("o", None, None, None, 1) == []


async def test_a_rebuild_brings_back_every_run_and_one_with_retention_drops_the_old_again(store, tmp_path):
    log, views = store
    await projected(store)
    now = int(time.time())
    await record(log, finished("old", modified=now - 3 * DAY), finished("recent", modified=now - 60))
    await views.prune_runs(older_than=now - DAY)
    if isinstance(log, SQLiteStore):
        settings = Settings(data_dir=log.path.parent)
    else:
        settings = Settings(data_dir=tmp_path, store=log.dsn, namespace=log.schema)
    assert (await rebuild_views(settings))["runs"] == 2
    assert (await rebuild_views(settings.model_copy(update={"run_retention": DAY})))["runs"] == 1


async def test_a_store_made_before_pages_gives_its_runs_their_places_when_started_again(store):
    log, views = store
    await projected(store)
    await record(log, accepted("a"), finished("b"), finished("a"), finished("c"))
    again = await made_before_pages(log)
    try:
        again_views = SQLiteViews(again) if isinstance(again, SQLiteStore) else PostgresViews(again)
        assert [run["name"] for _, run in await again_views.page_runs("o", "f", None, None, 10)] == ["c", "b", "a"]
    finally:
        await again.close()


async def made_before_pages(log):
    """The store of `log` as a release without pages left it, started again."""
    if isinstance(log, SQLiteStore):
        with sqlite3.connect(log.path) as db:
            for index in ("runs_by_position", "runs_of_function_by_position", "runs_by_age"):
                db.execute(f"DROP INDEX {index}")
            db.execute("ALTER TABLE runs DROP COLUMN recorded")
        again = SQLiteStore(log.path)
    else:
        async with log.connection() as conn:
            await conn.execute("DROP INDEX runs_by_age")
            await conn.execute("ALTER TABLE runs DROP COLUMN recorded")  # its other indexes go with it
            await conn.execute("DELETE FROM migrations WHERE version = 3")
        again = PostgresStore(log.dsn, log.schema)
    await again.start()
    return again


@pytest.mark.postgres
async def test_runs_recorded_by_two_processes_page_in_the_order_of_the_log(database):
    first, second = await database.open(), await database.open()
    for log in (first, second):
        await projected((log, PostgresViews(log)))
    for i in range(10):
        await record(first if i % 2 else second, finished(f"r{i}"))
    assert sum(await walk(PostgresViews(second), None, 3), []) == [f"r{i}" for i in range(10)][::-1]
