"""Custom driver types on a Docker engine of this host (§4.5): each driver is one container of its
type's image, sharing the host's network, whose events reach its own ingestion listener.

The container gets every config entry as `--key=value` (`--key` when the value is empty), plus
`--dispatch-api-endpoint=127.0.0.1:<port>` (the flag Dispatch's driver client reads), every
secret key as an environment variable (upper-cased, `-` as `_`), and AUTH_TOKEN, the token its
posts must carry (DISPATCH_API_ENDPOINT repeats the endpoint for drivers that read the
environment). It is READY once it has run for STARTED_AFTER seconds; a container that exits, or
an image that cannot be pulled or started, is ERROR with the engine's word or the container's
last lines, and is started again after a growing pause. Containers are labelled with their
driver's id: whoever runs a driver first removes what another process may have left of it.

A driver of an exposed type serves its pushes on the port in its PORT variable: a free port of
this host, chosen at each start (Dispatch's drivers listened on port 80, which host networking
cannot give every driver). It is reported with READY as `<address>:<port>`, where `address` is
how the gateways reach this host (see `reachable_address`).

A driver's container gets what every container of the platform gets (docker/confinement.py: all
capabilities dropped, no-new-privileges, the engine's default seccomp profile, a cap on its
processes, nothing of the host mounted), but keeps its image's user and a writable root
filesystem: driver images are third-party images written to run as they were built, and the
host's network, which they need to reach their ingestion listener on 127.0.0.1."""
import asyncio
import json
import re
import secrets
import socket
from contextlib import suppress

import aiodocker
import structlog

from dispatch.drivers.docker import confinement, images
from dispatch.drivers.docker.installation import repository
from dispatch.drivers.ports import BuildFailed

from .ingest import Ingestion
from .ports import DriverRejected, DriverSpec, Emit, Report

log = structlog.get_logger("dispatch.drivers")
# Not the function runtime's namespace label: its clean-up at start must leave drivers alone.
DRIVER_NAMESPACE = "io.dispatchframework.driverNamespace"
DRIVER_ID = "io.dispatchframework.eventDriver"
DRIVER = "io.dispatchframework.eventDriverName"
STARTED_AFTER = 1.0
DRIVER_PROCESSES = 256
"""Processes and threads one driver's container may have at once."""
MOST_PAUSE = 60.0
_LOG_LINES = 5


def arguments(config: dict[str, str], endpoint: str) -> list[str]:
    given = [f"--{key}={value}" if value else f"--{key}" for key, value in config.items()]
    return [*given, f"--dispatch-api-endpoint={endpoint}"]


def environment(values: dict[str, str], endpoint: str, token: str) -> list[str]:
    named = {key.upper().replace("-", "_"): value for key, value in values.items()}
    return [f"{key}={value}" for key, value in {**named, "DISPATCH_API_ENDPOINT": endpoint,
                                                 "AUTH_TOKEN": token}.items()]


def reachable_address(local: bool) -> str:
    """How gateways reach this host: 127.0.0.1 when they run in this process (`local`), else the
    address of this host's name, or failing a routable one, of its default route's interface."""
    if local:
        return "127.0.0.1"
    with suppress(OSError):
        named = socket.gethostbyname(socket.gethostname())
        if not named.startswith("127."):
            return named
    with suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # a UDP "connect" sends nothing: it only picks the route
        return probe.getsockname()[0]
    return "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


