"""The per-language function servers started as a container starts them (HTTP mode), for the tests
of what they answer. Java functions are compiled first with the server's own --compile."""
import asyncio
import functools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import dispatch
from dispatch.drivers.local.java import MAIN, Java

PACKAGE_PARENT = str(Path(dispatch.__file__).resolve().parent.parent)
SERVER_JS = str(Path(dispatch.__file__).resolve().parent / "runtimes" / "nodejs" / "server.js")
JAVA_CACHE = Path.home() / ".cache" / "dispatch-test" / "java-server"


@functools.cache
def java_server_classes() -> Path:
    """Compiled as the local runtime compiles it, once per version of its sources."""
    return asyncio.run(Java(JAVA_CACHE).server_classes())


def command(language: str, source: Path, *flags: str) -> list[str]:
    if language == "python3":
        return [sys.executable, "-P", "-m", "dispatch.runtimes.python3", "--source", str(source), *flags]
    if language == "java":
        return ["java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", str(java_server_classes()), MAIN,
                "--source", str(source), *flags]
    return ["node", SERVER_JS, "--source", str(source), *flags]


def env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", os.defpath), "PYTHONPATH": PACKAGE_PARENT}


def compile_java(source: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(command("java", source, "--compile", *flags), env=env(), capture_output=True, text=True,
                          timeout=120)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port: int, path: str, body: bytes | None = None) -> tuple[int, dict]:
    sent = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="GET" if body is None else "POST",
                                  headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(sent, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as failed:
        return failed.code, json.loads(failed.read())


def envelope(payload, **context) -> bytes:
    return json.dumps({"context": context, "payload": payload}).encode()


class Servers:
    """Starts function servers in HTTP mode and stops them all at the end."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.started: list[subprocess.Popen] = []

    def start(self, language: str, filename: str, text: str, *flags: str) -> tuple[subprocess.Popen, int]:
        """Write `text` as the source `filename` (a path in a folder of its own), compile it (Java),
        start the server and wait for /healthz to answer."""
        source = self.folder / f"{language}-{len(self.started)}"
        (source / filename).parent.mkdir(parents=True, exist_ok=True)
        (source / filename).write_text(text)
        handler = [flag for index, flag in enumerate(flags) if index and flags[index - 1] == "--handler"]
        if language == "java":
            compile_java(source, *(["--handler", handler[0]] if handler else []))
        return self.serve(language, source, *flags)

    def serve(self, language: str, source: Path, *flags: str) -> tuple[subprocess.Popen, int]:
        port = free_port()
        server = subprocess.Popen(command(language, source, "--http", "--port", str(port), *flags), env=env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.started.append(server)
        for _ in range(200):
            try:
                request(port, "/healthz")
                return server, port
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.05)
        raise AssertionError(f"{language} server did not answer: {server.stderr.read1().decode()}")

    def stop(self) -> None:
        for server in self.started:
            server.kill()
            server.wait()


@pytest.fixture
def start_function_server(tmp_path):
    """Start a server in HTTP mode for a source file; stopped after the test."""
    servers = Servers(tmp_path)
    yield servers.start
    servers.stop()
