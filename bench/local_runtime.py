"""The local runtime alone, in this process (no HTTP, no bus, no log), with the sandbox on or off:
what deploying a Python function costs (its zygote started, in its sandbox or not, and a first
worker forked and ready), what a run that finds no worker costs (the zygote forks one, the
function is imported, the run answered), and warm runs through a pool of four workers (the pipe
round trip), at concurrency 1 and 16: runs per second, and CPU time per run (this process's and
the workers'). bench/sandbox.py calls it in rounds, taking turns."""
import asyncio
import io
import logging
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import psutil
import structlog

from dispatch.drivers.local.runtime import LocalRuntime
from dispatch.drivers.ports import DeploymentSpec

IDLE_PAUSE_SECONDS = 0.05
CONCURRENCY = (1, 16)


def _quiet() -> None:
    """The runtime warns loudly when it runs functions without a sandbox: expected here."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


async def runtime_round(mode: str, count: int, runs: int) -> dict:
    """Deploy a no-op Python function scaled to zero (timed) and one kept warm on four workers; time
    `count` runs that each find no worker and as many warm ones (medians, seconds); warm runs per
    second and CPU microseconds per run at each of CONCURRENCY, `runs` each."""
    _quiet()
    runtime = LocalRuntime(Path(tempfile.mkdtemp(prefix="dispatch-bench-")), sandbox=mode)
    try:
        started = time.perf_counter()
        await runtime.deploy(_spec("zero", min_replicas=0, idle_seconds=0))
        deployed = time.perf_counter() - started
        await runtime.deploy(_spec("warm", min_replicas=4, max_replicas=4))
        cold, warm = [], []
        for _ in range(count):
            await _no_worker_left(runtime, "zero")
            cold.append(await _timed_run(runtime, "zero"))
            warm.append(await _timed_run(runtime, "warm"))
        figures = {"deploy": deployed, "cold": statistics.median(cold), "warm": statistics.median(warm)}
        for concurrency in CONCURRENCY:
            cpu = _cpu_seconds(runtime)
            figures[f"per_s_{concurrency}"] = await _throughput(runtime, concurrency, runs)
            figures[f"cpu_us_{concurrency}"] = (_cpu_seconds(runtime) - cpu) / runs * 1e6
    finally:
        await runtime.close()
    return figures


def _spec(name: str, **scale) -> DeploymentSpec:
    return DeploymentSpec(faas_id=name, name=name, organization="bench", language="python3", image_location="",
                          source=_source("noop.py", "def handle(context, payload):\n    return payload\n"),
                          handler="noop.handle", **scale)


def _source(name: str, code: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = code.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def _timed_run(runtime: LocalRuntime, name: str) -> float:
    started = time.perf_counter()
    answer = await runtime.invoke(name, {}, {"n": 1}, 10_000)
    elapsed = time.perf_counter() - started
    if answer.error is not None or answer.output != {"n": 1}:
        raise RuntimeError(f"the no-op function failed: {answer.error}")
    return elapsed


async def _throughput(runtime: LocalRuntime, concurrency: int, runs: int) -> float:
    left = runs

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            answer = await runtime.invoke("warm", {}, {"n": 1}, 10_000)
            if answer.output != {"n": 1}:
                raise RuntimeError(f"the no-op function failed: {answer.error}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return runs / (time.perf_counter() - started)


def _cpu_seconds(runtime: LocalRuntime) -> float:
    """CPU time used so far by this process (the runtime's side) and the warm function's workers:
    steadier than throughput on a machine that other work shares."""
    used = time.process_time()
    for worker in runtime._pools["warm"]._workers:  # noqa: SLF001
        times = psutil.Process(worker.pid).cpu_times()
        used += times.user + times.system
    return used


async def _no_worker_left(runtime: LocalRuntime, name: str) -> None:
    pool = runtime._pools[name]  # noqa: SLF001 - the bench waits for the idle worker to stop
    while pool.size:
        await asyncio.sleep(0.005)
    await asyncio.sleep(IDLE_PAUSE_SECONDS)