class DockerDrivers:
    def __init__(self, url: str | None = None, namespace: str = "dispatch", address: str = "127.0.0.1"):
        """`address`: how gateways reach this host, where exposed drivers' containers listen."""
        self.url = url
        self.namespace = namespace
        self.address = address
        self._docker: aiodocker.Docker | None = None

    async def _engine(self) -> aiodocker.Docker:
        if self._docker is None:
            try:
                docker = aiodocker.Docker(url=self.url)
            except Exception as error:  # noqa: BLE001 - no socket, a bad URL: the user must know
                raise BuildFailed(
                    f"no Docker engine to run the driver's image: {error or type(error).__name__}") from None
            self._docker = docker
        return self._docker

    async def run(self, spec: DriverSpec, emit: Emit, report: Report) -> None:
        token = secrets.token_urlsafe(24)
        ingestion = Ingestion(emit, token, f"{spec.organization}/{spec.name}")
        await ingestion.start()
        pause = 1.0
        try:
            while True:
                reason, ran = await self._run_once(spec, ingestion, token, report)
                log.warning("event driver stopped", driver=spec.name, reason=reason)
                await report(reason)
                pause = 1.0 if ran > MOST_PAUSE else min(pause * 2, MOST_PAUSE)
                await asyncio.sleep(pause)
        finally:
            await ingestion.close()
            with suppress(Exception):
                await asyncio.shield(self.discard(spec.id))

    async def _run_once(self, spec: DriverSpec, ingestion: Ingestion, token: str,
                        report: Report) -> tuple[str, float]:
        """Run the driver's container until it ends: why it ended, and for how long it ran."""
        port = free_port() if spec.expose else None
        try:
            docker = await self._engine()
            await self.discard(spec.id)
            await images.ensure_pulled(docker, spec.image)
            container = await docker.containers.create(self._config(spec, ingestion.endpoint, token, port),
                                                       name=self._name(spec))
        except BuildFailed as failed:
            return failed.reason, 0.0
        except (aiodocker.DockerError, OSError) as error:
            return f"the Docker engine failed to create the driver's container: {_said(error)}", 0.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await container.start()
            ended = asyncio.ensure_future(container.wait())
            try:
                done, _ = await asyncio.wait({ended}, timeout=STARTED_AFTER)
                if not done:
                    await report(None, address=self._push_address(port))
                code = (await ended).get("StatusCode")
            finally:
                ended.cancel()
            lines = "".join(await container.log(stdout=True, stderr=True, tail=_LOG_LINES)).split("\n")
            said = " / ".join(line.strip() for line in lines if line.strip())
            return f"the driver's container exited with code {code}{': ' + said if said else ''}", loop.time() - started
        except (aiodocker.DockerError, OSError) as error:
            return f"the Docker engine failed to run the driver's container: {_said(error)}", loop.time() - started
        finally:
            with suppress(Exception):
                await asyncio.shield(container.delete(force=True))

    def _config(self, spec: DriverSpec, endpoint: str, token: str, port: int | None) -> dict:
        labels = {DRIVER_NAMESPACE: self.namespace, DRIVER_ID: spec.id, DRIVER: f"{spec.organization}/{spec.name}"}
        env = environment(spec.secrets, endpoint, token) + ([f"PORT={port}"] if port else [])
        host_config = {**confinement.locked_down(DRIVER_PROCESSES), "NetworkMode": "host"}
        return {"Image": spec.image, "Cmd": arguments(spec.config, endpoint), "Env": env, "Labels": labels,
                "HostConfig": host_config}

    def _push_address(self, port: int | None) -> str | None:
        if port is None:
            return None
        return f"[{self.address}]:{port}" if ":" in self.address else f"{self.address}:{port}"

    def _name(self, spec: DriverSpec) -> str:
        readable = re.sub(r"[^a-zA-Z0-9_.-]+", "-", f"{repository(self.namespace)}-driver-{spec.name}").strip("-.")
        return f"{readable[:80]}-{secrets.token_hex(3)}"

    async def discard(self, driver_id: str) -> None:
        docker = await self._engine()
        filters = json.dumps({"label": [f"{DRIVER_ID}={driver_id}", f"{DRIVER_NAMESPACE}={self.namespace}"]})
        for container in await docker.containers.list(all=True, filters=filters):
            try:
                await container.delete(force=True)
            except aiodocker.DockerError as error:
                if error.status != 404:
                    raise

    async def close(self) -> None:
        if self._docker is not None:
            await self._docker.close()
            self._docker = None


def _said(error: Exception) -> str:
    return getattr(error, "message", None) or str(error) or type(error).__name__


class NoEngine:
    """Custom driver types where no Docker engine is configured: every such driver is ERROR, saying how to get one."""

    def __init__(self, reason: str):
        self.reason = reason

    async def run(self, spec: DriverSpec, emit: Emit, report: Report) -> None:
        raise DriverRejected(self.reason)

    async def discard(self, driver_id: str) -> None:
        """Nothing ran."""

    async def close(self) -> None:
        """Nothing to release."""
