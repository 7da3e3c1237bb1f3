"""Prints `export` lines for the local services the suite can use: `make test` evaluates them.

A variable already set is kept. A service installed on this machine that does not answer (a
broker or database left stopped, say) is started with its own control command and waited for; one
that still does not answer is left out, and the tests that need it start one with testcontainers or
skip with the reason. The Docker engine of the Docker runtime's tests is started here when needed
(tests/docker_engine.py)."""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests import docker_engine

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def answers(host: str, port: int, greeting: bytes = b"") -> bool:
    """True when the port accepts a connection and, given a protocol greeting, replies to it: a
    broker that accepts connections but hangs in its handshake answers nothing the tests can use."""
    try:
        with socket.create_connection((host, port), timeout=1) as connection:
            if greeting:
                connection.settimeout(5)
                connection.sendall(greeting)
                return bool(connection.recv(1))
            return True
    except OSError:
        return False


def _start_rabbitmq() -> list[list[str]]:
    if shutil.which("rabbitmqctl") is None:
        return []
    # A node whose application was stopped (rabbitmqctl stop_app) needs start_app; no node at all needs the server.
    return [["rabbitmqctl", "start_app"], ["rabbitmq-server", "-detached"]]


def _start_postgresql() -> list[list[str]]:
    clusters = Path("/etc/postgresql")
    if shutil.which("pg_ctlcluster") is None or not clusters.is_dir():
        return []
    return [["pg_ctlcluster", "--skip-systemctl-redirect", version.name, "main", "start"]
            for version in sorted(clusters.iterdir())]


SERVICES = {
    "DISPATCH_TEST_AMQP_URL": ("127.0.0.1", 5672, AMQP_HEADER, "amqp://guest:guest@127.0.0.1:5672/",
                               _start_rabbitmq),
    "DISPATCH_TEST_DATABASE_URL": ("127.0.0.1", 5432, b"", "postgresql://postgres@127.0.0.1:5432/test",
                                   _start_postgresql),
}


def _say(line: str) -> None:
    print(f"tests.services: {line}", file=sys.stderr)


def reachable(name: str, host: str, port: int, greeting: bytes, starts) -> bool:
    if answers(host, port, greeting):
        return True
    for command in starts():
        _say(f"{name} does not answer on {host}:{port}; starting it: {' '.join(command)}")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as problem:
            _say(f"{command[0]} failed: {problem}")
            continue
        if done.returncode != 0:
            _say(f"{command[0]} failed: {(done.stderr or done.stdout).strip()[-300:]}")
            continue
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if answers(host, port, greeting):
                return True
            time.sleep(0.5)
    return False


if __name__ == "__main__":
    for variable, (host, port, greeting, url, starts) in SERVICES.items():
        if os.environ.get(variable):
            print(f"export {variable}={os.environ[variable]}")
        elif reachable(variable, host, port, greeting, starts):
            print(f"export {variable}={url}")
        else:
            _say(f"{variable} is left unset: nothing answers on {host}:{port}")
    print(docker_engine.export_line())
