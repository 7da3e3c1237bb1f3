"""Function containers: start one from a function image with its labels and limits, wait until its
server answers `/healthz`, tell why one ended, remove it.

Network modes: `bridge` publishes the server's port 8080 on a free port of 127.0.0.1; `host` (for
an engine without a bridge network, e.g. dockerd --bridge=none) shares the host's network, so each
container's server listens on a free port of its own, on 127.0.0.1 only. With an engine on another
host (DOCKER_HOST=tcp://…) the port is published, or the server listens, on every address of that
host, and the platform calls it there.
"""
import asyncio
import re
import secrets
import socket
import time
from dataclasses import dataclass

import aiodocker
import aiohttp
from aiodocker.types import JSONObject

from dispatch.drivers.docker import confinement
from dispatch.drivers.docker.pool import ReplicaFailed
from dispatch.drivers.ports import memory_message

CONTAINER_PORT = 8080
_PORT_IN_USE = ("EADDRINUSE", "Address already in use", "address already in use")
_LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class Container:
    id: str
    url: str
    port: int


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None = None
    cpus: float | None = None
    log_bytes: int = 1 << 20
    """Per stream and call, as the function server caps what it captures."""
    cpu_seconds: int | None = None
    """Per call, watched from outside (see cpu_time.py)."""
    concurrency: int = 1
    """Calls the function server runs at once (`scale.concurrency`); the pool never sends more."""
    processes: int = 64
    """Processes and threads in the container at once (its pids cgroup)."""
    max_output_bytes: int = 6 * 1024 * 1024
    """A run's JSON-encoded output; see calls.py for what the runtime reads of an answer."""
    tmp_mb: int = 64
    """The size of the container's /tmp, its only writable place."""


async def run_once(docker: aiodocker.Docker, image: str, command: tuple[str, ...],
                   labels: dict[str, str]) -> tuple[int | None, str]:
    """Run `command` in a throwaway container without network; its exit code and output (-1 and a
    note when it ran over a minute; 127, as from a shell, when the image lacks the program)."""
    # Without an init: the engine itself then says when the image lacks the program.
    host_config = {**confinement.function_host_config(None, None, Limits.processes, Limits.tmp_mb),
                   "NetworkMode": "none", "Init": False}
    config: JSONObject = {"Image": image, "Cmd": list(command), "Entrypoint": [], "Labels": labels,
                          "User": confinement.FUNCTION_USER, "Env": [f"HOME={confinement.HOME}"],
                          "HostConfig": host_config}
    container = await docker.containers.create(config)
    try:
        try:
            await container.start()
        except aiodocker.DockerError as exc:
            if "executable file not found" not in exc.message:
                raise
            return 127, f"{command[0]}: not found"
        try:
            async with asyncio.timeout(60):
                code = (await container.wait()).get("StatusCode")
        except TimeoutError:
            return -1, "it did not finish within 60 s"
        return code, "".join(await container.log(stdout=True, stderr=True)).strip()
    finally:
        await container.delete(force=True)


