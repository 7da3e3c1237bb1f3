"""The gateway a replay talks to: a fresh `dispatch server` process (embedded mode), or a gateway
and two handler processes on RabbitMQ and PostgreSQL in a namespace of their own (distributed).

Authentication is on, as by default: the replay sends the administrator's token the way the Go
CLI sends a service account's (see replay.Replayer)."""
import uuid

import pytest

from tests.e2e.cluster import AMQP, DATABASE, Cluster
from tests.e2e.conftest import Server

DISTRIBUTED = [pytest.mark.rabbitmq, pytest.mark.postgres]


@pytest.fixture(params=["embedded", pytest.param("distributed", marks=DISTRIBUTED)])
def gateway(request, tmp_path, monkeypatch) -> Server:
    monkeypatch.setenv("DISPATCH_CONFIG", str(tmp_path / "cli-config.json"))
    if request.param == "embedded":
        server = Server(tmp_path / "data").start()
        try:
            yield server
        finally:
            server.stop()
        return
    if not (AMQP and DATABASE):
        pytest.skip("distributed mode needs DISPATCH_TEST_AMQP_URL and DISPATCH_TEST_DATABASE_URL "
                    "(make test sets them when RabbitMQ and PostgreSQL answer locally)")
    cluster = Cluster(tmp_path, f"t{uuid.uuid4().hex[:10]}").start()
    try:
        yield cluster.gateway
    finally:
        cluster.stop()
        dropped = cluster.gateway.cli("admin", "drop", "--bus", AMQP, "--store", DATABASE,
                                      "--namespace", cluster.namespace, "--yes")
        assert dropped.returncode == 0, dropped.stderr
