"""Real services for the contract suites: each comes from its DISPATCH_TEST_* variable, else from
a throwaway container where a Docker engine answers, else its tests are skipped with the reason."""
import asyncio
import os
from typing import Iterator

import pytest


def _docker_answers() -> str | None:
    """None if a Docker engine answers, else why not."""
    try:
        import docker  # testcontainers depends on it
    except ImportError:
        return "the docker package is not installed"
    try:
        docker.from_env().ping()
    except Exception as error:
        return f"no Docker engine answers ({error.__class__.__name__})"
    return None


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A PostgreSQL URL: DISPATCH_TEST_DATABASE_URL, else a testcontainers PostgreSQL."""
    url = os.environ.get("DISPATCH_TEST_DATABASE_URL")
    if url:
        yield url
        return
    missing = _docker_answers()
    if missing is not None:
        pytest.skip(f"PostgreSQL: DISPATCH_TEST_DATABASE_URL is unset and {missing}")
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError:
        pytest.skip("PostgreSQL: DISPATCH_TEST_DATABASE_URL is unset and testcontainers is not installed")
    with PostgresContainer("postgres:16-alpine", driver=None) as container:
        yield container.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """An AMQP URL: DISPATCH_TEST_AMQP_URL, else a testcontainers RabbitMQ."""
    url = os.environ.get("DISPATCH_TEST_AMQP_URL")
    if url:
        yield url
        return
    missing = _docker_answers()
    if missing is not None:
        pytest.skip(f"RabbitMQ: DISPATCH_TEST_AMQP_URL is unset and {missing}")
    try:
        from testcontainers.rabbitmq import RabbitMqContainer
    except ImportError:
        pytest.skip("RabbitMQ: DISPATCH_TEST_AMQP_URL is unset and testcontainers is not installed")
    with RabbitMqContainer("rabbitmq:3.13-alpine") as broker:
        host, port = broker.get_container_host_ip(), broker.get_exposed_port(broker.port)
        yield f"amqp://{broker.username}:{broker.password}@{host}:{port}/"


class Outage:
    """A TCP relay in front of a real service that a test can cut and restore, to see an
    adapter fail fast while the service is unreachable and recover by itself once it is back."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[asyncio.StreamWriter] = []
        self._stalled = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        if self._stalled:
            self._links.append(client)
            return  # accepted, never answered
        try:
            server_reader, server = await asyncio.open_connection(*self.target)
        except OSError:
            client.transport.abort()
            return
        self._links += [client, server]
        await asyncio.gather(_pipe(client_reader, server), _pipe(server_reader, client))

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones, as a stopped server does."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._links:
            writer.transport.abort()
        self._links.clear()

    def stall(self) -> None:
        """Stop answering, without closing anything: a network that drops every packet."""
        self._stalled = True
        for writer in self._links:
            writer.transport.pause_reading()

    async def restore(self) -> None:
        """Answer again: a cut relay listens anew; a stalled one drops its hung connections."""
        if self._stalled:
            self._stalled = False
            await self.cut()
        await self.start()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        writer.transport.abort()


@pytest.fixture
async def outage():
    """`await outage(host, port)` gives an Outage relaying to that service."""
    relays: list[Outage] = []

    async def relay_to(host: str, port: int) -> Outage:
        relay = Outage(host, port)
        await relay.start()
        relays.append(relay)
        return relay

    yield relay_to
    for relay in relays:
        await relay.cut()


@pytest.fixture
async def kube():
    """The Kubernetes API-server double; at the end, no object it would have refused was sent."""
    from tests.contract.kubernetes_api import KubernetesAPI

    api = KubernetesAPI()
    await api.start()
    yield api
    await api.stop()
    assert api.invalid == [], "objects the API server would refuse"
