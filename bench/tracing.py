"""What tracing costs: warm blocking runs of a no-op Python function through `POST /v1/runs` at
concurrency 16 on three servers taking turns in the same run: one exporting every span over
OTLP HTTP/protobuf to a receiver on this machine (tests/otlp.py), each request carrying a sampled
caller's `traceparent`; one sampling a tenth of new traces (`parentbased_traceidratio`, 0.1,
requests without a `traceparent`), exporting the same way; and one with no OTEL_* set (tracing off).

    .venv/bin/python bench/tracing.py [--runs 3000] [--rounds 3]
"""
import argparse
import asyncio
import contextlib
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1]))
from auth import CONCURRENCY, prepared, rounds_of  # noqa: E402
from harness import DispatchServer  # noqa: E402

from tests.otlp import Receiver  # noqa: E402

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CASES = {  # name: (OTEL_* beyond the receiver's, whether requests carry a traceparent)
    "every span exported": ({}, True),
    "a tenth sampled": ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}, False),
    "tracing off": (None, False),
}


async def main(runs: int, rounds: int) -> None:
    receiver = Receiver().start()
    servers = {name: DispatchServer() for name in CASES}
    for name, (otel, _) in CASES.items():
        if otel is not None:
            servers[name].env.update(receiver.environment(OTEL_BSP_SCHEDULE_DELAY="1000", **otel))
    measured: dict[str, list[dict]] = {name: [] for name in CASES}
    try:
        with contextlib.ExitStack() as running:
            for server in servers.values():
                running.enter_context(server)
            await _measure(servers, measured, runs, rounds, receiver)
    finally:
        receiver.stop()
    _report(measured, runs, rounds, len(receiver.spans))


async def _measure(servers: dict[str, DispatchServer], measured: dict[str, list[dict]], runs: int,
                   rounds: int, receiver: Receiver) -> None:
    headers = {name: {**await prepared(server), **({"traceparent": TRACEPARENT} if CASES[name][1] else {})}
               for name, server in servers.items()}
    for _ in range(rounds):  # taking turns, so that the machine's drift hits all alike
        for name, server in servers.items():
            measured[name] += await rounds_of(server, runs, 1, headers[name])
            await _exported(receiver)


async def _exported(receiver: Receiver) -> None:
    """Wait until a traced server has exported what its round made: its exporter thread would
    otherwise take the cores from the next server's round."""
    count = -1
    while count != len(receiver.spans):
        count = len(receiver.spans)
        await asyncio.sleep(1.5)  # past OTEL_BSP_SCHEDULE_DELAY, below


def _report(measured: dict[str, list[dict]], runs: int, rounds: int, spans: int) -> None:
    print(f"Warm blocking runs at concurrency {CONCURRENCY}, {runs} per round, {rounds} rounds each; "
          f"{spans} spans received")
    print(f"{'case':<24}{'p50 ms':>10}{'p99 ms':>10}{'runs/s':>10}{'/ off':>8}")
    off = measured["tracing off"]
    for name, each in measured.items():
        ratio = statistics.median(a["per_s"] / b["per_s"] for a, b in zip(each, off, strict=True))
        print(f"{name:<24}{statistics.median(m['p50_ms'] for m in each):>10.2f}"
              f"{statistics.median(m['p99_ms'] for m in each):>10.2f}"
              f"{statistics.median(m['per_s'] for m in each):>10.0f}{ratio:>8.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.rounds))
