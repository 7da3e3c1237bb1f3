"""Real services for the contract suites: each comes from its DISPATCH_TEST_* variable, else from
a throwaway container where a Docker engine answers, else its tests are skipped with the reason."""
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
