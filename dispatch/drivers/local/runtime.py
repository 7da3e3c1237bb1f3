"""`FunctionRuntime` on this machine: image folders of installed packages, and pools of worker
processes forked by a zygote of the function's own, in the function's sandbox (see isolation.py),
under its own user and limits (see sandbox.py)."""
import asyncio
import re
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

from dispatch.drivers.local import images
from dispatch.drivers.local.forkserver import ForkServer
from dispatch.drivers.local.isolation import Isolation
from dispatch.drivers.local.java import Java
from dispatch.drivers.local.languages import LANGUAGES, Language, WorkerSpec, language_named
from dispatch.drivers.local.pool import AtCapacity, Scale, WorkerPool
from dispatch.drivers.local.sandbox import Limits
from dispatch.drivers.local.workers import Worker, WorkerDied, WorkerNotReady, WorkerTimedOut
from dispatch.drivers.ports import (
    BuildFailed,
    DeploymentSpec,
    ImageSpec,
    Invocation,
    NotDeployed,
    Progress,
    capacity_message,
)
from dispatch.errors import Rejected
from dispatch.schemas import source
from dispatch.schemas.wirejson import dumps

READY_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_OUTPUT_BYTES = 6 << 20
# An answer line carries the output, both logs (JSON escapes make a byte up to six) and the error.
_LOGS_ESCAPED = 12
_ANSWER_SLACK_BYTES = 1 << 20
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Defaults:
    """What a function gets for the scale fields it leaves unset."""

    max_replicas: int = 4
    idle_seconds: float = 300.0
    max_queued_runs: int = 1000


