"""`FunctionRuntime` on a Docker engine: base image → image → function image, and functions served
by pools of containers running the same function servers as the local runtime (§3.2 over HTTP)."""
import asyncio
import contextlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlparse

import aiodocker
import aiohttp
import structlog

from dispatch.drivers.docker import containers, images, installation
from dispatch.drivers.docker.calls import call, failed
from dispatch.drivers.docker.containers import Launcher, Limits
from dispatch.drivers.docker.installation import FAAS_ID, FUNCTION, IMAGE_ID, KIND, NAMESPACE, OWNER
from dispatch.drivers.docker.languages import Language, language_named, system_packages_text
from dispatch.drivers.docker.pool import Pool, ReplicaFailed
from dispatch.drivers.ports import BuildFailed, DeploymentSpec, ImageSpec, Invocation, NotDeployed, Progress
from dispatch.errors import Rejected
from dispatch.schemas import source
from dispatch.schemas.wirejson import dumps

READY_TIMEOUT_SECONDS = 60.0
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
log = structlog.get_logger("dispatch.docker")


@dataclass
class _Deployment:
    pool: Pool
    launcher: Launcher
    image: str


class DockerRuntime:
    def __init__(self, data_dir: Path, namespace: str = "dispatch", url: str | None = None,
                 owner: str | None = None, network_mode: str = "auto", min_replicas: int = 1,
                 max_replicas: int = 4, idle_seconds: float = 300.0, max_log_bytes: int = 1 << 20,
                 max_queued_runs: int = 1000, tmp_mb: int = Limits.tmp_mb):
        """`url`: the engine (default DOCKER_HOST, else the local socket). `owner`: who the containers
        belong to (default this process; see installation.py). `network_mode`: bridge, host, or auto
        (host when the engine has no bridge network). Build logs are kept under `data_dir/build-logs`.
        `tmp_mb`: the size of each container's /tmp (see confinement.py)."""
        self._logs_dir = Path(data_dir) / "build-logs"
        self.namespace = namespace
        self._repository = installation.repository(namespace)
        self._url = url
        self.owner = owner or installation.process_owner()
        self._network_mode = network_mode
        self._defaults = (min_replicas, max_replicas, idle_seconds)
        self._max_log_bytes = max_log_bytes
        self._max_queued_runs = max_queued_runs
        self._tmp_mb = tmp_mb
        self._docker: aiodocker.Docker | None = None
        self._http: aiohttp.ClientSession | None = None
        self._address = "127.0.0.1"
        self._ports: set[int] = set()
        self._deployments: dict[str, _Deployment] = {}
        self._deploying: dict[str, asyncio.Lock] = {}
        self._starting: asyncio.Lock | None = None
        self.cold_starts: list[Callable[[str], None]] = []
        """Called with a function's name for each container started while its runs waited for one."""

    async def start(self) -> None:
        """Connect, and remove what crashed runtimes of this installation left on the engine. Every
        other method starts the runtime first if nobody did."""
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self._docker is not None:
                return
            docker = aiodocker.Docker(url=self._url)
            try:
                if self._network_mode == "auto":
                    names = {network["Name"] for network in await docker.networks.list()}
                    self._network_mode = "bridge" if "bridge" in names else "host"
                orphans, orphan_images = await installation.reconcile(docker, self.namespace, self.owner)
            except BaseException:
                await docker.close()
                raise
            if urlparse(docker.docker_host).scheme in ("tcp", "http", "https"):
                self._address = urlparse(docker.docker_host).hostname or self._address
            self._docker = docker
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))
            log.info("docker runtime started", engine=docker.docker_host, network=self._network_mode,
                     orphan_containers_removed=orphans, orphan_images_removed=orphan_images)

    async def check_base_image(self, language: str, docker_url: str) -> None:
        """Pull when missing, then run the language's `--version` in it."""
        command = language_named(language).version_command
        docker = await self._engine()
        with engine_trouble():
            await images.ensure_pulled(docker, docker_url)
            labels = {NAMESPACE: self.namespace, OWNER: self.owner, KIND: "check"}
            code, output = await containers.run_once(docker, docker_url, command, labels)
        if code != 0:
            raise BuildFailed(f"{' '.join(command)} failed in {docker_url} (exit code {code}): {output}".rstrip(": "))

    async def build_image(self, spec: ImageSpec, progress: Progress | None = None) -> str:
        _check_id(spec.id, "image")
        language = language_named(spec.language)
        language.check_manifest(spec.manifest)
        files = language.image_files(spec.manifest, system_packages_text(spec.system_packages))
        dockerfile = files["Dockerfile"]
        assert isinstance(dockerfile, str)  # read from a text template
        files["Dockerfile"] = images.with_labels(dockerfile,
                                                 {NAMESPACE: self.namespace, KIND: "image", IMAGE_ID: spec.id})
        tag = f"{self._repository}/image-{spec.id.lower()}:latest"
        docker = await self._engine()
        with engine_trouble():
            await images.ensure_pulled(docker, spec.base_url, progress)
            await images.build(docker, images.context(files), tag, {"BASE_IMAGE": spec.base_url},
                               self._logs_dir / f"image-{spec.id}.log", self._build_network(), progress)
        return tag

    async def remove_image(self, location: str) -> None:
        await images.remove(await self._engine(), location)

    async def deploy(self, spec: DeploymentSpec) -> str:
        _check_id(spec.faas_id, "function")
        language = language_named(spec.language)
        docker = await self._engine()
        async with self._deploying.setdefault(spec.faas_id, asyncio.Lock()):
            await self._stop(spec.faas_id)
            with engine_trouble():
                if not spec.image_location or not await images.exists(docker, spec.image_location):
                    raise BuildFailed(f"image {spec.image_location or '(none)'} is missing from the Docker engine; "
                                      "rebuild the image")
                tag = f"{self._repository}/function-{spec.faas_id.lower()}:{installation.tag_of(self.owner)}"
                labels = {NAMESPACE: self.namespace, OWNER: self.owner, FAAS_ID: spec.faas_id,
                          FUNCTION: f"{spec.organization}/{spec.name}"}
                context = await asyncio.to_thread(_function_context, language, spec.source,
                                                  {**labels, KIND: "function"})
                await images.build(docker, context, tag, {"IMAGE": spec.image_location, "HANDLER": spec.handler},
                                   self._logs_dir / f"function-{spec.faas_id}.log", self._build_network())
                deployment = self._deployment(spec, tag, labels)
                try:
                    await deployment.pool.warm()
                except ReplicaFailed as exc:
                    await deployment.pool.close()
                    await images.remove(docker, tag)
                    raise BuildFailed(exc.reason) from None
            self._deployments[spec.faas_id] = deployment
        return tag

    async def undeploy(self, faas_id: str) -> None:
        async with self._deploying.setdefault(faas_id, asyncio.Lock()):
            await self._stop(faas_id)

    async def invoke(self, faas_id: str, context: dict, payload: Any, timeout_ms: int) -> Invocation:
        deployment = self._deployments.get(faas_id)
        if deployment is None:
            raise NotDeployed(faas_id)
        try:
            body = dumps({"context": context, "payload": payload})
        except (TypeError, ValueError) as exc:
            return failed("InputError", f"Invalid Input: {exc}")
        return await call(deployment.pool, deployment.launcher, self._session(), body, timeout_ms)

    async def reconcile(self, keep: Iterable[str]) -> None:
        """Containers and function images are this process's own: starting removes what crashed
        runtimes of this installation left, whatever functions remain."""
        await self.start()

    async def close(self) -> None:
        """Remove every container and function image of this runtime; images stay for the next start.
        What the engine refuses now, the next start removes."""
        stopped = await asyncio.gather(*(self._stop(faas_id) for faas_id in list(self._deployments)),
                                       return_exceptions=True)
        for problem in stopped:
            if isinstance(problem, Exception):
                log.warning("could not remove a function's containers", error=str(problem))
        if self._http is not None:
            await self._http.close()
        if self._docker is not None:
            await self._docker.close()
        self._docker = self._http = None

    async def _engine(self) -> aiodocker.Docker:
        if self._docker is None:
            with engine_trouble():
                await self.start()
        return self._client()

    def _client(self) -> aiodocker.Docker:
        if self._docker is None:
            raise RuntimeError("the Docker runtime is not started")
        return self._docker

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("the Docker runtime is not started")
        return self._http

    def _build_network(self) -> str | None:
        return "host" if self._network_mode == "host" else None

    def _deployment(self, spec: DeploymentSpec, tag: str, labels: dict[str, str]) -> _Deployment:
        minimum, maximum, idle = self._defaults
        limits = Limits(spec.memory_mb, spec.cpus, self._max_log_bytes, spec.cpu_seconds, spec.concurrency or 1,
                        spec.processes or Limits.processes, spec.max_output_bytes or Limits.max_output_bytes,
                        self._tmp_mb)
        launcher = Launcher(self._client(), self._session(), tag, spec.name or spec.faas_id,
                            {**labels, KIND: "replica"}, limits, self._network_mode,
                            self._address, self._ports, READY_TIMEOUT_SECONDS, self._repository)
        pool = Pool(launcher.start, launcher.stop,
                    minimum if spec.min_replicas is None else spec.min_replicas,
                    maximum if spec.max_replicas is None else spec.max_replicas,
                    limits.concurrency, idle if spec.idle_seconds is None else spec.idle_seconds,
                    self._max_queued_runs, partial(self._started_cold, spec.name or spec.faas_id))
        return _Deployment(pool, launcher, tag)

    def warm_workers(self) -> dict[str, int]:
        """Containers started and taking runs, by function name (functions of several
        organizations may share one)."""
        counts: dict[str, int] = {}
        for deployment in self._deployments.values():
            counts[deployment.launcher.name] = counts.get(deployment.launcher.name, 0) + len(deployment.pool.members)
        return counts

    def _started_cold(self, function: str) -> None:
        for listener in self.cold_starts:
            listener(function)

    async def _stop(self, faas_id: str) -> None:
        deployment = self._deployments.pop(faas_id, None)
        if deployment is not None:
            await deployment.pool.close()
            await images.remove(self._client(), deployment.image)


@contextlib.contextmanager
def engine_trouble():
    """The engine failing us fails the build or deploy with its word, as the user should see it."""
    try:
        yield
    except aiodocker.DockerError as exc:
        raise BuildFailed(f"the Docker engine failed: {exc.message}") from None


def _function_context(language: Language, archive: bytes, labels: dict[str, str]) -> bytes:
    """The function template's build context: Dockerfile, the function server, the unpacked source."""
    files: dict[str, bytes | str] = {"Dockerfile": images.with_labels(language.function_dockerfile(), labels)}
    files.update({f"runtime/{name}": data for name, data in language.runtime_files().items()})
    folder = Path(tempfile.mkdtemp(prefix="dispatch-source-"))
    try:
        source.extract(archive, folder)
        return images.context(files, {"function": folder})
    except Rejected as exc:
        raise BuildFailed(exc.message) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_id(value: str, kind: str) -> None:
    if not _SAFE_ID.fullmatch(value or ""):
        raise BuildFailed(f"invalid {kind} id {value!r}: only letters, digits, '.', '_' and '-' are allowed")
