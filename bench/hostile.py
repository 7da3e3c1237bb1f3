"""Mixed load, normal and hostile, at a fixed concurrency against a real server: does every process
keep answering, does memory stay bounded, is every accepted run recorded and executed exactly once?

    .venv/bin/python bench/hostile.py [--seconds 60] [--concurrency 16] [--sandbox on] [--distributed]
                                      [--alone-seconds 10]

Normal requests are blocking and asynchronous runs of a Python function (`echo`) that tells a TCP
counter in this process of each execution (a mark per run) before it answers. Hostile ones
(bench/hostile_cases.py): a 1000-deep JSON body, lone surrogates (escaped and raw), an 11 MiB body,
gzip tar bombs as a function's source, a function returning 50 MB, one forking 1000 processes, one
sleeping past its timeout. Each must get its own answer (400, 413, a FunctionError, ...). The
normal runs are first sent alone for --alone-seconds, for their throughput without the rest.

Watched (bench/probes.py): /healthz every 100 ms; RSS and count of the server's processes (the
server and its function processes; with --distributed, the gateway's and the handlers') every
500 ms. Afterwards every accepted run (200 or 202) must be in `GET /v1/runs` exactly once,
finished, with its input as output, and its mark counted exactly once.

--distributed: a gateway process and a handlers process on RabbitMQ and PostgreSQL
(BENCH_AMQP_URL, BENCH_DATABASE_URL), in a namespace of their own, dropped afterwards.
"""
import argparse
import asyncio
import contextlib
import itertools
import json
import random
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from distributed import AMQP, DATABASE, handler_process  # noqa: E402
from harness import ORG, DispatchServer  # noqa: E402
from hostile_cases import Case, functions, hostile_cases  # noqa: E402
from probes import ExecutionCounter, Healthz, ProcessTree  # noqa: E402
from runtimes import wait_ready  # noqa: E402

NORMAL = ("blocking run", "async run")
SETTLE_SECONDS = 180
_NUMBERS = itertools.count()  # one series for every load of a run: marks never repeat


class Load:
    """`concurrency` clients, each sending its next request, drawn from the weighted mix, once the last answered."""

    def __init__(self, url: str, session: aiohttp.ClientSession, cases: dict[str, Case]):
        self.url, self.session = url, session
        self.cases = cases
        self.outcomes: dict[str, Counter] = defaultdict(Counter)
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.accepted: dict[str, str] = {}  # run name: its mark
        self.unanswered: set[str] = set()  # marks of normal runs whose request failed

    async def run(self, concurrency: int, seconds: float, seed: int = 1) -> None:
        deadline = time.monotonic() + seconds
        rng = random.Random(seed)
        names, weights = list(self.cases), [case.weight for case in self.cases.values()]
        await asyncio.gather(*(self._client(deadline, rng, names, weights) for _ in range(concurrency)))

    async def _client(self, deadline: float, rng: random.Random, names: list[str], weights: list[int]) -> None:
        while time.monotonic() < deadline:
            await self.send(rng.choices(names, weights)[0])

    def merged(self, other: "Load") -> "Load":
        """This load's accepted and unanswered runs with `other`'s (the verdict covers both)."""
        both = Load(self.url, self.session, {**self.cases, **other.cases})
        both.accepted, both.unanswered = self.accepted | other.accepted, self.unanswered | other.unanswered
        return both

    async def send(self, name: str) -> None:
        case, number = self.cases[name], next(_NUMBERS)
        mark = f"{name.split()[0]}-{number}"
        body = case.bodies[number % len(case.bodies)] if case.bodies else json.dumps(
            {"blocking": name == "blocking run", "input": {"mark": mark}}).encode()
        started = time.perf_counter()
        try:
            async with self.session.post(self.url + case.path, data=body, headers=ORG) as answer:
                status, text = answer.status, await answer.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.outcomes[name][f"no answer ({type(exc).__name__})"] += 1
            if not case.bodies:
                self.unanswered.add(mark)
            return
        self.latencies[name].append(time.perf_counter() - started)
        try:
            answered = json.loads(text)
        except ValueError:
            answered = None
        right = case.expected(status, answered)
        self.outcomes[name]["as expected" if right else f"unexpected: {_shown(status, answered, text)}"] += 1
        if not case.bodies and right:
            self.accepted[answered["name"]] = mark
        elif not case.bodies:
            self.unanswered.add(mark)


def _shown(status: int, answered: object, text: bytes) -> str:
    """An unexpected answer, short: a run's error, else the start of the body."""
    error = isinstance(answered, dict) and answered.get("error")
    if isinstance(error, dict):
        return f"{status} {error.get('type')}: {str(error.get('message'))[:100]}"
    return f"{status} {text[:100]!r}"


async def settle(server: DispatchServer, session: aiohttp.ClientSession, accepted: dict[str, str],
                 since: int) -> list[dict]:
    """The records of `echo` since `since`, once every accepted run among them finished (or the wait ended)."""
    finished = ("READY", "ERROR")
    for _ in range(SETTLE_SECONDS * 2):
        async with session.get(f"{server.url}/v1/runs?functionName=echo&since={since}", headers=ORG) as answer:
            records = await answer.json()
        done = {record["name"] for record in records if record["status"] in finished}
        if done >= accepted.keys():
            return records
        await asyncio.sleep(0.5)
    return records


