"""A one-pod node whose kubelet is a Docker engine: like kubernetes_node.py it plays the Deployment
controller and the kubelet for the API double, but runs the pod's containers from the pod's image,
pulled from its registry when the engine lacks it (as a kubelet with imagePullPolicy IfNotPresent).

Each container gets the pod's user and group, its command as the entrypoint, its working directory
and environment, its volume mounts as folders of the node (read-only where the mount says so), a
read-only root filesystem when its security context asks for one, no capabilities and no privilege
escalation. The engine's host network stands in for the pod's: the container port is the node's
`port` on 127.0.0.1, so the Service URL is http://127.0.0.1:<port>/.
"""
from pathlib import Path

import aiodocker

from dispatch.drivers.docker.installation import NAMESPACE, OWNER, process_owner
from tests.contract.kubernetes_api import KubernetesAPI
from tests.contract.kubernetes_node import Node


class DockerNode(Node):
    def __init__(self, api: KubernetesAPI, docker: aiodocker.Docker, namespace: str):
        super().__init__(api)
        self.docker = docker
        self.labels = {NAMESPACE: namespace, OWNER: process_owner()}
        """On every container, so an interrupted run's are removed by the next (tests/docker_engine.py)."""
        self.pulled: list[str] = []

    async def _run(self, deployment: dict) -> dict | None:
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        try:
            await self.docker.images.inspect(image)
        except aiodocker.DockerError:
            await self.docker.images.pull(image)
            self.pulled.append(image)
        return await super()._run(deployment)

    async def _start(self, container: dict, pod: dict, folder: Path, **pipes) -> "_Container":
        context, own = pod.get("securityContext") or {}, container.get("securityContext") or {}
        binds = [f"{folder / mount['name']}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}"
                 for mount in container["volumeMounts"]]
        env = {**{item["name"]: item["value"] for item in container.get("env", [])}, "PORT": str(self.port)}
        config = {"Image": container["image"], "Entrypoint": container["command"], "Cmd": container.get("args") or [],
                  "WorkingDir": container.get("workingDir", ""), "Env": [f"{k}={v}" for k, v in env.items()],
                  "User": f"{context['runAsUser']}:{context['runAsGroup']}", "Labels": self.labels,
                  "HostConfig": {"NetworkMode": "host", "Binds": binds,
                                 "ReadonlyRootfs": bool(own.get("readOnlyRootFilesystem")),
                                 "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"]}}
        started = await self.docker.containers.create(config)
        await started.start()
        return _Container(started)


class _Container:
    """A container, as the node handles a process: communicate(), returncode, terminate(), wait()."""

    def __init__(self, container):
        self.container = container
        self.returncode: int | None = None

    async def communicate(self) -> tuple[bytes, bytes]:
        self.returncode = (await self.container.wait()).get("StatusCode")
        output = "".join(await self.container.log(stdout=True, stderr=True)).encode()
        await self.container.delete(force=True)
        return b"", output

    def terminate(self) -> None:
        """The container is stopped by wait(), which removes it."""

    async def wait(self) -> int:
        try:
            await self.container.delete(force=True)
        except aiodocker.DockerError:
            pass
        self.returncode = self.returncode if self.returncode is not None else -15
        return self.returncode

