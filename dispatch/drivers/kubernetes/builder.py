"""Images built in the cluster: the build's Secret and Job written (or found, when the same build is
already under way or done), the Job polled until it ends, and the builder's log read into the
image's build log. Done: the pushed image's reference, pinned to the digest the builder pushed.
Failed: why, with the builder's last lines.

A Job that ended stays until the cluster removes it (build_jobs.FINISHED_SECONDS): every server
process waiting for the same build reads its end there. One that cannot end well (its builder
cannot start, it outlives its deadline) is removed at once, so that a retry starts afresh."""
import asyncio
import inspect
import re
import time
from typing import Awaitable, Callable

import structlog

from dispatch.drivers.kubernetes import build_jobs, manifests as m, rollout
from dispatch.drivers.kubernetes.objects import KubernetesFailed, Objects
from dispatch.drivers.ports import BuildFailed, ImageSpec, Progress

LOG_LINES = 5000
TAIL_LINES = 20
POD_SECONDS = 120.0
"""A Job without a pod this long was refused one (Pod Security admission, a quota)."""
_MAX_POLL = 5.0
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
log = structlog.get_logger("dispatch.kubernetes")


class ImageBuilds:
    def __init__(self, objects: Callable[[], Awaitable[Objects]], options: m.Options, poll: float,
                 pod_seconds: float = POD_SECONDS):
        self._objects = objects
        self._options = options
        self._poll = poll
        self._pod_seconds = pod_seconds

    async def build(self, spec: ImageSpec, progress: Progress | None) -> str:
        """The reference of the image built and pushed for `spec`; raise BuildFailed."""
        builds = self._options.builds
        if not builds.registry:
            raise BuildFailed("the kubernetes runtime builds images with packages in the cluster and pushes them to "
                              "kubernetes_registry, which is not set: set it (DISPATCH_KUBERNETES_REGISTRY) to a "
                              "registry and path prefix the cluster pulls from, e.g. registry.example.com/dispatch")
        wanted = build_jobs.build(spec, self._options)
        functions = await self._objects()
        namespace = builds.namespace or functions.namespace
        objects = functions if namespace == functions.namespace else Objects(functions.api, namespace)
        await self._start(objects, wanted, spec, progress)
        try:
            job, pod = await self._wait(objects, wanted.name)
        except BuildFailed:
            await _remove(objects, wanted.name)
            raise
        return await self._result(objects, wanted, job, pod, progress)

    async def _start(self, objects: Objects, wanted: build_jobs.Build, spec: ImageSpec,
                     progress: Progress | None) -> None:
        job = await objects.get("Job", wanted.name)
        if job is not None and _finished(job) == "Failed":
            await _remove(objects, wanted.name)  # an earlier try of the same build: try again
            job = None
        if job is not None:
            done = "has built this image" if _finished(job) else "is already under way"
            await _say(progress, f"build Job {wanted.name} in namespace {objects.namespace} {done}")
            return
        secret = await objects.create(wanted.secret)
        job = await objects.create(wanted.job)
        await objects.adopt(secret, job)  # the cluster removes the context with its Job
        await _say(progress, f"build Job {wanted.name} in namespace {objects.namespace}: "
                             f"{self._options.builds.builder_image} builds on {spec.base_url} "
                             f"and pushes {wanted.destination}")

    async def _wait(self, objects: Objects, name: str) -> tuple[dict, dict | None]:
        """The ended Job and its builder pod; raise BuildFailed when it cannot end well."""
        builds = self._options.builds
        started, delay = time.monotonic(), self._poll
        while True:
            job = await objects.get("Job", name)
            if job is None:
                raise BuildFailed(f"the build Job {name} was deleted while it ran")
            pods = sorted(await objects.list("Pod", f"{build_jobs.BUILD}={name}"),
                          key=lambda pod: pod["metadata"].get("creationTimestamp") or "")
            pod = pods[-1] if pods else None
            if _finished(job):
                return job, pod
            waited = time.monotonic() - started
            if pod is not None and (hopeless := _hopeless(pod)):
                raise BuildFailed(f"the builder could not start: {hopeless}")
            if pod is None and waited > self._pod_seconds:
                raise BuildFailed(f"the build Job {name} got no pod in {self._pod_seconds:g} s: the builder runs "
                                  f"as root, so namespace {objects.namespace} must allow the `baseline` Pod Security "
                                  "level (label pod-security.kubernetes.io/enforce=baseline), and a ResourceQuota "
                                  "there may refuse it")
            if waited > builds.timeout + min(60.0, builds.timeout):  # the Job's own deadline should have ended it
                raise BuildFailed(f"the image build did not finish within {builds.timeout:g} s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, max(_MAX_POLL, self._poll))

    async def _result(self, objects: Objects, wanted: build_jobs.Build, job: dict, pod: dict | None,
                      progress: Progress | None) -> str:
        ended = _terminated(pod)
        lines = await _log(objects, pod, ended)
        for line in lines:
            await _say(progress, line)
        if _finished(job) == "Complete":
            digest = (ended.get("message") or "").strip()
            reference = f"{wanted.destination}@{digest}" if _DIGEST.fullmatch(digest) else wanted.destination
            await _say(progress, f"pushed {reference}")
            return reference
        tail = [line for line in lines if line.strip()][-TAIL_LINES:]
        raise BuildFailed("\n".join([f"the image build failed: {self._why(job, ended)}", *tail]))

    def _why(self, job: dict, ended: dict) -> str:
        if ended.get("reason") == "OOMKilled":
            return f"the builder ran out of memory (its limit is {self._options.builds.memory_mb} MiB)"
        conditions = (job.get("status") or {}).get("conditions") or []
        failed: dict = next((c for c in conditions if c.get("type") == "Failed"), {})
        if failed.get("reason") == "DeadlineExceeded":
            return f"it did not finish within {self._options.builds.timeout:g} s"
        if "exitCode" in ended:
            return f"the builder exited with code {ended['exitCode']}"
        return failed.get("message") or failed.get("reason") or "the Job failed"


def _finished(job: dict) -> str | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return condition["type"]
    return None


def _terminated(pod: dict | None) -> dict:
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == build_jobs.CONTAINER:
            return (status.get("state") or {}).get("terminated") or {}
    return {}


def _hopeless(pod: dict) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in rollout.HOPELESS:
            return f"{waiting.get('message') or ''} ({waiting['reason']})".strip()
    return None


async def _log(objects: Objects, pod: dict | None, ended: dict) -> list[str]:
    """The builder's log; without one (no pod, or no right to read it), its termination message."""
    if pod is None:
        return []
    try:
        return (await objects.log(pod["metadata"]["name"], build_jobs.CONTAINER, LOG_LINES)).splitlines()
    except KubernetesFailed as error:
        message = ended.get("message") or ""
        return [f"(the builder's log could not be read: {error})", *message.splitlines()]


async def _remove(objects: Objects, name: str) -> None:
    """Best effort: a Job left behind is removed by the cluster once it ended (ttlSecondsAfterFinished)."""
    for kind in ("Job", "Secret"):
        try:
            await objects.delete(kind, name)
        except KubernetesFailed as error:
            log.warning("could not remove an image build's object", kind=kind, name=name, error=str(error))


async def _say(progress: Progress | None, line: str) -> None:
    if progress is not None:
        said = progress(line)
        if inspect.isawaitable(said):
            await said