def verdict(load: Load, records: list[dict], marks: Counter) -> list[str]:
    """Every accepted run recorded once, finished with its input, its mark counted once."""
    names = Counter(record["name"] for record in records)
    by_name = {record["name"]: record for record in records}
    missing = [name for name in load.accepted if name not in names]
    twice = [name for name, count in names.items() if count > 1]
    wrong = [name for name, mark in load.accepted.items()
             if name in by_name and (by_name[name]["status"] != "READY" or by_name[name]["output"] != {"mark": mark})]
    accepted_marks = set(load.accepted.values())
    not_once = {mark: marks[mark] for mark in accepted_marks if marks[mark] != 1}
    unaccepted = {mark: count for mark, count in marks.items()
                  if mark not in accepted_marks and mark not in load.unanswered}
    return [f"accepted runs: {len(load.accepted)} ({sum(1 for m in accepted_marks if m.startswith('async'))} async);"
            f" records of the function: {len(records)}",
            f"accepted but not recorded: {len(missing)} {missing[:5]}",
            f"recorded more than once: {len(twice)} {twice[:5]}",
            f"recorded but not finished with its input as output: {len(wrong)} {wrong[:5]}",
            f"accepted runs not executed exactly once: {len(not_once)} {list(not_once.items())[:5]}",
            f"executions of runs never sent or accepted: {len(unaccepted)}; of runs whose request got no"
            f" (right) answer: {sum(marks[m] for m in load.unanswered)} of {len(load.unanswered)}"]


@contextlib.asynccontextmanager
async def started(distributed: bool, sandbox: str):
    """The server to load, and the pids of its processes."""
    if not distributed:
        with DispatchServer("--sandbox", sandbox) as server:
            yield server, {"server": server.process}
        return
    from dispatch.server import drop_installation
    from dispatch.settings import Settings

    namespace = f"hostile{uuid.uuid4().hex[:8]}"
    common = ("--bus", AMQP, "--store", DATABASE, "--namespace", namespace)
    try:
        with DispatchServer("--role", "gateway", *common) as server:
            handlers = handler_process(namespace, server.data_dir, "--sandbox", sandbox)
            try:
                yield server, {"gateway": server.process, "handlers": handlers}
            finally:
                handlers.terminate()
                handlers.wait(timeout=30)
    finally:
        await drop_installation(Settings(bus=AMQP, store=DATABASE, namespace=namespace))


async def deploy(server: DispatchServer, session: aiohttp.ClientSession, counter_port: int) -> None:
    await server.ready(session)
    await server.create(session, "baseimage", {"name": "python3-base", "dockerUrl": "python3", "language": "python3"})
    await server.create(session, "image", {"name": "python3", "baseImageName": "python3-base"})
    await wait_ready(server, session, "image", "python3")
    for name, body in functions(counter_port).items():
        await server.create(session, "function", body)
        await wait_ready(server, session, "function", name)


def print_load(load: Load, seconds: float) -> None:
    print(f"{'request':<24}{'sent':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}   answers")
    for name in load.cases:
        outcomes, latencies = load.outcomes[name], sorted(load.latencies[name]) or [0.0]
        p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
        print(f"{name:<24}{sum(outcomes.values()):>7}{statistics.median(latencies) * 1000:>9.1f}"
              f"{p99 * 1000:>9.1f}{latencies[-1] * 1000:>9.1f}   "
              + "; ".join(f"{count} {outcome}" for outcome, count in outcomes.most_common()))
    normal = sum(load.outcomes[name]["as expected"] for name in NORMAL)
    print(f"normal runs answered as expected: {normal} ({normal / seconds:.0f}/s)")


async def main(seconds: float, concurrency: int, sandbox: str, distributed: bool, alone_seconds: float) -> None:
    timeout = aiohttp.ClientTimeout(total=120)
    async with ExecutionCounter() as counter, started(distributed, sandbox) as (server, processes), \
            aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as session:
        cases, _ = await asyncio.gather(asyncio.to_thread(hostile_cases),  # the tar bombs: seconds to compress
                                        deploy(server, session, counter.port))
        since, began = int(time.time()) - 1, time.strftime("%H:%M:%S")
        alone = Load(server.url, session, {name: cases[name] for name in NORMAL})
        await alone.run(concurrency, alone_seconds)
        tree = ProcessTree([process.pid for process in processes.values()])
        health, stop, load = Healthz(f"{server.url}/healthz"), asyncio.Event(), Load(server.url, session, cases)
        tree.start()
        await asyncio.sleep(1)
        marks = {"before the load": time.monotonic()}
        watching = asyncio.ensure_future(health.run(stop))
        await load.run(concurrency, seconds)
        marks["end of the load"] = time.monotonic()
        records = await settle(server, session, load.accepted | alone.accepted, since)
        stop.set()
        await watching
        await asyncio.sleep(5)
        marks["runs settled, 5 s later"] = time.monotonic()
        tree.stop()
        alive = {name: process.poll() is None for name, process in processes.items()}
        mode = "distributed (gateway + handlers, RabbitMQ, PostgreSQL)" if distributed else "embedded"
        # Printed before the servers stop: one that would not stop must not hide what was measured.
        print(f"{mode}, --sandbox {sandbox}, from {began} to {time.strftime('%H:%M:%S')}")
        print(f"\nNormal runs alone first: {alone_seconds:g} s at concurrency {concurrency}")
        print_load(alone, alone_seconds)
        print(f"\nHostile load: {seconds:g} s at concurrency {concurrency}")
        print_load(load, seconds)
        print(f"/healthz through the load: {health.summary()}")
        print("processes alive at the end: " + ", ".join(f"{n} {'yes' if a else 'NO'}" for n, a in alive.items()))
        print("server process tree (RSS summed over processes, shared pages counted in each):")
        for line in tree.summary(marks):
            print(f"  {line}")
        for line in verdict(alone.merged(load), records, counter.marks):
            print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sandbox", default="on", choices=("auto", "on", "off"))
    parser.add_argument("--distributed", action="store_true")
    parser.add_argument("--alone-seconds", type=float, default=10, help="normal runs alone, before the mix")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.concurrency, args.sandbox, args.distributed, args.alone_seconds))
