"""The local runtime: cold starts, warm overhead against Google's functions-framework, memory.

    python3 -m venv ~/.cache/dispatch-bench/ff && ~/.cache/dispatch-bench/ff/bin/pip install functions-framework
    .venv/bin/python bench/runtimes.py [--cold 20] [--runs 3000] [--functions-framework PATH]

functions-framework pins cloudevents<=1.12 while Dispatch's tests need cloudevents>=2.2, so it lives in a
virtualenv of its own (the first line; --functions-framework names its executable).

- cold start: create a function -> READY -> its first run's result, through the management API;
  and the first run after the function scaled to zero (minReplicas 0, idleSeconds 0: every run
  finds no worker), Python and Node.js;
- warm overhead: the same no-op function behind functions-framework (its own CLI: gunicorn, one
  process, its default threads) and behind a Dispatch API route on the user-API port; same client,
  same concurrency; Dispatch must record every run;
- memory: the server's RSS once idle, the zygote's, and each warm worker's USS (pages it does not share).
"""
import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from harness import ORG, DispatchServer, closed_loop, free_port, source_of  # noqa: E402

CODE = {
    "python3": ("pid.py", "import os\ndef handle(context, payload):\n    return os.getpid()\n"),
    "nodejs": ("pid.js", "module.exports = () => process.pid;\n"),
}
NOOP = "def handle(context, payload):\n    return payload\n"
NOOP_FF = "def handle(request):\n    return request.get_json(silent=True) or {}\n"


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   max {ordered[-1] * 1000:7.1f} ms"


async def run_once(server: DispatchServer, session: aiohttp.ClientSession, name: str) -> object:
    async with session.post(f"{server.url}/v1/runs?functionName={name}", json={"blocking": True, "input": {}},
                            headers=ORG) as answer:
        body = await answer.json()
    if body.get("error"):
        raise RuntimeError(f"{name}: {body['error']}")
    return body["output"]


async def wait_ready(server: DispatchServer, session: aiohttp.ClientSession, path: str, name: str) -> None:
    for _ in range(6000):
        async with session.get(f"{server.url}/v1/{path}/{name}", headers=ORG) as answer:
            status = (await answer.json()).get("status")
        if status == "READY":
            return
        if status == "ERROR":
            raise RuntimeError(f"{path} {name} is in ERROR")
        await asyncio.sleep(0.005)
    raise RuntimeError(f"{path} {name} never became READY")


async def setup_images(server: DispatchServer, session: aiohttp.ClientSession) -> None:
    await server.ready(session)
    for language in CODE:
        await server.create(session, "baseimage", {"name": f"{language}-base", "dockerUrl": language,
                                                   "language": language})
        await server.create(session, "image", {"name": language, "baseImageName": f"{language}-base"})
    for language in CODE:
        await wait_ready(server, session, "image", language)


async def cold_starts(server: DispatchServer, session: aiohttp.ClientSession, language: str, count: int) -> dict:
    file, code = CODE[language]
    deploys = []
    for i in range(count):
        name = f"cold-{language}-{i}"
        started = time.perf_counter()
        await server.create(session, "function", {"name": name, "image": language, "source": source_of(file, code)})
        await wait_ready(server, session, "function", name)
        await run_once(server, session, name)
        deploys.append(time.perf_counter() - started)
    name = f"zero-{language}"
    await server.create(session, "function", {"name": name, "image": language, "source": source_of(file, code),
                                               "scale": {"minReplicas": 0, "idleSeconds": 0}})
    await wait_ready(server, session, "function", name)
    await run_once(server, session, name)
    after_zero, pids = [], set()
    for _ in range(count):
        await asyncio.sleep(0.3)  # the worker of the previous run stops meanwhile
        started = time.perf_counter()
        pids.add(await run_once(server, session, name))
        after_zero.append(time.perf_counter() - started)
    warm = []
    for _ in range(count):
        started = time.perf_counter()
        await run_once(server, session, f"cold-{language}-0")
        warm.append(time.perf_counter() - started)
    return {"deploy": deploys, "zero": after_zero, "warm": warm, "distinct workers": len(pids)}