class Launcher:
    """Starts the containers of one deployment."""

    def __init__(self, docker: aiodocker.Docker, http: aiohttp.ClientSession, image: str, name: str,
                 labels: dict[str, str], limits: Limits, network_mode: str, address: str,
                 ports_in_use: set[int], ready_timeout: float, repository: str = "dispatch"):
        self.docker, self.http = docker, http
        self.image, self.name, self.labels, self.limits = image, name, labels, limits
        self.repository = repository
        self.network_mode, self.address = network_mode, address
        self.ports_in_use = ports_in_use
        self.ready_timeout = ready_timeout

    async def start(self) -> Container:
        for _attempt in range(3):
            try:
                return await self._start_once()
            except _PortTaken:
                continue  # another process took the free port between our look and the server's bind
        raise ReplicaFailed("no free port could be held for the function container")

    async def stop(self, container: Container) -> None:
        self.ports_in_use.discard(container.port)
        try:
            await self.docker.containers.container(container.id).delete(force=True)
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise

    async def ending(self, container: Container) -> tuple[str, str, list[str]]:
        """Why a container's server went away during a call: the error type, message and last log lines."""
        handle = self.docker.containers.container(container.id)
        state: dict = {}
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                state = (await handle.show()).get("State") or {}
            except aiodocker.DockerError:
                break
            if not state.get("Running"):
                break
            await asyncio.sleep(0.05)
        lines = await self._log_tail(handle)
        limit = self.limits.memory_mb
        if state.get("OOMKilled") and limit is not None:
            return "FunctionError", memory_message(limit), lines
        if state and not state.get("Running"):
            code = state.get("ExitCode")
            return "SystemError", f"the function process exited with code {code} during the call", lines
        return "SystemError", "lost the connection to the function container during the call", lines

    async def _start_once(self) -> Container:
        port = self._free_port() if self.network_mode == "host" else CONTAINER_PORT
        handle = await self.docker.containers.create(self._config(port), name=self._container_name())
        try:
            await handle.start()
            if self.network_mode != "host":
                port = await self._published_port(handle)
            container = Container(handle.id, f"http://{self.address}:{port}/", port)
            await self._wait_ready(handle, container)
            return container
        except BaseException:
            self.ports_in_use.discard(port)
            await self._remove_quietly(handle)
            raise

    def _config(self, port: int) -> dict:
        limits = self.limits
        host_config = confinement.function_host_config(limits.memory_mb, limits.cpus, limits.processes, limits.tmp_mb)
        host_config["NetworkMode"] = self.network_mode
        # The function server's own bounds (see function.Dockerfile): it refuses a larger output and
        # names the process limit when a fork fails against the container's pids limit.
        env = [f"PORT={port}", f"MAX_LOG_BYTES={limits.log_bytes}", f"CONCURRENCY={limits.concurrency}",
               f"MAX_OUTPUT_BYTES={limits.max_output_bytes}", f"PROCESSES={limits.processes}",
               f"HOME={confinement.HOME}"]
        if limits.memory_mb:
            env.append(f"MEMORY_MB={limits.memory_mb}")
        on_this_host = self.address == "127.0.0.1"
        if self.network_mode == "host":
            env.append(f"HOST={'127.0.0.1' if on_this_host else ''}")
        else:
            published = {"HostIp": "127.0.0.1" if on_this_host else "", "HostPort": ""}
            host_config["PortBindings"] = {f"{CONTAINER_PORT}/tcp": [published]}
        config = {"Image": self.image, "Env": env, "Labels": self.labels, "User": confinement.FUNCTION_USER,
                  "HostConfig": host_config}
        if self.network_mode != "host":
            config["ExposedPorts"] = {f"{CONTAINER_PORT}/tcp": {}}
        return config

    def _container_name(self) -> str:
        """Readable in `docker ps`: installation, function, and a suffix of its own."""
        readable = re.sub(r"[^a-zA-Z0-9_.-]+", "-", f"{self.repository}-{self.name}").strip("-.")[:80]
        return f"{readable}-{secrets.token_hex(3)}"

    def _free_port(self) -> int:
        while True:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            if port not in self.ports_in_use:
                self.ports_in_use.add(port)
                return port

    async def _published_port(self, handle) -> int:
        details = await handle.show()
        bindings = ((details.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{CONTAINER_PORT}/tcp") or []
        if not bindings:
            raise ReplicaFailed("the engine published no port for the function container")
        return int(bindings[0]["HostPort"])

    async def _wait_ready(self, handle, container: Container) -> None:
        deadline = time.monotonic() + self.ready_timeout
        pause = 0.01
        while time.monotonic() < deadline:
            try:
                async with self.http.get(container.url + "healthz", timeout=aiohttp.ClientTimeout(total=2)) as answer:
                    if answer.status == 200:
                        return
                    body = await answer.json(content_type=None)
                    message = ((body or {}).get("error") or {}).get("message") or f"/healthz answered {answer.status}"
                    raise ReplicaFailed(message)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                pass
            state = ((await handle.show()).get("State") or {})
            if not state.get("Running"):
                lines = await self._log_tail(handle)
                if any(marker in line for line in lines for marker in _PORT_IN_USE):
                    raise _PortTaken()
                if state.get("OOMKilled"):
                    raise ReplicaFailed(f"the function container ran out of memory before serving: its limit of "
                                        f"{self.limits.memory_mb} MB is too low for the function server")
                raise ReplicaFailed(f"the function container exited with code {state.get('ExitCode')} "
                                    f"before serving: {' / '.join(lines[-5:])}".rstrip(": "))
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)
        raise ReplicaFailed(f"the function container did not answer /healthz within {self.ready_timeout:.0f} s")

    async def _log_tail(self, handle) -> list[str]:
        try:
            chunks = await handle.log(stdout=True, stderr=True, tail=_LOG_TAIL_LINES)
        except aiodocker.DockerError:
            return []
        return "".join(chunks).splitlines()[-_LOG_TAIL_LINES:]

    async def _remove_quietly(self, handle) -> None:
        try:
            await handle.delete(force=True)
        except aiodocker.DockerError:
            pass


class _PortTaken(Exception):
    pass
