"""The local runtime: cold starts, warm overhead against Google's functions-framework, memory.

    python3 -m venv ~/.cache/dispatch-bench/ff && ~/.cache/dispatch-bench/ff/bin/pip install functions-framework
    .venv/bin/python bench/runtimes.py [--cold 20] [--runs 3000] [--functions-framework PATH] [--cold-only]

functions-framework pins cloudevents<=1.12 while Dispatch's tests need cloudevents>=2.2, so it lives in a
virtualenv of its own (the first line; --functions-framework names its executable).

- cold start: create a function -> READY -> its first run's result, through the management API;
  and the first run after the function scaled to zero (minReplicas 0, idleSeconds 0: every run
  finds no worker), Python, Node.js and Java; --cold-only measures these (and memory) alone;
- warm overhead: the same no-op function behind functions-framework (its own CLI: gunicorn, one
  process, its default threads) and behind a Dispatch API route on the user-API port; same client,
  same concurrency; Dispatch must record every run. A third server is the floor of the HTTP layer
  alone: an aiohttp app on uvloop (what Dispatch's gateway is built on) that answers the body back;
- memory: the server's RSS once idle, the zygote's, and each warm worker's USS (pages it does not share).
"""
import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from harness import ORG, DispatchServer, closed_loop, free_port, source_of  # noqa: E402

