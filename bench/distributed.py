"""The distributed mode on this machine's RabbitMQ and PostgreSQL, measured in one run:

1. warm blocking runs of a no-op Python function through a gateway process and a handler
   process, at concurrency 1 and 32, against the raw aio-pika request/reply round trip on the
   same broker (the floor);
2. asynchronous runs, accepted → finished, per second, side by side with Celery running the same
   function on the same RabbitMQ (results over rpc://, so every Celery run is observed too).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/distributed.py [--runs 2000]
"""
import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from harness import ORG, DispatchServer, closed_loop, report  # noqa: E402
from runs import deploy_noop, measure  # noqa: E402

AMQP = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def handler_process(namespace: str, data_dir: Path, *extra: str) -> subprocess.Popen:
    """A handlers process, returned once it consumes (it says so in its output); `extra`: more options."""
    log = data_dir.parent / f"handlers-{namespace}.log"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dispatch"), "server", "--role", "handlers", "--bus", AMQP,
         "--store", DATABASE, "--namespace", namespace, "--data-dir", str(data_dir), *extra],
        stdout=log.open("w"), stderr=subprocess.STDOUT)
    for _ in range(600):
        if "handlers are running" in log.read_text():
            return process
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()  # not left behind, consuming, by a bench that gives up on it
    process.wait()
    raise RuntimeError(f"the handlers process did not start: {log.read_text()[-1000:]}")


async def async_runs(server: DispatchServer, session: aiohttp.ClientSession, total: int) -> float:
    """Runs per second from the first submission to the last run recorded as finished."""
    started, since = time.perf_counter(), int(time.time()) - 1  # only this phase's runs are read back

    async def submit() -> None:
        async with session.post(f"{server.url}/v1/runs?functionName=noop", json={"input": {"n": 1}},
                                headers=ORG) as answer:
            assert answer.status == 202, await answer.text()

    await closed_loop(submit, 32, total)
    while True:
        async with session.get(f"{server.url}/v1/runs?functionName=noop&since={since}",
                               headers=ORG) as answer:
            runs = await answer.json()
        finished = sum(1 for r in runs if r["status"] in ("READY", "ERROR") and not r["blocking"])
        if finished >= total:
            return total / (time.perf_counter() - started)
        await asyncio.sleep(0.25)


def celery_runs(total: int) -> float:
    from celery_app import app, noop

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--concurrency", "2", "-P", "prefork",
         "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "warning"],
        cwd=Path(__file__).parent, env={**os.environ, "BENCH_AMQP_URL": AMQP},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        noop.apply_async(({"n": 0},), queue=queue).get(timeout=60)  # the worker is up
        started = time.perf_counter()
        results = [noop.apply_async(({"n": 1},), queue=queue) for _ in range(total)]
        for result in results:
            result.get(timeout=120)
        return total / (time.perf_counter() - started)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)
        app.close()


async def dispatch_cases(runs: int) -> tuple[dict, float]:
    from dispatch.server import drop_installation
    from dispatch.settings import Settings

    namespace = f"bench{uuid.uuid4().hex[:8]}"
    common = ("--bus", AMQP, "--store", DATABASE, "--namespace", namespace)
    try:
        with DispatchServer("--role", "gateway", *common) as server:
            handler = handler_process(namespace, server.data_dir)
            try:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                    await deploy_noop(server, session)
                    blocking = await measure(f"{server.url}/v1/runs?functionName=noop", session, runs,
                                             concurrencies=(1, 32))
                    per_s = await async_runs(server, session, runs)
            finally:
                handler.terminate()
                handler.wait(timeout=30)
    finally:  # a failed run must not leave its queues and schema behind
        await drop_installation(Settings(bus=AMQP, store=DATABASE, namespace=namespace))
    return blocking, per_s


async def main(runs: int) -> None:
    from rpc_floor import measure_floor

    floor = {c: await measure_floor(AMQP, c, runs) for c in (1, 32)}
    blocking, dispatch_async = await dispatch_cases(runs)
    celery_async = celery_runs(runs)
    rows = []
    for c in (1, 32):
        rows.append((f"aio-pika rpc floor, c={c}", floor[c], floor[c]))
        rows.append((f"dispatch blocking, c={c}", blocking[c], floor[c]))
    print(report(f"Distributed warm blocking runs ({runs} per case) against the raw broker round trip", rows))
    print(f"\nAsync runs accepted → finished ({runs} runs): dispatch {dispatch_async:.0f}/s, "
          f"celery {celery_async:.0f}/s, ratio {dispatch_async / celery_async:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    asyncio.run(main(parser.parse_args().runs))
