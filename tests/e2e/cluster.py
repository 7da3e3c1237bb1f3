"""A distributed installation for end-to-end tests: a gateway and two handler processes on the
RabbitMQ and PostgreSQL named by DISPATCH_TEST_*, seeded through the CLI, dropped afterwards."""
import base64
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from dispatch.iam.keys import new_key_pair, write_private

from .conftest import Server, free_port

AMQP = os.environ.get("DISPATCH_TEST_AMQP_URL")
DATABASE = os.environ.get("DISPATCH_TEST_DATABASE_URL")


class Cluster:
    def __init__(self, work: Path, namespace: str, extra: tuple[str, ...] = ()):
        self.work = work
        self.namespace = namespace
        common = ("--bus", AMQP, "--store", DATABASE, "--namespace", namespace, *extra)
        data = work / "data"
        self.bootstrap_key = work / "bootstrap.pem"
        pem, public = new_key_pair()
        write_private(self.bootstrap_key, pem)
        (work / "bootstrap.pub").write_bytes(base64.b64decode(public))
        self.gateway = Server(data, extra=("--role", "gateway", "--bootstrap-public-key", str(work / "bootstrap.pub"),
                                           *common))
        self.handlers = [Server(data, extra=("--role", "handlers", *common)) for _ in range(2)]
        # Every process serves /metrics, /healthz and /readyz on a port of its own.
        self.health_ports: dict[Server, int] = {}
        for process in (self.gateway, *self.handlers):
            self.health_ports[process] = free_port()
            process.extra += ("--health-port", str(self.health_ports[process]))

    def start(self) -> "Cluster":
        try:
            for handler in self.handlers:
                handler.start()
            self.gateway.start()
            made = self.gateway.cli("manage", "bootstrap", "--bootstrap-key", str(self.bootstrap_key))
            assert made.returncode == 0, made.stderr
        except BaseException:
            self.stop()  # the processes already started go too
            raise
        return self

    def stop(self) -> None:
        for process in (self.gateway, *self.handlers):
            process.stop()


@contextmanager
def seeded_cluster(work: Path, files: dict[str, str], seed: str, ready: tuple[str, ...],
                   extra: tuple[str, ...] = ()) -> Iterator[Cluster]:
    """A started cluster with `files` in `work`, `seed` created, and the `ready` paths settled;
    `extra`: arguments every process of it is started with."""
    if not (AMQP and DATABASE):
        pytest.skip("distributed mode needs DISPATCH_TEST_AMQP_URL and DISPATCH_TEST_DATABASE_URL "
                    "(make test sets them when RabbitMQ and PostgreSQL answer locally)")
    for name, text in files.items():
        (work / name).write_text(text)
    (work / "seed.yaml").write_text(seed)
    running = Cluster(work, f"t{uuid.uuid4().hex[:10]}", extra).start()
    try:
        created = running.gateway.cli("create", "-f", "seed.yaml", "-w", str(work))
        assert created.returncode == 0, created.stderr
        for path in ready:
            running.gateway.wait_status(path)
        yield running
    finally:
        running.stop()
        dropped = running.gateway.cli("admin", "drop", "--bus", AMQP, "--store", DATABASE,
                                      "--namespace", running.namespace, "--yes")
        assert dropped.returncode == 0, dropped.stderr
