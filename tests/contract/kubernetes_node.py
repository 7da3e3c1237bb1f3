"""A one-pod node for the Kubernetes runtime's tests: it plays the Deployment controller and the
kubelet for the API double, running the pod the Deployment describes as processes of this machine.

As a kubelet does, it lays out the pod's volumes (Secret items at their paths, emptyDirs), runs the
init containers in order, then the container with its command, working directory and environment,
and reports Ready once the readiness probe answers 200; a failing init container is reported in the
pod's status with its last output as the termination message (FallbackToLogsOnError). Container paths
are mapped to folders of a fresh directory, the image is this machine's /usr and /bin (its python3,
node and tar, on a container's usual PATH), processes run as the pod's runAsUser when the tests run as
root, and the container port is `port` on 127.0.0.1: the Service URL is http://127.0.0.1:<port>/.
"""
import asyncio
import base64
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.contract.kubernetes_api import KubernetesAPI, container_status, pod

IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Node:
    def __init__(self, api: KubernetesAPI):
        self.api = api
        self.root = Path(tempfile.mkdtemp(prefix="dispatch-node-"))
        self.root.chmod(0o755)  # the pod's user must reach its volumes
        self.port = _free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        api.controller = self.reconcile

    async def reconcile(self, deployment: dict) -> None:
        await self.stop()
        name, replicas = deployment["metadata"]["name"], deployment["spec"]["replicas"]
        ready, pod_status = 0, None
        if replicas:
            pod_status = await self._run(deployment)
            ready = 1 if pod_status is None else 0
        generation = deployment["metadata"]["generation"]
        deployment["status"] = {"observedGeneration": generation, "replicas": min(replicas, 1),
                                "updatedReplicas": min(replicas, 1), "readyReplicas": ready, "availableReplicas": ready}
        namespace = deployment["metadata"]["namespace"]
        self.api.objects.pop(("Pod", namespace, f"{name}-0"), None)
        if pod_status is not None:
            self.api.objects[("Pod", namespace, f"{name}-0")] = pod(deployment, pod_status)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        self.process = None

    async def close(self) -> None:
        await self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    async def _run(self, deployment: dict) -> dict | None:
        """Start the pod; None once it is Ready, else the pod status a kubelet would report."""
        pod = deployment["spec"]["template"]["spec"]
        folder = self.root / deployment["metadata"]["name"]
        shutil.rmtree(folder, ignore_errors=True)
        namespace = deployment["metadata"]["namespace"]
        for volume in pod["volumes"]:
            (folder / volume["name"]).mkdir(parents=True)
            (folder / volume["name"]).chmod(0o777 if "emptyDir" in volume else 0o755)
            if "secret" in volume:
                data = self.api.objects[("Secret", namespace, volume["secret"]["secretName"])]["data"]
                for item in volume["secret"]["items"]:
                    path = folder / volume["name"] / item["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(base64.b64decode(data[item["key"]]))
                    path.chmod(item.get("mode", volume["secret"].get("defaultMode", 0o644)))
        for container in pod["initContainers"]:
            process = await self._start(container, pod, folder, stderr=asyncio.subprocess.PIPE)
            _, err = await process.communicate()
            if process.returncode:
                terminated = {"exitCode": process.returncode, "reason": "Error", "message": err.decode()[-2048:]}
                return {"phase": "Pending", "initContainerStatuses": [
                    container_status(deployment, container["name"], {"terminated": terminated})]}
        self.process = await self._start(pod["containers"][0], pod, folder)
        self.starts += 1
        probe = pod["containers"][0]["readinessProbe"]["httpGet"]["path"]
        await _until_ok(f"http://127.0.0.1:{self.port}{probe}")
        return None

    async def _start(self, container: dict, pod: dict, folder: Path, **pipes) -> asyncio.subprocess.Process:
        mounts = {m["mountPath"]: folder / m["name"] for m in container["volumeMounts"]}

        def local(value: str) -> str:
            for mount, there in sorted(mounts.items(), key=lambda item: -len(item[0])):
                if value == mount or value.startswith(mount + "/"):
                    return str(there) + value[len(mount):]
            return value

        env = {"PATH": IMAGE_PATH, **{e["name"]: e["value"] for e in container.get("env", [])},
               "PORT": str(self.port), "HOST": "127.0.0.1"}
        command = [local(part) for part in container["command"]]
        user = {}
        if os.geteuid() == 0:
            context = pod.get("securityContext") or {}
            user = {"user": context["runAsUser"], "group": context["runAsGroup"], "extra_groups": []}
        return await asyncio.create_subprocess_exec(*command, cwd=local(container["workingDir"]), env=env,
                                                    **user, **pipes)


async def _until_ok(url: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the pod's readiness probe {url} never answered 200")
            await asyncio.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