CODE = {
    "python3": ("pid.py", "import os\ndef handle(context, payload):\n    return os.getpid()\n"),
    "nodejs": ("pid.js", "module.exports = () => process.pid;\n"),
    "java": ("Pid.java", "import java.util.Map;\nimport java.util.function.BiFunction;\n\npublic class Pid implements"
                         " BiFunction<Map<String, Object>, Object, Long> {\n    public Long apply(Map<String, Object>"
                         " context, Object payload) {\n        return ProcessHandle.current().pid();\n    }\n}\n"),
}
NOOP = "def handle(context, payload):\n    return payload\n"
NOOP_FF = "def handle(request):\n    return request.get_json(silent=True) or {}\n"
HTTP_FLOOR = """
import json, sys, uvloop
from aiohttp import web
async def echo(request):
    return web.json_response(json.loads(await request.read()))
app = web.Application()
app.router.add_post("/", echo)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms"
            f"   max {ordered[-1] * 1000:7.1f} ms")


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


CONCURRENCY = (1, 4, 16)


async def warm_overhead(server: DispatchServer, session: aiohttp.ClientSession, runs: int, rounds: int,
                        framework_cli: Path) -> dict:
    """Per concurrency, `rounds` rounds of runs/rounds requests to each server, taking turns (which
    goes first alternates): the machine's speed drifts over minutes, and each round's ratio
    compares two measurements taken seconds apart."""
    await server.create(session, "function", {"name": "noop", "image": "python3", "source": source_of("noop.py", NOOP)})
    await wait_ready(server, session, "function", "noop")
    await server.create(session, "api", {"name": "noop", "function": "noop", "methods": ["POST"], "uris": ["/noop"]})
    await wait_ready(server, session, "api", "noop")
    folder = Path(tempfile.mkdtemp(prefix="ff-bench-"))
    (folder / "main.py").write_text(NOOP_FF)
    port, floor_port = free_port(), free_port()
    servers = [subprocess.Popen([str(framework_cli), "--target", "handle", "--source", str(folder / "main.py"),
                                 "--host", "127.0.0.1", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
               subprocess.Popen([sys.executable, "-c", HTTP_FLOOR, str(floor_port)])]
    urls = {"functions-framework": f"http://127.0.0.1:{port}/",
            "dispatch": f"http://127.0.0.1:{server.api_port}/bench/noop",
            "aiohttp floor": f"http://127.0.0.1:{floor_port}/"}
    try:
        for url in (urls["functions-framework"], urls["aiohttp floor"]):
            await listening(session, url)
        results = {}
        for concurrency in CONCURRENCY:
            for url in urls.values():
                await closed_loop(partial(call, session, url), concurrency, 200)  # warm-up
            measured = {label: [] for label in urls}
            for turn in range(rounds):
                for label in (list(urls) if turn % 2 == 0 else list(urls)[::-1]):
                    measured[label].append(await closed_loop(partial(call, session, urls[label]), concurrency,
                                                             runs // rounds))
            results[concurrency] = measured
    finally:
        for process in servers:
            process.terminate()
            process.wait(timeout=10)
    return results


async def call(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(url, json={"n": 1}) as answer:
        body = await answer.json()
        assert answer.status == 200 and body == {"n": 1}, (answer.status, body)


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


def wakeup_penalty(samples: int = 500) -> str:
    """What a process pays for having slept: the same small piece of work timed back to back and
    right after a 2 ms sleep, as every process on a request's path sleeps at concurrency 1. On a
    virtual machine whose idle cores are given back to the host the second is several times the first."""
    document = {f"field{i}": [i, str(i), {"nested": i}] for i in range(8)}

    def timed(pause: float) -> float:
        durations = []
        for _ in range(samples):
            if pause:
                time.sleep(pause)
            started = time.perf_counter()
            json.loads(json.dumps(document))
            durations.append(time.perf_counter() - started)
        return statistics.median(durations)

    busy, after_sleep = timed(0), timed(0.002)
    return (f"the same work takes {busy * 1e6:.0f} us back to back and {after_sleep * 1e6:.0f} us right after"
            f" a 2 ms sleep ({after_sleep / busy:.1f}x)")


def memory(server: DispatchServer) -> dict:
    process = psutil.Process(server.process.pid)
    found = {"server RSS": process.memory_info().rss, "zygote USS": 0, "python workers": [], "nodejs workers": [],
             "java workers": []}
    for child in process.children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            uss = child.memory_full_info().uss
        except psutil.Error:
            continue
        if "forkserver" in command and child.ppid() == process.pid:
            found["zygote USS"] = uss
        elif "dispatch.runtime.Server" in command:
            found["java workers"].append(uss)
        elif "server.js" in command or "/proc/self/fd" in command and "node" in command:
            found["nodejs workers"].append(uss)
        elif "forkserver" in command:
            found["python workers"].append(uss)
    return found


async def main(cold: int, runs: int, rounds: int, framework_cli: Path, cold_only: bool) -> None:
    if not cold_only and not framework_cli.exists():
        sys.exit(f"{framework_cli} not found; install functions-framework as the docstring shows:\n{__doc__}")
    wakeup = wakeup_penalty()
    with DispatchServer() as server:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            await setup_images(server, session)
            await asyncio.sleep(1)
            idle_rss = psutil.Process(server.process.pid).memory_info().rss
            starts = {language: await cold_starts(server, session, language, cold) for language in CODE}
            if not cold_only:
                overhead = await warm_overhead(server, session, runs, rounds, framework_cli)
                await asyncio.sleep(1)
                recorded = await recorded_runs(server, session, "noop")
            sizes = memory(server)
    print(f"Cold starts ({cold} of each; Python, Node.js and Java functions returning their pid)")
    for language, figures in starts.items():
        print(f"  {language:8} create -> READY -> first result   {percentiles(figures['deploy'])}")
        print(f"  {language:8} first run after scale to zero    {percentiles(figures['zero'])}"
              f"   ({figures['distinct workers']} distinct workers)")
        print(f"  {language:8} warm run, same path               {percentiles(figures['warm'])}")
    if not cold_only:
        print_overhead(overhead, runs, rounds, recorded)
    print(f"machine: {wakeup}")
    print(f"\nMemory: server RSS idle {idle_rss / 2**20:.1f} MB, after the runs {sizes['server RSS'] / 2**20:.1f} MB;"
          f" zygote USS {sizes['zygote USS'] / 2**20:.1f} MB")
    for kind in ("python workers", "nodejs workers", "java workers"):
        values = sorted(sizes[kind])
        if values:
            print(f"  {kind}: {len(values)} warm, USS median {statistics.median(values) / 2**20:.1f} MB,"
                  f" max {values[-1] / 2**20:.1f} MB")


def print_overhead(overhead: dict, runs: int, rounds: int, recorded: int) -> None:
    print(f"\nWarm no-op runs: functions-framework (gunicorn) vs a Dispatch user API route, and the floor of the"
          f" HTTP layer alone (aiohttp answering the body back); {runs} runs per case in {rounds} alternating rounds;"
          f" each round's ratio is that server's throughput over functions-framework's")
    print(f"{'case':<36}{'p50 ms':>8}{'p99 ms':>8}{'req/s':>8}   per-round throughput ratios -> median")
    for concurrency, measured in overhead.items():
        for label, rows in measured.items():
            line = (f"{label + f', concurrency {concurrency}':<36}{statistics.median(r['p50_ms'] for r in rows):>8.2f}"
                    f"{statistics.median(r['p99_ms'] for r in rows):>8.2f}"
                    f"{statistics.median(r['per_s'] for r in rows):>8.0f}")
            if label != "functions-framework":
                ratios = [ours["per_s"] / theirs["per_s"]
                          for ours, theirs in zip(rows, measured["functions-framework"], strict=True)]
                line += f"   {' '.join(f'{x:.2f}' for x in ratios)} -> {statistics.median(ratios):.2f}x"
            print(line)
        p50 = {label: statistics.median(r["p50_ms"] for r in rows) for label, rows in measured.items()}
        print(f"{'':<4}p50 above the floor:"
              f" functions-framework +{p50['functions-framework'] - p50['aiohttp floor']:.2f} ms,"
              f" dispatch +{p50['dispatch'] - p50['aiohttp floor']:.2f} ms")
    sent = len(CONCURRENCY) * (200 + rounds * (runs // rounds))
    print(f"runs recorded by dispatch: {recorded} of {sent} sent")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--functions-framework", type=Path,
                        default=Path.home() / ".cache" / "dispatch-bench" / "ff" / "bin" / "functions-framework")
    parser.add_argument("--cold-only", action="store_true", help="cold starts and memory alone")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.cold, arguments.runs, arguments.rounds, arguments.functions_framework,
                     arguments.cold_only))
