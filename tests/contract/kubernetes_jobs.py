"""The Job controller and the kubelet of image build Jobs, for the API double: each Job created gets
its pod, and the pod ends as a `builder` (a coroutine the test gives) says, in the background as in
a cluster. The pod's status, the builder's log, the container's termination message and the Job's
conditions are written as Kubernetes 1.30 writes them (a failed pod's Job: `Failed` with
`BackoffLimitExceeded`; past activeDeadlineSeconds: `DeadlineExceeded`)."""
import asyncio
import base64
import copy
import datetime as dt
from dataclasses import dataclass
from typing import Awaitable, Callable

from tests.contract.kubernetes_api import KubernetesAPI, job_pod


@dataclass
class Ended:
    """How the builder's container ended."""

    log: str
    exit_code: int = 0
    message: str = ""
    """The termination message: what the builder wrote to /dev/termination-log, or, on a failure
    without one, the log's last lines (FallbackToLogsOnError)."""
    reason: str | None = None
    """The container's reason (Completed, Error, OOMKilled); None: from the exit code."""
    job_reason: str | None = None
    """Why the Job failed, when not its pod: DeadlineExceeded."""


@dataclass
class Waiting:
    """The builder's container does not start: the kubelet's reason and message."""

    reason: str
    message: str


Builder = Callable[[dict, bytes], Awaitable[Ended | Waiting | None]]
"""Given the Job and its build context (the Secret's gzipped tar); None: the Job never gets a pod."""


class Jobs:
    def __init__(self, kube: KubernetesAPI, builder: Builder):
        self.kube = kube
        self.builder = builder
        self.created: list[dict] = []
        """Every Job created, as the API server stored it."""
        self.contexts: list[bytes] = []
        self._tasks: set[asyncio.Task] = set()
        kube.job_controller = self.start

    async def start(self, job: dict) -> None:
        self.created.append(copy.deepcopy(job))
        task = asyncio.ensure_future(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, job: dict) -> None:
        namespace = job["metadata"]["namespace"]
        volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "context")
        secret = self.kube.objects[("Secret", namespace, volume["secret"]["secretName"])]
        context = base64.b64decode(secret["data"]["context.tar.gz"])
        self.contexts.append(context)
        job["status"] = {"active": 1, "startTime": _now()}
        outcome = await self.builder(job, context)
        if outcome is None:
            job["status"] = {"active": 0}
            return
        container = job["spec"]["template"]["spec"]["containers"][0]
        status = {"name": container["name"], "image": container["image"], "imageID": "", "ready": False,
                  "restartCount": 0}
        if isinstance(outcome, Waiting):
            status["state"] = {"waiting": {"reason": outcome.reason, "message": outcome.message}}
            self._pod(job, {"phase": "Pending", "containerStatuses": [status]})
            return
        reason = outcome.reason or ("Completed" if outcome.exit_code == 0 else "Error")
        status["state"] = {"terminated": {"exitCode": outcome.exit_code, "reason": reason,
                                          "message": outcome.message, "startedAt": _now(), "finishedAt": _now()}}
        pod = self._pod(job, {"phase": "Succeeded" if outcome.exit_code == 0 else "Failed",
                              "containerStatuses": [status]})
        self.kube.logs[(namespace, pod["metadata"]["name"], container["name"])] = outcome.log
        if outcome.exit_code == 0 and not outcome.job_reason:
            job["status"] = {"succeeded": 1, "startTime": job["status"]["startTime"], "completionTime": _now(),
                             "conditions": [_condition("Complete")]}
        else:
            why = outcome.job_reason or "BackoffLimitExceeded"
            message = {"BackoffLimitExceeded": "Job has reached the specified backoff limit",
                       "DeadlineExceeded": "Job was active longer than specified deadline"}[why]
            job["status"] = {"failed": 1, "startTime": job["status"]["startTime"],
                             "conditions": [_condition("Failed", why, message)]}

    def _pod(self, job: dict, status: dict) -> dict:
        pod = job_pod(job, status)
        self.kube.objects[("Pod", job["metadata"]["namespace"], pod["metadata"]["name"])] = pod
        return pod


def _condition(kind: str, reason: str | None = None, message: str | None = None) -> dict:
    found = {"type": kind, "status": "True", "lastProbeTime": _now(), "lastTransitionTime": _now()}
    return {**found, **({"reason": reason, "message": message} if reason else {})}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
