"""What the local runtime's sandbox (bubblewrap, one per function) costs: two embedded servers, one
`--sandbox on` and one `--sandbox off`, measured in the same run, taking turns (which goes first
alternates from round to round), each round giving a ratio on/off; medians of the rounds: short
rounds, many of them, so that a burst of other work on the machine moves few of them. (A
server running as root runs each function as a user of its own either way: see sandbox.py.)

    apt-get install bubblewrap
    .venv/bin/python bench/sandbox.py [--rounds 10] [--cold 5] [--runs 3000] [--warm-rounds 30]

- cold start: the first run of a function scaled to zero (minReplicas 0, idleSeconds 0: every run
  finds no worker, and the function's zygote forks one), Python and Node.js; a run of the same code
  kept warm, on the same path, so that the difference is what starting a worker costs; and a freshly
  created function: create -> READY -> first result, which also starts the function's zygote (and
  its sandbox);
- the same, of the local runtime alone, in this process (bench/local_runtime.py): a deploy (zygote
  and first worker), a run that finds no worker, a warm run, and warm runs per second at
  concurrency 1 and 16: all the sandbox could change, without the HTTP, bus and log around it;
- warm blocking runs of a no-op Python function through `POST /v1/runs`, concurrency 1 and 16:
  runs/s, p50 and p99, and the CPU time per run of the server's process tree (the server, the
  zygotes and the workers), which other work on the machine moves less than throughput.
"""
import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from harness import ORG, DispatchServer, closed_loop, source_of  # noqa: E402
from local_runtime import runtime_round  # noqa: E402
from runtimes import CODE, NOOP, run_once, wait_ready  # noqa: E402

LANGUAGES = ("python3", "nodejs")
MODES = ("on", "off")
SCALED_TO_ZERO = {"minReplicas": 0, "idleSeconds": 0}
HOSTNAME = "import socket\ndef handle(context, payload):\n    return socket.gethostname()\n"
SANDBOX_HOSTNAME = "dispatch"  # bubblewrap.py gives each sandbox this host name
COLD_GOAL_MS = 20
THROUGHPUT_GOAL = 0.10
WORKER_STOPS_SECONDS = 0.3  # after a run, the idle worker of a function scaled to zero stops meanwhile


async def setup(server: DispatchServer, session: aiohttp.ClientSession, mode: str) -> str:
    """Deploy the bench's functions, check the sandbox is `mode`; return the server's administrator's token."""
    await server.ready(session)
    for language in LANGUAGES:
        await server.create(session, "baseimage", {"name": f"{language}-base", "dockerUrl": language,
                                                   "language": language})
        await server.create(session, "image", {"name": language, "baseImageName": f"{language}-base"})
    for language in LANGUAGES:
        await wait_ready(server, session, "image", language)
        file, code = CODE[language]
        await deploy(server, session, f"zero-{language}", source_of(file, code), SCALED_TO_ZERO, language)
        await deploy(server, session, f"warm-{language}", source_of(file, code), image=language)
    await deploy(server, session, "noop", source_of("noop.py", NOOP))
    await deploy(server, session, "hostname", source_of("hostname.py", HOSTNAME))
    sandboxed = await run_once(server, session, "hostname") == SANDBOX_HOSTNAME
    if sandboxed != (mode == "on"):
        raise RuntimeError(f"the server started with --sandbox {mode} runs its functions "
                           f"{'in' if sandboxed else 'without'} a sandbox")
    return ORG["Authorization"]


async def deploy(server: DispatchServer, session: aiohttp.ClientSession, name: str, source: str,
                 scale: dict | None = None, image: str = "python3") -> None:
    await server.create(session, "function", {"name": name, "image": image, "source": source, "scale": scale or {}})
    await wait_ready(server, session, "function", name)


async def timed(work) -> float:
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


async def cold_round(server: DispatchServer, session: aiohttp.ClientSession, turn: int, count: int) -> dict:
    """One round on one server: `count` runs after scale to zero and as many warm ones, per language;
    one freshly created function per language."""
    figures = {}
    for language in LANGUAGES:
        zero, warm = [], []
        for _ in range(count):
            await asyncio.sleep(WORKER_STOPS_SECONDS)
            zero.append(await timed(run_once(server, session, f"zero-{language}")))
            warm.append(await timed(run_once(server, session, f"warm-{language}")))
        file, code = CODE[language]
        name = f"fresh-{language}-{turn}"
        fresh = await timed(first_result(server, session, name, source_of(file, code), language))
        figures[language] = {"zero": statistics.median(zero), "warm": statistics.median(warm), "fresh": fresh}
    return figures