class LocalRuntime:
    def __init__(self, data_dir: Path, max_workers: int = 4, max_log_bytes: int = 1 << 20,
                 functions_dir: Path | None = None, idle_seconds: float = 300.0, max_queued_runs: int = 1000,
                 separate_users: bool | None = None, maven_settings: Path | None = None, sandbox: str = "auto"):
        """Images live under `data_dir/images`, shared by the processes of a host; deployed
        functions under `functions_dir` (default `data_dir/functions`), which must be this
        process's own when several processes share the host. `separate_users`: run each function
        as a user of its own (default: when this process is root). `maven_settings`: the
        settings.xml Maven gets when it installs a Java image's pom.xml. `sandbox`: auto, on or
        off (see bubblewrap.py)."""
        self._images_dir = Path(data_dir) / "images"
        self._functions_dir = Path(functions_dir) if functions_dir else Path(data_dir) / "functions"
        self._defaults = Defaults(max(1, max_workers), idle_seconds, max_queued_runs)
        self._max_log_bytes = max_log_bytes
        self._isolation = Isolation(sandbox, separate_users)
        self._users = self._isolation.users
        self._zygotes: dict[str, ForkServer] = {}
        self._pools: dict[str, WorkerPool] = {}
        self._deploying: dict[str, asyncio.Lock] = {}
        self._languages: dict[str, Language] = {**LANGUAGES, "java": Java(Path(data_dir) / "java", maven_settings)}
        self.cold_starts: list[Callable[[str], None]] = []
        """Called with a function's name for each worker started while its runs waited for one."""

    async def check_base_image(self, language: str, docker_url: str) -> None:
        """The local runtime ignores `docker_url`: the language's interpreter on this host is the base image."""
        await images.check_interpreter(language_named(language, self._languages))

    async def build_image(self, spec: ImageSpec, progress: Progress | None = None) -> str:
        _check_id(spec.id, "image")
        self._users.keep_private(self._images_dir)
        return str(await images.build(language_named(spec.language, self._languages), spec, self._images_dir,
                                      progress))

    async def remove_image(self, location: str) -> None:
        await images.remove(location)

    async def deploy(self, spec: DeploymentSpec) -> str:
        _check_id(spec.faas_id, "function")
        language = language_named(spec.language, self._languages)
        image_dir = Path(spec.image_location) if spec.image_location else None
        if image_dir is not None and not image_dir.is_dir():
            raise BuildFailed(f"image folder {spec.image_location} is missing on this host; rebuild the image")
        async with self._deploying.setdefault(spec.faas_id, asyncio.Lock()):
            await self._stop(spec.faas_id)
            self._isolation.check(spec.name or spec.faas_id)
            folder = self._functions_dir / spec.faas_id
            scale = self._scale(spec)
            output = spec.max_output_bytes or DEFAULT_MAX_OUTPUT_BYTES
            worker = WorkerSpec(spec.handler, image_dir, self._max_log_bytes, scale.concurrency, spec.memory_mb,
                                spec.cpu_seconds, self._isolation.isolated, output, spec.processes)
            await self._ready_source(spec, folder, image_dir, language, worker)
            request = language.worker_request(worker) | {"cwd": str(folder)}
            limits = Limits(spec.memory_mb, spec.cpu_seconds, self._isolation.processes(spec.processes,
                                                                                        scale.max_replicas),
                            output, output + _LOGS_ESCAPED * self._max_log_bytes + _ANSWER_SLACK_BYTES)
            zygote = self._isolation.zygote([folder, *map(Path, request["open"])], spec.network, spec.memory_mb)
            self._zygotes[spec.faas_id] = zygote
            start = partial(self._start_worker, zygote, language, request, spec.faas_id, limits)
            pool = WorkerPool(spec.name or spec.faas_id, start, scale, self._started_cold)
            try:
                await pool.warm()
            except WorkerNotReady as exc:
                await pool.close()
                await self._stop(spec.faas_id)
                raise BuildFailed(exc.reason) from None
            self._pools[spec.faas_id] = pool
        return f"local://{spec.faas_id}"

    async def undeploy(self, faas_id: str) -> None:
        async with self._deploying.setdefault(faas_id, asyncio.Lock()):
            await self._stop(faas_id)

    async def invoke(self, faas_id: str, context: dict, payload: Any, timeout_ms: int) -> Invocation:
        pool = self._pools.get(faas_id)
        if pool is None:
            raise NotDeployed(faas_id)
        try:
            request = dumps({"context": context, "payload": payload})
        except (TypeError, ValueError) as exc:
            return _failed("InputError", f"Invalid Input: {exc}")
        try:
            worker = await pool.acquire()
        except AtCapacity as full:
            return _failed("SystemError", capacity_message(pool.name, full.queued))
        except (WorkerNotReady, OSError) as exc:
            return _failed("SystemError", f"cannot start the function process: {getattr(exc, 'reason', exc)}")
        try:
            message = await worker.call(request, timeout_ms / 1000 if timeout_ms > 0 else None)
        except WorkerTimedOut:
            pool.discard(worker)
            return _failed("FunctionError", "Function execution exceeded the timeout", worker)
        except WorkerDied as exc:
            pool.discard(worker)
            return _failed("FunctionError" if exc.limit else "SystemError", exc.reason, worker)
        except BaseException:
            pool.discard(worker)  # cancelled mid-call: the process may still be running it
            raise
        pool.release(worker)
        invocation = Invocation.from_envelope(message.get("answer")) if isinstance(message, dict) else None
        if invocation is None:
            pool.discard(worker)
            return _failed("SystemError", f"unreadable answer from the function process: {str(message)[:200]}", worker)
        return invocation

    def warm_workers(self) -> dict[str, int]:
        """Ready workers by function name (functions of several organizations may share one)."""
        counts: dict[str, int] = {}
        for pool in self._pools.values():
            counts[pool.name] = counts.get(pool.name, 0) + pool.ready
        return counts

    def _started_cold(self, function: str) -> None:
        for listener in self.cold_starts:
            listener(function)

    async def reconcile(self, keep: Iterable[str]) -> None:
        """Function folders a crashed run of this process's folder left: those of no function kept
        and not being deployed now (a deploy may have started after `keep` was read)."""
        wanted = set(keep) | set(self._pools) | set(self._deploying)
        if self._functions_dir.is_dir():
            for folder in self._functions_dir.iterdir():
                if folder.name not in wanted and folder.is_dir():
                    await asyncio.to_thread(shutil.rmtree, folder, True)

    async def close(self) -> None:
        await asyncio.gather(*(self._stop(faas_id) for faas_id in {*self._pools, *self._zygotes}))

    def _scale(self, spec: DeploymentSpec) -> Scale:
        maximum = spec.max_replicas or self._defaults.max_replicas
        return Scale(min_replicas=min(spec.min_replicas or 0, maximum), max_replicas=maximum,
                     concurrency=spec.concurrency or 1,
                     idle_seconds=self._defaults.idle_seconds if spec.idle_seconds is None else spec.idle_seconds,
                     max_queued=self._defaults.max_queued_runs)

    async def _ready_source(self, spec: DeploymentSpec, folder: Path, image_dir: Path | None, language: Language,
                           worker: WorkerSpec) -> None:
        """Extract the source, let the language ready it (compile), then hand it to the function's user."""
        try:
            await asyncio.to_thread(self._extract, spec, folder)
            await language.prepare(folder, worker)
            await asyncio.to_thread(self._hand_over, spec.faas_id, folder, image_dir)
        except Rejected as exc:
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise BuildFailed(exc.message) from None
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise

    def _extract(self, spec: DeploymentSpec, folder: Path) -> None:
        self._users.keep_private(self._functions_dir)
        source.extract(spec.source, folder)

    def _hand_over(self, faas_id: str, folder: Path, image_dir: Path | None) -> None:
        self._users.hand_over(folder, faas_id)
        if image_dir is not None and self._users.separate:
            image_dir.chmod(0o755)  # readable by every function's user; its parent folder is not

    async def _stop(self, faas_id: str) -> None:
        pool = self._pools.pop(faas_id, None)
        if pool is not None:
            await pool.close()
        zygote = self._zygotes.pop(faas_id, None)
        if zygote is not None:
            await zygote.close()  # with it goes whatever the function's processes left running
        await asyncio.to_thread(shutil.rmtree, self._functions_dir / faas_id, True)

    async def _start_worker(self, zygote: ForkServer, language: Language, request: dict, faas_id: str,
                            limits: Limits) -> Worker:
        ids = self._users.of(faas_id)
        request = request | {"uid": ids and ids[0], "gid": ids and ids[1], "rlimits": limits.rlimits()}
        return await Worker.start(zygote, request, limits, not language.limits_own_cpu, READY_TIMEOUT_SECONDS)


def _failed(kind: str, message: str, worker: Worker | None = None) -> Invocation:
    """Keeps what the process printed directly."""
    return Invocation.failure(kind, message, worker.stdout.lines() if worker else None,
                              worker.stderr.lines() if worker else None)


def _check_id(value: str, kind: str) -> None:
    if not _SAFE_ID.fullmatch(value or ""):
        raise BuildFailed(f"invalid {kind} id {value!r}: only letters, digits, '.', '_' and '-' are allowed")
