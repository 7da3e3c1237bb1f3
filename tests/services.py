"""Prints `export` lines for the local services the suite can use: `make test` evaluates them.

A variable already set is kept; a service that does not answer is left out, and the tests that
need it start one with testcontainers or skip with the reason. The Docker engine of the Docker
runtime's tests is started here when needed (tests/docker_engine.py)."""
import os
import socket

from tests import docker_engine

SERVICES = {
    "DISPATCH_TEST_AMQP_URL": ("127.0.0.1", 5672, "amqp://guest:guest@127.0.0.1:5672/"),
    "DISPATCH_TEST_DATABASE_URL": ("127.0.0.1", 5432, "postgresql://postgres@127.0.0.1:5432/test"),
}


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    for variable, (host, port, url) in SERVICES.items():
        if os.environ.get(variable):
            print(f"export {variable}={os.environ[variable]}")
        elif answers(host, port):
            print(f"export {variable}={url}")
    print(docker_engine.export_line())