async def first_result(server: DispatchServer, session: aiohttp.ClientSession, name: str, source: str,
                       language: str) -> None:
    await deploy(server, session, name, source, image=language)
    await run_once(server, session, name)


async def warm_round(server: DispatchServer, session: aiohttp.ClientSession, concurrency: int, runs: int) -> dict:
    url = f"{server.url}/v1/runs?functionName=noop"

    async def call() -> None:
        async with session.post(url, json={"blocking": True, "input": {"n": 1}}, headers=ORG) as answer:
            body = await answer.json()
            assert answer.status == 200 and body.get("output") == {"n": 1}, body

    cpu = tree_cpu_seconds(server)
    measured = await closed_loop(call, concurrency, runs)
    return measured | {"cpu_seconds": tree_cpu_seconds(server) - cpu}


def tree_cpu_seconds(server: DispatchServer) -> float:
    """CPU time used so far by the server and its processes (zygotes, workers): per run, steadier
    than throughput on a machine that other work shares."""
    root = psutil.Process(server.process.pid)
    used = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        used += times.user + times.system
    return used


async def runtime_alone(rounds: int, count: int, runs: int) -> dict[str, list[dict]]:
    measured = {mode: [] for mode in MODES}
    for turn in range(rounds):
        for mode in MODES if turn % 2 == 0 else MODES[::-1]:
            measured[mode].append(await runtime_round(mode, count, runs))
    return measured


def in_turns(turn: int, tokens: dict[str, str]):
    """The modes in this round's order, each with its server's token in ORG while its turn lasts
    (ORG is the harness's, and each server has an administrator of its own)."""
    for mode in MODES if turn % 2 == 0 else MODES[::-1]:
        ORG["Authorization"] = tokens[mode]
        yield mode


