"""A real `dispatch server` process, driven by the real `dispatch` CLI and plain HTTP."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISPATCH = str(Path(sys.executable).parent / "dispatch")
# The base image and image every test's functions use: documents to start a seed file with.
PYTHON_IMAGE = """
kind: BaseImage
name: py-base
dockerUrl: dispatchframework/python3-base:0.0.13
language: python3
---
kind: Image
name: py
baseImageName: py-base
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PortTaken(RuntimeError):
    pass


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict

    def json(self):
        return json.loads(self.body)


class Server:
    """One `dispatch server` process; `extra` arguments make it a distributed gateway or handler."""

    def __init__(self, data_dir: Path, seed: Path | None = None, extra: tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.seed = seed
        self.extra = extra
        self.port, self.api_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"
        self._token: str | None = None

    @property
    def env(self) -> dict:
        return {**os.environ, "DISPATCH_HOST": "127.0.0.1", "DISPATCH_PORT": str(self.port),
                "DISPATCH_CONFIG": str(self.data_dir.parent / "cli-config.json")}

    def start(self, timeout: float = 60) -> "Server":
        for _ in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                # another process bound the free port between free_port() and the server's bind
                self.port, self.api_port = free_port(), free_port()
        return self._start(timeout)

    def _start(self, timeout: float) -> "Server":
        args = [DISPATCH, "server", "--data-dir", str(self.data_dir), "--port", str(self.port),
                "--api-port", str(self.api_port)]
        if self.seed:
            args += ["--seed", str(self.seed)]
        args += list(self.extra)
        offset = self.log.stat().st_size if self.log.exists() else 0
        # the test's own CLI config: the first start writes its administrator's context there
        self.process = subprocess.Popen(args, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
                                        env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = self.log.read_text()[offset:]
                if f"cannot listen on 127.0.0.1:{self.port}:" in said or f"127.0.0.1:{self.api_port}:" in said:
                    raise PortTaken(said[-500:])
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            started = self.log.read_text()[offset:]
            if "Stop the server with Ctrl-C" in started or "handlers are running" in started:
                return self
            time.sleep(0.1)
        self.kill()  # a server that did not start must not hold its connections for the rest of the run
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no goodbye, as when a machine dies."""
        self.process.kill()
        self.process.wait(timeout=30)

    def cli(self, *args: str, input_text: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([DISPATCH, *args], capture_output=True, text=True, env=self.env, cwd=ROOT,
                              input=input_text, timeout=timeout)

    def token(self) -> str:
        """A bearer token of the CLI's current context (the administrator the server bootstrapped)."""
        if self._token is None:
            made = self.cli("token")
            assert made.returncode == 0, made.stderr
            self._token = made.stdout.strip()
        return self._token

    def http(self, method: str, path: str, body=None, headers=None, api: bool = False,
             raw: bytes | None = None) -> Answer:
        port = self.api_port if api else self.port
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        identity = {} if api else {"X-Dispatch-Org": "", "Authorization": f"Bearer {self.token()}"}
        sent = {"Content-Type": "application/json", **identity, **(headers or {})}
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return Answer(answer.status, answer.read(), dict(answer.headers))
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.read(), dict(error.headers))

    def wait_status(self, path: str, wanted=("READY", "ERROR"), timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.http("GET", path)
            if answer.status == 200 and answer.json().get("status") in wanted:
                return answer.json()
            time.sleep(0.2)
        raise AssertionError(f"{path} never reached {wanted}: {self.http('GET', path).body[:500]!r}")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("dispatch") / "data", seed=ROOT / "examples" / "seed.yaml").start()
    yield server
    server.stop()
