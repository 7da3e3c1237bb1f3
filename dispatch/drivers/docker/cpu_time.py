"""The CPU time of a run in a container, for functions with `limits.cpuSeconds`.

A container serves one call at a time (`scale.concurrency` 1, the default), so the CPU time its
cgroup used since the call began is the call's; with more calls per container they share the
allowance. The engine's stats stream reports the total about once a second, so a run is stopped
within about a second past its allowance: the container is killed (the pool replaces it) and the
run fails naming the limit, as on the local runtime. Only calls of limited functions are watched:
each holds one stats stream to the engine while it runs."""
import asyncio
import contextlib
from typing import AsyncIterator

import aiodocker


class CpuWatch:
    exceeded = False


@contextlib.asynccontextmanager
async def watched(docker: aiodocker.Docker, container_id: str, seconds: int | None) -> AsyncIterator[CpuWatch]:
    watch = CpuWatch()
    if not seconds:
        yield watch
        return
    task = asyncio.ensure_future(_watch(docker.containers.container(container_id), seconds, watch))
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiodocker.DockerError, OSError):
            await task


async def _watch(container, seconds: int, watch: CpuWatch) -> None:
    started = None
    async for sample in container.stats(stream=True):
        used = ((sample.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        if used is None:
            continue
        if started is None:
            started = used
        elif (used - started) / 1e9 >= seconds:
            watch.exceeded = True
            with contextlib.suppress(aiodocker.DockerError):
                await container.kill()
            return
