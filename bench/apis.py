"""User-API routes against the warm-run baseline: the same no-op Python function called through
`POST /v1/runs` (blocking) and through API routes of the user-API port (exact path, path with a
parameter, bearer authentication), same client, same concurrency, embedded mode.

    .venv/bin/python bench/apis.py [--runs 3000]
"""
import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from harness import ORG, DispatchServer, closed_loop, report  # noqa: E402
from runs import deploy_noop  # noqa: E402

TOKEN = "bench-token-0123456789"
APIS = [
    {"name": "exact", "function": "noop", "uris": ["/noop"], "methods": ["POST"]},
    {"name": "param", "function": "noop", "uris": ["/users/{id}/noop"], "methods": ["POST"]},
    {"name": "bearer", "function": "noop", "uris": ["/private"], "methods": ["POST"], "authentication": "bearer",
     "authSecret": "keys"},
]


async def setup(server: DispatchServer, session: aiohttp.ClientSession) -> None:
    await deploy_noop(server, session)
    await server.create(session, "secret", {"name": "keys", "secrets": {"bench": TOKEN}})
    for api in APIS:
        await server.create(session, "api", api)
        await server.wait_ready(session, "api", api["name"])


def caller(session: aiohttp.ClientSession, url: str, body: dict, headers: dict, output_of):
    async def call() -> None:
        async with session.post(url, json=body, headers=headers) as answer:
            result = await answer.json()
            assert answer.status == 200 and output_of(result) == {"n": 1}, result
    return call


async def measure(call, runs: int, concurrencies=(1, 16)) -> dict:
    await closed_loop(call, 4, 200)  # warm-up
    return {c: await closed_loop(call, c, runs) for c in concurrencies}


async def main(runs: int) -> None:
    with DispatchServer() as server:
        api = f"http://127.0.0.1:{server.api_port}/bench"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            await setup(server, session)
            cases = {
                "POST /v1/runs (baseline)": caller(session, f"{server.url}/v1/runs?functionName=noop",
                                                   {"blocking": True, "input": {"n": 1}}, ORG, lambda r: r["output"]),
                "API exact path": caller(session, f"{api}/noop", {"n": 1}, {}, lambda r: r),
                "API path parameter": caller(session, f"{api}/users/42/noop", {"n": 1}, {}, lambda r: r),
                "API bearer auth": caller(session, f"{api}/private", {"n": 1},
                                          {"Authorization": f"Bearer {TOKEN}"}, lambda r: r),
            }
            results = {name: await measure(call, runs) for name, call in cases.items()}
            # the run log grows by every case: measured again last, the baseline shows that drift
            results["POST /v1/runs (again, last)"] = await measure(cases["POST /v1/runs (baseline)"], runs)
    baseline = results["POST /v1/runs (baseline)"]
    rows = [(f"{name}, c={c}", measured[c], baseline[c]) for c in (1, 16) for name, measured in results.items()]
    print(report(f"Blocking runs of a no-op Python function: API routes vs POST /v1/runs ({runs} per case)", rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    asyncio.run(main(parser.parse_args().runs))
