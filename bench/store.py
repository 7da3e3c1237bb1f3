"""Event-log appends per second under many concurrent appenders (group commit), on PostgreSQL and
on SQLite for reference, and the time to rebuild the read models from a long log on PostgreSQL.
Runs in a throwaway schema (and a temporary directory), dropped afterwards.

    .venv/bin/python bench/store.py [--database-url postgresql://postgres@127.0.0.1:5432/test]
                                    [--seconds 10] [--appenders 200] [--events 1000000]
"""
import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dispatch.schemas import events as e  # noqa: E402
from dispatch.store.postgres import PostgresStore  # noqa: E402
from dispatch.store.postgres_views import PostgresViews  # noqa: E402
from dispatch.store.projector import Projector  # noqa: E402
from dispatch.store.sqlite import SQLiteStore  # noqa: E402
from dispatch.store.sqlite_views import SQLiteViews  # noqa: E402


def finished(org: str, run: str, function: str, stamp: int) -> e.RunFinished:
    return e.RunFinished(organization=org, run={"name": run, "functionName": function, "status": "READY",
                                                "output": {"n": 1}, "modifiedTime": stamp})


async def appends_per_second(log, seconds: float, appenders: int, build_each: bool = False) -> tuple[float, float]:
    """Events appended per second, and events per commit, by `appenders` closed-loop writers
    each appending one small event at a time to a stream of its own. Each writer builds its
    event once and appends it again and again (the store serializes it every time), so that
    the figure is the log's, not pydantic's; `build_each` builds a new event per append."""
    loop = asyncio.get_running_loop()
    count = 0
    commits = log.commits
    stop = loop.time() + seconds

    async def appender(i: int) -> None:
        nonlocal count
        version = 0
        event = finished("bench", f"r{i}", f"f{i % 10}", 0)
        while loop.time() < stop:
            if build_each:
                event = finished("bench", f"r{i}-{version}", f"f{i % 10}", version)
            await log.append(f"Run:bench:r{i}", version, [event])
            version += 1
            count += 1

    started = loop.time()
    await asyncio.gather(*(appender(i) for i in range(appenders)))
    elapsed = loop.time() - started
    return count / elapsed, count / max(1, log.commits - commits)


def long_log(events: int) -> list[tuple]:
    """Rows of a log of `events` events: a function created every 100 events, runs of it between."""
    rows = []
    function = ""
    for position in range(1, events + 1):
        if position % 100 == 1:
            function = f"f{position // 100}"
            resource = {"name": function, "kind": "Function", "status": "INITIALIZED", "image": "py"}
            event = e.FunctionCreated(organization="bench", name=function, resource=resource, source_digest="d")
            rows.append((position, event.stream, 1, event))
        else:
            event = finished("bench", f"run-{position}", function, position)
            rows.append((position, event.stream, 1, event))
    return [(p, s, v, ev.type_name(), ev.version, ev.model_dump_json()) for p, s, v, ev in rows]


async def rebuild_seconds(store: PostgresStore, events: int) -> tuple[float, float]:
    rows = long_log(events)
    started = time.perf_counter()
    async with store.connection() as conn:
        await conn.copy_records_to_table("events", records=rows, schema_name=store.schema,
                                         columns=["position", "stream", "version", "type", "type_version", "data"],
                                         timeout=600)
    written = time.perf_counter() - started
    projector = Projector(store, PostgresViews(store))
    started = time.perf_counter()
    assert await projector.rebuild() == events
    return written, time.perf_counter() - started


VARIANTS = [("", False, False), (", a new event built per append", False, True), (" + inline read models", True, False)]


async def postgres(url: str, args: argparse.Namespace) -> list[tuple[str, str]]:
    results = []
    for suffix, inline, build_each in VARIANTS:
        schema = f"bench_{uuid.uuid4().hex}"
        store = PostgresStore(url, schema, pool_size=4)
        await store.start()
        try:
            if inline:
                projector = Projector(store, PostgresViews(store))
                await projector.catch_up()
                projector.follow_inline()
            rate, batch = await appends_per_second(store, args.seconds, args.appenders, build_each)
            results.append((f"PostgreSQL appends{suffix}", f"{rate:,.0f} events/s ({batch:.0f} per commit)"))
            if not suffix and args.events:
                async with store.connection() as conn:
                    await conn.execute("TRUNCATE events, resources, runs, tracking")
                written, rebuilt = await rebuild_seconds(store, args.events)
                results.append((f"PostgreSQL: COPY {args.events:,} events", f"{written:.1f} s"))
                results.append((f"PostgreSQL: rebuild read models from {args.events:,} events",
                                f"{rebuilt:.1f} s ({args.events / rebuilt:,.0f} events/s)"))
        finally:
            await store.close()
            conn = await asyncpg.connect(url)
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()
    return results


async def sqlite(args: argparse.Namespace) -> list[tuple[str, str]]:
    results = []
    for suffix, inline, build_each in VARIANTS:
        with tempfile.TemporaryDirectory(prefix="dispatch-bench-") as directory:
            store = SQLiteStore(Path(directory) / "dispatch.db")
            await store.start()
            try:
                if inline:
                    projector = Projector(store, SQLiteViews(store))
                    await projector.catch_up()
                    projector.follow_inline()
                rate, batch = await appends_per_second(store, args.seconds, args.appenders, build_each)
            finally:
                await store.close()
        results.append((f"SQLite appends{suffix} (reference)", f"{rate:,.0f} events/s ({batch:.0f} per commit)"))
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get(
        "DISPATCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--appenders", type=int, default=200)
    parser.add_argument("--events", type=int, default=1_000_000, help="log length to rebuild from (0: skip)")
    args = parser.parse_args()
    results = await postgres(args.database_url, args) + await sqlite(args)
    width = max(len(label) for label, _ in results)
    print(f"{args.appenders} appenders, {args.seconds:g} s each, one small event per append\n")
    for label, value in results:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    asyncio.run(main())