async def warm_overhead(server: DispatchServer, session: aiohttp.ClientSession, runs: int, framework_cli: Path) -> dict:
    await server.create(session, "function", {"name": "noop", "image": "python3", "source": source_of("noop.py", NOOP)})
    await wait_ready(server, session, "function", "noop")
    await server.create(session, "api", {"name": "noop", "function": "noop", "methods": ["POST"], "uris": ["/noop"]})
    await wait_ready(server, session, "api", "noop")
    folder = Path(tempfile.mkdtemp(prefix="ff-bench-"))
    (folder / "main.py").write_text(NOOP_FF)
    port = free_port()
    framework = subprocess.Popen([str(framework_cli), "--target", "handle",
                                  "--source", str(folder / "main.py"), "--host", "127.0.0.1", "--port", str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await listening(session, f"http://127.0.0.1:{port}/")
        results = {}
        for concurrency in (1, 16):
            for label, url in (("functions-framework", f"http://127.0.0.1:{port}/"),
                               ("dispatch", f"http://127.0.0.1:{server.api_port}/bench/noop")):
                results[(label, concurrency)] = await measure(session, url, concurrency, runs)
    finally:
        framework.terminate()
        framework.wait(timeout=10)
    return results


async def measure(session: aiohttp.ClientSession, url: str, concurrency: int, runs: int) -> dict:
    async def call() -> None:
        async with session.post(url, json={"n": 1}) as answer:
            body = await answer.json()
            assert answer.status == 200 and body == {"n": 1}, (answer.status, body)

    await closed_loop(call, concurrency, 200)  # warm-up
    return await closed_loop(call, concurrency, runs)


async def listening(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(200):
        try:
            async with session.post(url, json={}):
                return
        except aiohttp.ClientError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} never answered")


async def recorded_runs(server: DispatchServer, session: aiohttp.ClientSession, name: str) -> int:
    async with session.get(f"{server.url}/v1/runs?functionName={name}", headers=ORG) as answer:
        return len(await answer.json())


def memory(server: DispatchServer) -> dict:
    process = psutil.Process(server.process.pid)
    found = {"server RSS": process.memory_info().rss, "zygote USS": 0, "python workers": [], "nodejs workers": []}
    for child in process.children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            uss = child.memory_full_info().uss
        except psutil.Error:
            continue
        if "forkserver" in command and child.ppid() == process.pid:
            found["zygote USS"] = uss
        elif "server.js" in command or "/proc/self/fd" in command and "node" in command:
            found["nodejs workers"].append(uss)
        elif "forkserver" in command:
            found["python workers"].append(uss)
    return found


async def main(cold: int, runs: int, framework_cli: Path) -> None:
    if not framework_cli.exists():
        sys.exit(f"{framework_cli} not found; install functions-framework as the docstring shows:\n{__doc__}")
    with DispatchServer() as server:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            await setup_images(server, session)
            await asyncio.sleep(1)
            idle_rss = psutil.Process(server.process.pid).memory_info().rss
            starts = {language: await cold_starts(server, session, language, cold) for language in CODE}
            overhead = await warm_overhead(server, session, runs, framework_cli)
            await asyncio.sleep(1)
            recorded = await recorded_runs(server, session, "noop")
            sizes = memory(server)
    print(f"Cold starts ({cold} of each; Python and Node.js functions returning their pid)")
    for language, figures in starts.items():
        print(f"  {language:8} create -> READY -> first result   {percentiles(figures['deploy'])}")
        print(f"  {language:8} first run after scale to zero    {percentiles(figures['zero'])}"
              f"   ({figures['distinct workers']} distinct workers)")
        print(f"  {language:8} warm run, same path               {percentiles(figures['warm'])}")
    print(f"\nWarm no-op runs, {runs} per case: functions-framework (gunicorn) vs Dispatch user API route")
    print(f"{'case':<34}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}")
    for (label, concurrency), figures in overhead.items():
        print(f"{label + f', concurrency {concurrency}':<34}{figures['p50_ms']:>9.2f}{figures['p99_ms']:>9.2f}"
              f"{figures['per_s']:>9.0f}")
    for concurrency in (1, 16):
        ff, ours = overhead[("functions-framework", concurrency)], overhead[("dispatch", concurrency)]
        print(f"concurrency {concurrency}: dispatch/functions-framework throughput {ours['per_s'] / ff['per_s']:.2f}x,"
              f" p99 {ours['p99_ms'] / ff['p99_ms']:.2f}x")
    print(f"runs recorded by dispatch: {recorded} of {2 * (runs + 200)} sent")
    print(f"\nMemory: server RSS idle {idle_rss / 2**20:.1f} MB, after the runs {sizes['server RSS'] / 2**20:.1f} MB;"
          f" zygote USS {sizes['zygote USS'] / 2**20:.1f} MB")
    for kind in ("python workers", "nodejs workers"):
        values = sorted(sizes[kind])
        if values:
            print(f"  {kind}: {len(values)} warm, USS median {statistics.median(values) / 2**20:.1f} MB,"
                  f" max {values[-1] / 2**20:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--functions-framework", type=Path,
                        default=Path.home() / ".cache" / "dispatch-bench" / "ff" / "bin" / "functions-framework")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.cold, arguments.runs, arguments.functions_framework))
