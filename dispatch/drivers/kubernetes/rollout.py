"""Waiting for a function's pods: done when its Deployment has rolled out, failed as soon as one of
its current pods shows a failure that will not go away by waiting (a bad image, a handler that does
not load, a crash), with the reason the pod gives."""
import asyncio
import json
import time

from dispatch.drivers.kubernetes.manifests import TEMPLATE
from dispatch.drivers.kubernetes.objects import Objects
from dispatch.drivers.ports import BuildFailed

HOPELESS = {"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CrashLoopBackOff",
             "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def rolled_out(deployment: dict, at_least: int | None = None) -> bool:
    """The rule of `kubectl rollout status`; with `at_least`, enough ready pods is enough."""
    status, spec = deployment.get("status") or {}, deployment.get("spec") or {}
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return False
    if at_least is not None:
        return status.get("readyReplicas", 0) >= at_least
    wanted, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
    return updated >= wanted and status.get("replicas", 0) <= updated and status.get("availableReplicas", 0) >= updated


async def wait(objects: Objects, deployment: dict, pods_selector: str, timeout: float, poll: float,
               at_least: int | None = None) -> None:
    """Return once rolled out; raise BuildFailed with the pods' reason, or after `timeout` seconds."""
    name = deployment["metadata"]["name"]
    template = deployment["spec"]["template"]["metadata"]["labels"].get(TEMPLATE)
    deadline = time.monotonic() + timeout
    hint = ""
    while True:
        current = await objects.get("Deployment", name)
        if current is None:
            raise BuildFailed(f"Deployment {name} was deleted while it rolled out")
        if rolled_out(current, at_least):
            return
        pods = [pod for pod in await objects.list("Pod", pods_selector)
                if pod["metadata"].get("labels", {}).get(TEMPLATE) == template]
        failure, hint = _failure(pods), _hint(pods) or hint
        if failure:
            raise BuildFailed(failure)
        if time.monotonic() >= deadline:
            raise BuildFailed(f"the function's pods were not ready after {timeout:.0f} s"
                              + (f": {hint}" if hint else ""))
        await asyncio.sleep(poll)


def _failure(pods: list[dict]) -> str | None:
    for pod in pods:
        status = pod.get("status") or {}
        for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            state, last = container.get("state") or {}, (container.get("lastState") or {}).get("terminated") or {}
            waiting, ended = state.get("waiting") or {}, state.get("terminated") or {}
            if ended and ended.get("exitCode", 0) != 0:
                return _reason(container["name"], ended.get("reason") or "Error", ended)
            if waiting.get("reason") in HOPELESS:
                return _reason(container["name"], waiting["reason"], last or waiting)
    return None


def _reason(container: str, reason: str, detail: dict) -> str:
    """The container's own words when it left any (the check prints the handler error as JSON)."""
    message = (detail.get("message") or "").strip()
    try:
        message = json.loads(message.splitlines()[-1])["message"]
    except (ValueError, IndexError, KeyError, TypeError):
        pass
    return f"{message} (container {container}: {reason})" if message else f"container {container}: {reason}"


def _hint(pods: list[dict]) -> str:
    """What the pods are waiting for, for a deploy that times out."""
    for pod in pods:
        status = pod.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("status") == "False" and condition.get("message"):
                return f"{condition.get('reason') or condition.get('type')}: {condition['message']}"
        for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason"):
                return f"container {container['name']}: {waiting['reason']}"
    return ""
