"""What authentication costs: warm blocking runs of a no-op Python function through
`POST /v1/runs` at concurrency 16, on a server with authentication (a service account's bearer
token on every request) and on one started `--skip-auth`, taking turns in the same run.

    .venv/bin/python bench/auth.py [--runs 3000] [--rounds 3]
"""
import argparse
import asyncio
import statistics
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from harness import ORG, DispatchServer, closed_loop  # noqa: E402
from runs import deploy_noop  # noqa: E402

CONCURRENCY = 16


async def rounds_of(server: DispatchServer, runs: int, rounds: int, headers: dict) -> list[dict]:
    async def call() -> None:
        async with session.post(f"{server.url}/v1/runs?functionName=noop", headers=headers,
                                json={"blocking": True, "input": {"n": 1}}) as answer:
            assert answer.status == 200, await answer.text()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        await closed_loop(call, 4, 200)  # warm-up
        return [await closed_loop(call, CONCURRENCY, runs) for _ in range(rounds)]


async def prepared(server: DispatchServer) -> dict:
    async with aiohttp.ClientSession() as session:
        await deploy_noop(server, session)
    return dict(ORG)


async def main(runs: int, rounds: int) -> None:
    with DispatchServer() as secured, DispatchServer("--skip-auth") as open_:
        secured_headers = await prepared(secured)
        open_headers = await prepared(open_)
        assert "Authorization" in secured_headers and "Authorization" not in open_headers
        on, off = [], []
        for _ in range(rounds):  # taking turns, so that the machine's drift hits both alike
            on += await rounds_of(secured, runs, 1, secured_headers)
            off += await rounds_of(open_, runs, 1, open_headers)
    print(f"Warm blocking runs at concurrency {CONCURRENCY}, {runs} per round, {rounds} rounds each")
    print(f"{'case':<26}{'p50 ms':>10}{'p99 ms':>10}{'runs/s':>10}")
    for name, measured in (("authentication on", on), ("--skip-auth", off)):
        print(f"{name:<26}{statistics.median(m['p50_ms'] for m in measured):>10.2f}"
              f"{statistics.median(m['p99_ms'] for m in measured):>10.2f}"
              f"{statistics.median(m['per_s'] for m in measured):>10.0f}")
    ratios = [a["per_s"] / b["per_s"] for a, b in zip(on, off, strict=True)]
    print(f"runs/s with authentication / without, per round: {', '.join(f'{r:.3f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.3f} (goal: at least 0.95)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.rounds))
