"""Warm blocking runs of a no-op Python function through `POST /v1/runs`, against a bare aiohttp
handler calling the same function in-process (measured in the same run, same client).

    .venv/bin/python bench/runs.py [--runs 3000]
"""
import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from harness import ORG, DispatchServer, closed_loop, free_port, report, source_of  # noqa: E402

NOOP = "def handle(ctx, payload):\n    return payload\n"


async def deploy_noop(server: DispatchServer, session: aiohttp.ClientSession) -> None:
    await server.ready(session)
    await server.create(session, "baseimage", {"name": "py-base", "dockerUrl": "python3", "language": "python3"})
    await server.create(session, "image", {"name": "py", "baseImageName": "py-base"})
    await server.create(session, "function", {"name": "noop", "image": "py", "source": source_of("noop.py", NOOP)})
    await server.wait_ready(session, "function", "noop")


async def measure(url: str, session: aiohttp.ClientSession, runs: int, concurrencies=(1, 16)) -> dict:
    async def call() -> None:
        async with session.post(url, json={"blocking": True, "input": {"n": 1}}, headers=ORG) as answer:
            body = await answer.json()
            assert answer.status == 200 and body.get("output") == {"n": 1}, body

    await closed_loop(call, 4, 200)  # warm-up
    return {c: await closed_loop(call, c, runs) for c in concurrencies}


async def recorded_runs(server: DispatchServer, session: aiohttp.ClientSession) -> int:
    async with session.get(f"{server.url}/v1/runs?functionName=noop", headers=ORG) as answer:
        return len(await answer.json())


async def wait_listening(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(100):
        try:
            async with session.get(url):
                return
        except aiohttp.ClientError:
            await asyncio.sleep(0.05)


async def run_cases(server: DispatchServer, baseline_url: str, runs: int) -> tuple[dict, dict, int]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        await deploy_noop(server, session)
        await wait_listening(session, baseline_url)
        baseline = await measure(f"{baseline_url}/v1/runs", session, runs)
        dispatch = await measure(f"{server.url}/v1/runs?functionName=noop", session, runs)
        await asyncio.sleep(1)
        return baseline, dispatch, await recorded_runs(server, session)


async def main(runs: int) -> None:
    port = free_port()
    baseline_process = subprocess.Popen([sys.executable, str(Path(__file__).parent / "baseline_server.py"), str(port)])
    try:
        with DispatchServer() as server:
            baseline, dispatch, recorded = await run_cases(server, f"http://127.0.0.1:{port}", runs)
    finally:
        baseline_process.terminate()
    rows = []
    for c in (1, 16):
        rows.append((f"baseline, concurrency {c}", baseline[c], baseline[c]))
        rows.append((f"dispatch, concurrency {c}", dispatch[c], baseline[c]))
    print(report(f"Warm blocking runs of a no-op Python function ({runs} runs per case)", rows))
    print(f"runs recorded by dispatch: {recorded} of {200 + 2 * runs} sent")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    asyncio.run(main(parser.parse_args().runs))