async def measure(servers: dict[str, DispatchServer], rounds: int, cold: int, runs: int,
                  warm_rounds: int) -> tuple[dict, dict]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        tokens = {mode: await setup(servers[mode], session, mode) for mode in MODES}
        colds = {mode: [] for mode in MODES}
        for turn in range(rounds):
            for mode in in_turns(turn, tokens):
                colds[mode].append(await cold_round(servers[mode], session, turn, cold))
        warms = {}
        for concurrency in (1, 16):
            for mode in in_turns(0, tokens):
                await warm_round(servers[mode], session, concurrency, 200)  # warm-up
            warms[concurrency] = {mode: [] for mode in MODES}
            for turn in range(warm_rounds):
                for mode in in_turns(turn, tokens):
                    warms[concurrency][mode].append(await warm_round(servers[mode], session, concurrency,
                                                                     runs // warm_rounds))
    return colds, warms


def ratios(on: list[float], off: list[float]) -> str:
    """Each round's ratio (past ten rounds, their quartiles) and their median."""
    each = [a / b for a, b in zip(on, off, strict=True)]
    if len(each) <= 10:
        return f"{' '.join(f'{x:.2f}' for x in each)} -> {statistics.median(each):.2f}x"
    low, _, high = statistics.quantiles(each, n=4)
    return f"{len(each)} rounds, quartiles {low:.2f}-{high:.2f} -> {statistics.median(each):.2f}x"


def print_cold(colds: dict, rounds: int, cold: int) -> None:
    print(f"Cold starts, {rounds} rounds taking turns; per round the median of {cold} runs after scale to zero"
          f" (and of as many warm runs), and one freshly created function")
    print(f"{'case':<44}{'on ms':>8}{'off ms':>8}   per-round ratios on/off -> median")
    for language in LANGUAGES:
        for key, label in (("zero", "first run after scale to zero"), ("warm", "warm run, same path"),
                           ("fresh", "create -> READY -> first result")):
            on, off = ([r[language][key] * 1000 for r in colds[mode]] for mode in MODES)
            print(f"{language + ' ' + label:<44}{statistics.median(on):>8.1f}{statistics.median(off):>8.1f}"
                  f"   {ratios(on, off)}")
        start = {mode: statistics.median((r[language]["zero"] - r[language]["warm"]) * 1000 for r in colds[mode])
                 for mode in MODES}
        print(f"{language + ' worker start (scale to zero - warm)':<44}{start['on']:>8.1f}{start['off']:>8.1f}"
              f"   {start['on'] - start['off']:+.1f} ms with the sandbox")


def print_runtime_alone(measured: dict, rounds: int, count: int, runs: int) -> None:
    print(f"\nThe local runtime alone (no HTTP, bus or log), {rounds} rounds taking turns; per round one deploy,"
          f" the median of {count} runs, and {runs} warm runs at each concurrency")
    print(f"{'case':<44}{'on':>8}{'off':>8}   per-round ratios on/off -> median")
    for key, label, scale in (("deploy", "deploy: zygote and first worker ready, ms", 1000),
                              ("cold", "run that finds no worker, ms", 1000), ("warm", "warm run, ms", 1000),
                              ("per_s_1", "warm runs/s, c=1", 1), ("per_s_16", "warm runs/s, c=16", 1),
                              ("cpu_us_1", "CPU per warm run, us, c=1", 1),
                              ("cpu_us_16", "CPU per warm run, us, c=16", 1)):
        on, off = ([r[key] * scale for r in measured[mode]] for mode in MODES)
        digits = 2 if scale > 1 else 0
        print(f"{label:<44}{statistics.median(on):>8.{digits}f}{statistics.median(off):>8.{digits}f}"
              f"   {ratios(on, off)}")


def print_warm(warms: dict, rounds: int, runs: int) -> None:
    print(f"\nWarm blocking runs of a no-op Python function, {rounds} rounds of {runs // rounds} runs per server,"
          f" taking turns; medians of the rounds")
    print(f"{'case':<24}{'p50 ms':>8}{'p99 ms':>8}{'runs/s':>8}   per-round ratios on/off -> median")
    for concurrency, measured in warms.items():
        for mode in MODES:
            rows = measured[mode]
            print(f"{f'sandbox {mode}, c={concurrency}':<24}"
                  f"{statistics.median(r['p50_ms'] for r in rows):>8.2f}"
                  f"{statistics.median(r['p99_ms'] for r in rows):>8.2f}"
                  f"{statistics.median(r['per_s'] for r in rows):>8.0f}")
        on, off = measured["on"], measured["off"]
        for key, label in (("per_s", "runs/s"), ("p50_ms", "p50"), ("p99_ms", "p99")):
            print(f"{'':<4}{label + ' on/off':<20}{ratios([r[key] for r in on], [r[key] for r in off])}")
        # The kernel counts CPU time in ticks (10 ms): summed over the rounds, not a ratio per round.
        cpu = {mode: sum(r["cpu_seconds"] for r in measured[mode]) / sum(r["count"] for r in measured[mode]) * 1e6
               for mode in MODES}
        print(f"{'':<4}{'CPU per run on/off':<20}all rounds: {cpu['on']:.0f} us / {cpu['off']:.0f} us"
              f" -> {cpu['on'] / cpu['off']:.2f}x")


def print_goals(colds: dict, warms: dict) -> None:
    cold = statistics.median(r["python3"]["zero"] * 1000 for r in colds["on"])
    print(f"\nGoal: Python cold start with the sandbox <= {COLD_GOAL_MS} ms: {cold:.1f} ms,"
          f" {'met' if cold <= COLD_GOAL_MS else 'MISSED'}")
    for concurrency, measured in warms.items():
        ratio = statistics.median(a["per_s"] / b["per_s"] for a, b in zip(measured["on"], measured["off"], strict=True))
        print(f"Goal: warm throughput at c={concurrency} within {THROUGHPUT_GOAL:.0%} of no sandbox: {ratio:.2f}x,"
              f" {'met' if ratio >= 1 - THROUGHPUT_GOAL else 'MISSED'}")


async def main(rounds: int, cold: int, runs: int, warm_rounds: int) -> None:
    load_before = os.getloadavg()[0]
    alone = await runtime_alone(rounds, cold * 4, runs)
    with DispatchServer("--sandbox", "on") as on, DispatchServer("--sandbox", "off") as off:
        colds, warms = await measure({"on": on, "off": off}, rounds, cold, runs, warm_rounds)
    print(f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores\n")
    print_cold(colds, rounds, cold)
    print_runtime_alone(alone, rounds, cold * 4, runs)
    print_warm(warms, warm_rounds, runs)
    print_goals(colds, warms)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cold", type=int, default=5, help="runs after scale to zero per round and language")
    parser.add_argument("--runs", type=int, default=3000, help="warm runs per server and concurrency")
    parser.add_argument("--warm-rounds", type=int, default=30, help="rounds the warm runs are sent in")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.cold, args.runs, args.warm_rounds))
