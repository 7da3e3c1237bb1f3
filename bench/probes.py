"""What bench/hostile.py watches while its load runs: /healthz answered (latency sampled), the
memory and processes of the server's process tree, and a TCP counter the bench's function tells of
each execution (its sandbox has a /tmp of its own, but shares the host's network)."""
import asyncio
import statistics
import threading
import time
from collections import Counter

import aiohttp
import psutil


class Healthz:
    """GET /healthz every `interval` seconds, each with a deadline; latencies and failures."""

    def __init__(self, url: str, interval: float = 0.1, deadline: float = 5.0):
        self.url, self.interval, self.deadline = url, interval, deadline
        self.latencies: list[float] = []
        self.failures: list[str] = []

    async def run(self, until: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=self.deadline)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not until.is_set():
                started = time.perf_counter()
                try:
                    async with session.get(self.url) as answer:
                        await answer.read()
                        if answer.status != 200:
                            self.failures.append(f"status {answer.status}")
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    self.failures.append(type(exc).__name__)
                self.latencies.append(time.perf_counter() - started)
                await asyncio.sleep(self.interval)

    def summary(self) -> str:
        ordered = sorted(self.latencies)
        p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
        return (f"{len(ordered)} samples, {len(self.failures)} failed; p50 {statistics.median(ordered) * 1000:.1f} ms,"
                f" p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms")


class ProcessTree:
    """Sum of RSS and count of the processes under `pids` (themselves included), sampled on a thread."""

    def __init__(self, pids: list[int], interval: float = 0.5):
        self.roots = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.samples: list[tuple[float, int, int, int]] = []  # time, tree RSS, roots' RSS, processes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> tuple[float, int, int, int]:
        tree_rss = roots_rss = count = 0
        for root in self.roots:
            for process in [root, *_children(root)]:
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue
                tree_rss += rss
                roots_rss += rss if process in self.roots else 0
                count += 1
        return time.monotonic(), tree_rss, roots_rss, count

    def _sample_until_stopped(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.sample())
            self._stop.wait(self.interval)

    def summary(self, marks: dict[str, float]) -> list[str]:
        """Max over the samples, and the last sample before each of `marks` (name: monotonic time)."""
        mb = 2 ** 20
        lines = [f"max: tree RSS {max(s[1] for s in self.samples) / mb:.0f} MB, server process(es)"
                 f" {max(s[2] for s in self.samples) / mb:.0f} MB, {max(s[3] for s in self.samples)} processes"]
        for name, when in marks.items():
            before = [s for s in self.samples if s[0] <= when] or self.samples[:1]
            _, tree, roots, count = before[-1]
            lines.append(f"{name}: tree RSS {tree / mb:.0f} MB, server process(es) {roots / mb:.0f} MB,"
                         f" {count} processes")
        return lines


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []


class ExecutionCounter:
    """A TCP server counting the lines it is sent: one mark per execution of the bench's function."""

    def __init__(self) -> None:
        self.marks: Counter[str] = Counter()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> "ExecutionCounter":
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                self.marks[line.decode().strip()] += 1
            writer.write(b"ok\n")
            await writer.drain()
        finally:
            writer.close()
