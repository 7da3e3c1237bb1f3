"""`FunctionRuntime` on Kubernetes: each function is a Secret, a Deployment, a Service (and an
autoscaler), kept in step with its deploys, and run over HTTP through its Service; an image with
packages is built by a Job in the cluster (builder.py)."""
import asyncio
import datetime as dt
import gzip
import inspect
import io
import posixpath
import re
import tarfile
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

import structlog

from dispatch.drivers.kubernetes import manifests as m, policy, rollout
from dispatch.drivers.kubernetes.builder import POD_SECONDS, ImageBuilds
from dispatch.drivers.kubernetes.calls import DEFAULT_MAX_OUTPUT_BYTES, Calls, Unreachable, failed
from dispatch.drivers.kubernetes.idle import IdleScaler
from dispatch.drivers.kubernetes.objects import KubernetesFailed, Objects, connect
from dispatch.drivers.ports import BuildFailed, DeploymentSpec, ImageSpec, Invocation, NotDeployed, Progress
from dispatch.errors import Rejected, Unavailable
from dispatch.schemas import source

DEFAULT_SERVICE_URL = "http://{service}.{namespace}.svc.cluster.local:{port}/"
_KINDS = ("HorizontalPodAutoscaler", "Service", "Deployment", "Secret")
"""Every kind a function owns, in the order they are removed."""
ENDPOINTS_SECONDS = 5.0
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*")
log = structlog.get_logger("dispatch.kubernetes")


