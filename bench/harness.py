"""Shared pieces of the benchmarks: free ports, a server process, a closed-loop load generator."""
import asyncio
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import aiohttp

ORG = {"X-Dispatch-Org": "dispatch", "Content-Type": "application/json"}
"""What every bench request to the management API carries; DispatchServer.ready() adds the
administrator's bearer token (authentication is on unless a server is started --skip-auth)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def source_of(name: str, code: str) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = code.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(buffer.getvalue()).decode()


class DispatchServer:
    """`dispatch server` in its own process, on free ports and a fresh data directory."""

    def __init__(self, *extra: str) -> None:
        self.extra = extra
        self.port, self.api_port = free_port(), free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="dispatch-bench-"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.process: subprocess.Popen | None = None
        # the bench's own CLI config, where the server's first start (or the bootstrap) puts the admin
        self.env = {**os.environ, "DISPATCH_CONFIG": str(self.data_dir / "cli.json"),
                    "DISPATCH_HOST": "127.0.0.1", "DISPATCH_PORT": str(self.port)}
        self.bootstrap_key = self.data_dir / "bootstrap.pem"

    def __enter__(self) -> "DispatchServer":
        extra = list(self.extra)
        if "gateway" in extra and "--skip-auth" not in extra:
            subprocess.run(["openssl", "genrsa", "-out", str(self.bootstrap_key), "2048"],
                           check=True, capture_output=True)
            subprocess.run(["openssl", "rsa", "-in", str(self.bootstrap_key), "-pubout", "-out",
                            str(self.data_dir / "bootstrap.pub")], check=True, capture_output=True)
            extra += ["--bootstrap-public-key", str(self.data_dir / "bootstrap.pub")]
        self.process = subprocess.Popen(
            [self._cli, "server", "--port", str(self.port), "--api-port", str(self.api_port),
             "--data-dir", str(self.data_dir), *extra],
            env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        return self

    @property
    def _cli(self) -> str:
        return str(Path(sys.executable).parent / "dispatch")

    def _identify(self) -> None:
        """The administrator's token into ORG: bootstrapped first where no process did it."""
        if "--skip-auth" in self.extra:
            ORG.pop("Authorization", None)
            return
        if self.bootstrap_key.exists():
            subprocess.run([self._cli, "manage", "bootstrap", "--bootstrap-key", str(self.bootstrap_key)],
                           env=self.env, check=True, capture_output=True)
        for _ in range(100):  # the first start writes the context once its ports listen
            made = subprocess.run([self._cli, "token", "--ttl", "6h"], env=self.env, capture_output=True, text=True)
            if made.returncode == 0:
                ORG["Authorization"] = f"Bearer {made.stdout.strip()}"
                return
            time.sleep(0.1)
        raise RuntimeError(f"no administrator's token: {made.stderr}")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    async def ready(self, session: aiohttp.ClientSession) -> None:
        for _ in range(300):
            try:
                async with session.get(f"{self.url}/healthz") as answer:
                    if answer.status == 200:
                        await asyncio.to_thread(self._identify)
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    async def create(self, session: aiohttp.ClientSession, path: str, body: dict) -> None:
        async with session.post(f"{self.url}/v1/{path}", json=body, headers=ORG) as answer:
            if answer.status not in (200, 201):
                raise RuntimeError(f"{path}: {answer.status} {await answer.text()}")

    async def wait_ready(self, session: aiohttp.ClientSession, path: str, name: str) -> None:
        for _ in range(600):
            async with session.get(f"{self.url}/v1/{path}/{name}", headers=ORG) as answer:
                status = (await answer.json()).get("status")
            if status == "READY":
                return
            if status == "ERROR":
                raise RuntimeError(f"{path} {name} is in ERROR")
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{path} {name} never became READY")


async def closed_loop(call, concurrency: int, total: int) -> dict:
    """`concurrency` clients, each sending its next request when the previous one answered."""
    latencies: list[float] = []
    remaining = total

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
            "per_s": len(latencies) / elapsed, "count": len(latencies)}


def report(title: str, rows: list[tuple[str, dict, dict]]) -> str:
    lines = [title, f"{'case':<28}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}   vs baseline (p50, p99, req/s)"]
    for name, measured, baseline in rows:
        lines.append(f"{name:<28}{measured['p50_ms']:>10.2f}{measured['p99_ms']:>10.2f}{measured['per_s']:>10.0f}"
                     f"   {measured['p50_ms'] / baseline['p50_ms']:.2f}x,"
                     f" {measured['p99_ms'] / baseline['p99_ms']:.2f}x,"
                     f" {measured['per_s'] / baseline['per_s']:.2f}x")
    return "\n".join(lines)


def dumps(value) -> str:
    return json.dumps(value, indent=2)
