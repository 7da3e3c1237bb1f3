"""The server image, as a user builds and runs it: `docker build .`, then containers configured by
DISPATCH_* variables alone, driven from the host by the real `dispatch` CLI.

Built on the tests' engine FROM its local Debian base (tests/docker_image.py says why); the
distributed case runs a gateway and a handlers container on the host's RabbitMQ and PostgreSQL,
in a namespace of its own, dropped afterwards."""
import base64
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.fernet import Fernet

from dispatch.iam.keys import new_key_pair, write_private
from tests import docker_engine, docker_image
from tests.docker_image import Container, docker

from .conftest import DISPATCH, ROOT, free_port

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.timeout(900)]

AMQP = os.environ.get("DISPATCH_TEST_AMQP_URL")
DATABASE = os.environ.get("DISPATCH_TEST_DATABASE_URL")
HELLO = ROOT / "examples" / "python3" / "hello.py"
JON = '{"name": "Jon", "place": "Winterfell"}'


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> str:
    """The engine's URL, once SERVER_IMAGE is built on it from this work tree."""
    url = docker_engine.url_for_tests()
    try:
        seconds = docker_image.build_server_image(url, tmp_path_factory.mktemp("image") / "build.log")
    except docker_engine.Unavailable as missing:
        pytest.skip(f"Docker: {missing}")
    print(f"server image built in {seconds:.1f} s", file=sys.stderr)
    return url


def host_cli(port: int, config: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """The CLI on this host, as a user who exported DISPATCH_HOST and DISPATCH_PORT types it."""
    env = {**os.environ, "DISPATCH_HOST": "127.0.0.1", "DISPATCH_PORT": str(port), "DISPATCH_CONFIG": str(config)}
    return subprocess.run([DISPATCH, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def quickstart(cli, source: str) -> dict:
    """The README's quickstart through `cli`: a Python base image, image and function (the file at
    `source`), then a run."""
    for args in (("create", "base-image", "py-base", "dispatchframework/python3-base:0.0.13", "--language", "python3"),
                 ("create", "image", "py", "py-base"),
                 ("create", "function", "hello-py", source, "--image", "py")):
        made = cli(*args, "--wait")
        assert made.returncode == 0, f"{' '.join(args)}: {made.stdout}{made.stderr}"
    done = cli("exec", "hello-py", "--input", JON, "--wait")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def runs_logged(container: Container) -> set[str]:
    """The runs a container's server says it ran (its JSON log lines)."""
    lines = (json.loads(line) for line in container.logs().splitlines() if line.startswith("{"))
    return {line["run"] for line in lines if line.get("event") == "run"}


def test_the_image_runs_dispatch_server_as_uid_10001_with_a_healthcheck_and_no_compiler(engine):
    config = json.loads(docker(engine, "image", "inspect", "-f", "{{json .Config}}", docker_image.SERVER_IMAGE).stdout)
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["dispatch"] and config["Cmd"] == ["server"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    found = docker(engine, "run", "--rm", "--network", "none", "--entrypoint", "sh", docker_image.SERVER_IMAGE, "-c",
                   "id -u; command -v gcc cc c++ make; true")
    assert found.stdout.split() == ["10001"], f"a compiler or make in the image: {found.stdout}"


@dataclass
class Split:
    gateway: Container
    handlers: Container
    port: int
    bootstrap_key: Path


@pytest.fixture
def split(engine, tmp_path) -> Iterator[Split]:
    """A gateway and a handlers container on the host's RabbitMQ and PostgreSQL, in a namespace of
    their own, set by DISPATCH_* variables alone; the gateway takes a bootstrap key."""
    if not (AMQP and DATABASE):
        pytest.skip("needs DISPATCH_TEST_AMQP_URL and DISPATCH_TEST_DATABASE_URL "
                    "(make test sets them when RabbitMQ and PostgreSQL answer locally)")
    namespace = f"t{uuid.uuid4().hex[:10]}"
    pem, public = new_key_pair()
    write_private(tmp_path / "bootstrap.pem", pem)
    (tmp_path / "bootstrap.pub").write_bytes(base64.b64decode(public))
    port = free_port()
    shared = {"DISPATCH_BUS": AMQP, "DISPATCH_STORE": DATABASE, "DISPATCH_NAMESPACE": namespace,
              "DISPATCH_SECRET_KEY": Fernet.generate_key().decode()}
    # On the host's network: the gateway listens on loopback and on ports nothing else of this host has.
    gateway_env = {"DISPATCH_ROLE": "gateway", "DISPATCH_HOST": "127.0.0.1", "DISPATCH_PORT": str(port),
                   "DISPATCH_API_PORT": str(free_port()),
                   "DISPATCH_BOOTSTRAP_PUBLIC_KEY": "/run/dispatch/bootstrap.pub"}
    started: list[Container] = []
    try:
        started.append(Container(engine, f"server-{namespace}-handlers", {**shared, "DISPATCH_ROLE": "handlers"}, {},
                                 tmp_path))
        started.append(Container(engine, f"server-{namespace}-gateway", {**shared, **gateway_env},
                                 {tmp_path / "bootstrap.pub": "/run/dispatch/bootstrap.pub:ro"}, tmp_path))
        yield Split(gateway=started[1], handlers=started[0], port=port, bootstrap_key=tmp_path / "bootstrap.pem")
    finally:
        for container in started:
            container.remove()
        dropped = host_cli(port, tmp_path / "drop.json", "admin", "drop", "--bus", AMQP, "--store", DATABASE,
                           "--namespace", namespace, "--yes")
        assert dropped.returncode == 0, dropped.stderr


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_gateway_and_handlers_containers_set_by_environment_run_the_quickstart_for_the_host_cli(split, tmp_path):
    for container in (split.gateway, split.handlers):
        status = container.process_status()  # the server itself, as `ps` on this host shows it
        assert status["Uid"].split() == ["10001"] * 4 and status["Gid"].split() == ["10001"] * 4
    split.gateway.wait_healthy()
    split.handlers.wait_healthy()

    config = tmp_path / "cli-config.json"
    made = host_cli(split.port, config, "manage", "bootstrap", "--bootstrap-key", str(split.bootstrap_key))
    assert made.returncode == 0, made.stderr
    run = quickstart(lambda *args: host_cli(split.port, config, *args), str(HELLO))
    assert run["status"] == "READY" and run["output"] == {"myField": "Hello, Jon from Winterfell"}
    assert run["logs"]["stdout"] == ["greeting Jon"]
    assert run["name"] in runs_logged(split.handlers) and not runs_logged(split.gateway)

    for container in (split.gateway, split.handlers):
        assert container.stop() < 10, f"{container.name} ignored SIGTERM"
        assert container.inspect("{{.State.ExitCode}}") == "0", container.logs()[-2000:]


def test_one_container_with_the_defaults_is_a_whole_server_whose_own_cli_needs_no_login(engine, tmp_path):
    # No setting at all, on a network of its own: `docker run dispatch`, reached by `docker exec`.
    server = Container(engine, f"server-{uuid.uuid4().hex[:10]}", {}, {HELLO: "/examples/hello.py:ro"}, tmp_path,
                       network="none")
    try:
        server.wait_healthy()
        run = quickstart(lambda *args: server.exec("dispatch", *args), "/examples/hello.py")
        assert run["output"] == {"myField": "Hello, Jon from Winterfell"}
        assert run["name"] in runs_logged(server)
        assert server.stop() < 10 and server.inspect("{{.State.ExitCode}}") == "0", server.logs()[-2000:]
    finally:
        server.remove()