class KubernetesRuntime:
    def __init__(self, options: m.Options | None = None, kubeconfig: Path | None = None,
                 service_url: str = DEFAULT_SERVICE_URL, deploy_timeout: float = 300.0,
                 poll_seconds: float = 0.5, orphan_grace_seconds: float = 600.0):
        """`service_url` is where a function's Service answers, with {service}, {namespace} and {port}
        filled in. Objects of this installation without a Deployment are removed on the first use of
        the API, once older than `orphan_grace_seconds` (younger ones may be a deploy under way)."""
        self.options = options or m.Options()
        self._kubeconfig = str(kubeconfig) if kubeconfig else None
        self._service_url = service_url
        self._deploy_timeout = deploy_timeout
        self._poll = poll_seconds
        self._grace = orphan_grace_seconds
        self._objects: Objects | None = None
        self._connecting = asyncio.Lock()
        self._urls: dict[str, str] = {}
        self._output_caps: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._calls = Calls(self.options.max_log_bytes)
        self._builds = ImageBuilds(self._connected, self.options, poll_seconds, min(deploy_timeout, POD_SECONDS))
        self._idle = IdleScaler(self._connected, poll_seconds, deploy_timeout, self._started_cold)
        self.cold_starts: list[Callable[[str], None]] = []
        """Called with a function's name each time one of its runs scales it up from zero."""

    async def check_base_image(self, language: str, docker_url: str) -> None:
        """Only what can be told without a pod: pull failures show when a function is deployed."""
        _check_language(language)
        if not _IMAGE.fullmatch(docker_url or ""):
            raise BuildFailed(f"the kubernetes runtime needs a dockerUrl the cluster can pull, e.g. python:3.11-slim "
                              f"or node:20-slim, not {docker_url!r}")

    async def build_image(self, spec: ImageSpec, progress: Progress | None = None) -> str:
        """An image without packages is its base image as it is; one with packages is built by a Job
        in the cluster and pushed to the installation's registry (builder.py)."""
        await self.check_base_image(spec.language, spec.base_url)
        if spec.manifest.strip() or spec.system_packages:
            try:
                return await self._builds.build(spec, progress)
            except KubernetesFailed as error:
                raise BuildFailed(str(error)) from None
        if progress is not None:
            said = progress(f"functions of image {spec.name} run on {spec.base_url} as it is")
            if inspect.isawaitable(said):
                await said
        return spec.base_url

    async def remove_image(self, location: str) -> None:
        """Nothing is removed: a base image belongs to its registry, and an image built here stays in
        the installation's registry, whose retention policy decides when it goes."""

    async def deploy(self, spec: DeploymentSpec) -> str:
        _check_language(spec.language)
        try:
            archive = await asyncio.to_thread(_repack, spec.source)
        except Rejected as exc:
            raise BuildFailed(exc.message) from None
        objects = m.build(spec, self.options, archive)
        async with self._locks.setdefault(spec.faas_id, asyncio.Lock()):
            try:
                deployment = await self._apply(await self._connected(), objects)
                pods = m.pods_selector(self.options, spec.faas_id)
                await rollout.wait(await self._connected(), deployment, pods, self._deploy_timeout, self._poll)
            except KubernetesFailed as error:
                raise BuildFailed(str(error)) from None
            self._output_caps[spec.faas_id] = spec.max_output_bytes or DEFAULT_MAX_OUTPUT_BYTES
            self._urls[spec.faas_id] = self._service_url.format(
                service=objects.name, namespace=self.options.namespace, port=m.PORT)
            if objects.scale.min == 0:
                self._idle.watch(spec.faas_id, objects.name, pods, objects.scale.idle_seconds,
                                 down=not deployment["spec"].get("replicas"), function=spec.name)
            else:
                self._idle.forget(spec.faas_id)
        return f"kubernetes://{self.options.namespace}/deployments/{objects.name}"

    def _started_cold(self, function: str) -> None:
        for listener in self.cold_starts:
            listener(function)

    async def undeploy(self, faas_id: str) -> None:
        async with self._locks.setdefault(faas_id, asyncio.Lock()):
            self._urls.pop(faas_id, None)
            self._idle.forget(faas_id)
            try:
                objects = await self._connected()
                for kind in _KINDS:
                    await objects.delete(kind, m.object_name(faas_id))
            except KubernetesFailed as error:
                raise Unavailable(str(error)) from None

    async def invoke(self, faas_id: str, context: dict, payload: Any, timeout_ms: int) -> Invocation:
        url = self._urls.get(faas_id)
        if url is None:
            raise NotDeployed(faas_id)
        cap = self._output_caps.get(faas_id, DEFAULT_MAX_OUTPUT_BYTES)
        try:
            async with self._idle.running(faas_id):
                try:
                    return await self._calls.post(url, context, payload, timeout_ms, cap)
                except Unreachable:
                    window = ENDPOINTS_SECONDS if await self._started(faas_id) else 0.0
                return await self._post_within(window, url, context, payload, timeout_ms, cap)
        except Unreachable as unreachable:
            return failed("SystemError", str(unreachable))
        except (KubernetesFailed, BuildFailed) as error:
            return failed("SystemError", f"the function's pods could not be started: {error}")

    async def reconcile(self, keep: Iterable[str]) -> set[str]:
        """Remove the objects of this installation's functions other than the `keep` faas ids (the
        functions the platform still has); return the faas ids removed."""
        try:
            return await self._remove_others(await self._connected(), _KINDS, {m.label_value(f) for f in keep})
        except KubernetesFailed as error:
            raise Unavailable(str(error)) from None

    async def close(self) -> None:
        """Functions keep running: a restarted server finds them and leaves them as they are."""
        await self._idle.close()
        await self._calls.close()
        if self._objects is not None:
            await self._objects.api.close()
            self._objects = None

    async def _apply(self, objects: Objects, wanted: m.Manifests) -> dict:
        if self.options.network_policy:
            # Before the pods: a pod started ahead of its policy may run unprotected for a while.
            await objects.apply(policy.network_policy(self.options))
        secret = await objects.apply(wanted.secret)
        deployment = await objects.apply(wanted.deployment, keep=partial(_keep_replicas, wanted.scale))
        await objects.apply(wanted.service, owner=deployment, keep=_keep_cluster_ip)
        if wanted.autoscaler is not None:
            await objects.apply(wanted.autoscaler, owner=deployment)
        elif await objects.get("HorizontalPodAutoscaler", wanted.name) is not None:
            await objects.delete("HorizontalPodAutoscaler", wanted.name)
        await objects.adopt(secret, deployment)
        return deployment

    async def _post_within(self, seconds: float, url: str, context: dict, payload: Any, timeout_ms: int,
                           max_output_bytes: int) -> Invocation:
        """A Service sends to a pod a moment after it is ready: a pod just started gets a few tries."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return await self._calls.post(url, context, payload, timeout_ms, max_output_bytes)
            except Unreachable:
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(self._poll)

    async def _started(self, faas_id: str) -> bool:
        """After a failed connection: wake a sleeping function, or wait for a pod that is (re)starting,
        e.g. after a call past its deadline ended the last one. True if a pod has just become ready."""
        objects = await self._connected()
        deployment = await objects.get("Deployment", m.object_name(faas_id))
        if deployment is None:  # removed behind our back: deploying again restores it
            self._urls.pop(faas_id, None)
            self._idle.forget(faas_id)
            raise NotDeployed(faas_id)
        if not deployment["spec"].get("replicas"):
            if self._idle.watches(faas_id):
                await self._idle.wake(faas_id)
            return self._idle.watches(faas_id)
        if rollout.rolled_out(deployment, at_least=1):
            return False
        await rollout.wait(objects, deployment, m.pods_selector(self.options, faas_id), self._deploy_timeout,
                           self._poll, at_least=1)
        return True

    async def _connected(self) -> Objects:
        if self._objects is None:
            async with self._connecting:
                if self._objects is None:
                    objects = Objects(await connect(self._kubeconfig), self.options.namespace)
                    try:
                        await self._remove_orphans(objects)
                    except BaseException:
                        await objects.api.close()
                        raise
                    self._objects = objects
        return self._objects

    async def _remove_orphans(self, objects: Objects) -> None:
        """On the first use after a start: objects of this installation whose Deployment is gone, as an
        undeploy cut short leaves them."""
        deployments = await objects.list("Deployment", m.installation_selector(self.options))
        owners = {deployment["metadata"]["labels"].get(m.FAAS_ID) for deployment in deployments}
        await self._remove_others(objects, ("HorizontalPodAutoscaler", "Service", "Secret"), owners)

    async def _remove_others(self, objects: Objects, kinds: Iterable[str], keep: set[str]) -> set[str]:
        oldest = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=self._grace)
        removed = set()
        for kind in kinds:
            for found in await objects.list(kind, m.functions_selector(self.options)):
                faas_id = found["metadata"]["labels"].get(m.FAAS_ID)
                created = dt.datetime.fromisoformat(found["metadata"].get("creationTimestamp") or oldest.isoformat())
                if faas_id not in keep and created <= oldest:
                    await objects.delete(kind, found["metadata"]["name"])
                    removed.add(faas_id)
                    log.info("removed an object of a function that is gone", kind=kind, name=found["metadata"]["name"])
        return removed


def _keep_replicas(scale: m.Scale, body: dict, current: dict) -> None:
    """The autoscaler and idle scaling set replicas between deploys; a deploy only brings them into range."""
    live = current.get("spec", {}).get("replicas")
    if live is not None:
        body["spec"]["replicas"] = min(max(live, 0 if scale.min == 0 else scale.start), scale.max)


def _keep_cluster_ip(body: dict, current: dict) -> None:
    for field in ("clusterIP", "clusterIPs"):
        if field in current.get("spec", {}):
            body["spec"][field] = current["spec"][field]


def _check_language(language: str) -> None:
    if language not in ("python3", "nodejs"):
        raise BuildFailed(f"the kubernetes runtime runs python3 and nodejs functions, not {language!r}")


def _repack(archive: bytes) -> bytes:
    """The source as a complete archive, the same bytes for the same source: clients may send one
    without its end blocks, which `tar` in the pod refuses, and a gzip header carries the time it was
    written, which would make every deploy look like a change."""
    source.validate(archive)
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r|gz") as given, tarfile.open(fileobj=out, mode="w") as tar:
        for member in given:
            if out.tell() > MAX_UNPACKED_BYTES:
                raise Rejected(f"the function's source unpacks to more than {MAX_UNPACKED_BYTES} bytes")
            # `tar` in a pod runs unprivileged: an entry for the folder itself would fail to set its times.
            member.name = posixpath.normpath(member.name)
            if member.name in (".", ""):
                continue
            if member.islnk():
                member.linkname = posixpath.normpath(member.linkname)
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            tar.addfile(member, given.extractfile(member) if member.isfile() else None)
    return gzip.compress(out.getvalue(), mtime=0)
