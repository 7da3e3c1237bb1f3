"""The Docker runtime's deploy → first result time and warm run latency, through the whole platform
(`dispatch server --runtime docker`, blocking `POST /v1/runs`) and through the runtime alone
(DockerRuntime.deploy / invoke).

    .venv/bin/python bench/docker_runtime.py [--runs 1000]

Needs a Docker engine: DISPATCH_TEST_DOCKER_HOST, else the one `make test` prepares (it is started
here the same way when missing, with the same base image).
"""
import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).parent), str(ROOT)]
from harness import ORG, DispatchServer, closed_loop, source_of  # noqa: E402

from dispatch.drivers.docker import DockerRuntime  # noqa: E402
from dispatch.drivers.ports import DeploymentSpec, ImageSpec  # noqa: E402
from dispatch.schemas import source  # noqa: E402
from tests import docker_engine  # noqa: E402

NOOP = "def handle(ctx, payload):\n    return payload\n"


async def through_the_platform(url: str, runs: int) -> dict:
    env = {"DISPATCH_RUNTIME": "docker", "DISPATCH_DOCKER_URL": url, "DISPATCH_NAMESPACE": "bench-docker"}
    os.environ.update(env)
    with DispatchServer() as server:
        async with aiohttp.ClientSession() as session:
            await server.ready(session)
            await server.create(session, "baseimage", {"name": "base", "dockerUrl": docker_engine.BASE_IMAGE,
                                                       "language": "python3"})
            await server.wait_ready(session, "baseimage", "base")
            await server.create(session, "image", {"name": "py", "baseImageName": "base"})
            await server.wait_ready(session, "image", "py")
            started = time.perf_counter()
            await server.create(session, "function", {"name": "noop", "image": "py",
                                                      "source": source_of("noop.py", NOOP)})
            await server.wait_ready(session, "function", "noop")
            ready = time.perf_counter()
            run_url = f"{server.url}/v1/runs?functionName=noop"

            async def call() -> None:
                async with session.post(run_url, json={"blocking": True, "input": {"n": 1}}, headers=ORG) as answer:
                    body = await answer.json()
                    assert answer.status == 200 and body.get("output") == {"n": 1}, body

            await call()
            first = time.perf_counter()
            await closed_loop(call, 1, 50)
            warm = await closed_loop(call, 1, runs)
            for path in ("function/noop", "image/py", "baseimage/base"):
                async with session.delete(f"{server.url}/v1/{path}", headers=ORG):
                    pass
                await asyncio.sleep(1)
    for name in env:
        os.environ.pop(name)
    return {"create → READY s": ready - started, "create → first result s": first - started,
            "warm run p50 ms": warm["p50_ms"], "warm run p99 ms": warm["p99_ms"]}


async def through_the_runtime(runtime, base_url: str, runs: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="dispatch-bench-source-"))
    (folder / "noop.py").write_text(NOOP)
    try:
        image = await runtime.build_image(ImageSpec(id="bench", name="bench", language="python3", base_url=base_url))
        started = time.perf_counter()
        await runtime.deploy(DeploymentSpec(faas_id="bench-noop", name="noop", organization="bench",
                                            language="python3", image_location=image,
                                            source=source.pack(folder / "noop.py")))
        deployed = time.perf_counter()
        await runtime.invoke("bench-noop", {}, {"n": 1}, 0)
        first = time.perf_counter()
        latencies = []
        for _ in range(runs):
            began = time.perf_counter()
            result = await runtime.invoke("bench-noop", {}, {"n": 1}, 0)
            latencies.append(time.perf_counter() - began)
            assert result.output == {"n": 1}, result
        await runtime.undeploy("bench-noop")
        await runtime.remove_image(image)
    finally:
        await runtime.close()
        shutil.rmtree(folder, ignore_errors=True)
    latencies.sort()
    return {"deploy s": deployed - started, "deploy → first result s": first - started,
            "warm invoke p50 ms": statistics.median(latencies) * 1000,
            "warm invoke p99 ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def show(title: str, figures: dict) -> None:
    print(title)
    for name, value in figures.items():
        print(f"  {name:<28}{value:>10.3f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    url = os.environ.get("DISPATCH_TEST_DOCKER_HOST") or docker_engine.prepare()
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-") as data:
        runtime = DockerRuntime(Path(data), namespace="bench-docker", url=url)
        show("Docker runtime alone", await through_the_runtime(runtime, docker_engine.BASE_IMAGE, args.runs))
    show("Whole platform, dispatch server --runtime docker (embedded)", await through_the_platform(url, args.runs))


if __name__ == "__main__":
    asyncio.run(main())
