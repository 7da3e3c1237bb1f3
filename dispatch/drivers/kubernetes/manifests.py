"""The Kubernetes objects of one function, as plain dicts: a Secret holding what its pods mount, a
Deployment running the function server in HTTP mode, a Service in front of it, and an autoscaler
when it may grow past its minimum.

A pod runs the function's image: its base image as it is, or the image a build Job made of it
(build_jobs.py), with the packages where the image template puts them (/image/site-packages,
/image/node_modules). An init container unpacks the source from the Secret with `tar`, a second one
checks the handler (its error becomes the pod's termination message), and the function server,
mounted from the same Secret, serves §3.2 on port 8080. The image needs the language's interpreter
and `tar`.

Every container runs as USER (runAsNonRoot), with a read-only root filesystem, no privilege
escalation, every capability dropped and the runtime's default seccomp profile: the pod meets the
Pod Security Standards' `restricted` profile. Its writable places are the unpacked source and a
memory-backed /tmp of `Options.tmp_mb`; it has no service-account token. What its network may
reach is the installation's NetworkPolicy (policy.py).
"""
import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import dispatch
from dispatch.drivers.kubernetes.registry import BuildOptions, build_options_from
from dispatch.drivers.ports import BuildFailed, DeploymentSpec

PORT = 8080
MAX_SECRET_BYTES = 1024 * 1024
"""What the API server accepts in one Secret's data."""
CPU_TARGET_PERCENT = 80
DEFAULT_CPU_REQUEST = "100m"
"""An autoscaler measures CPU against the request, so every function asks for some."""

MANAGED_BY = "app.kubernetes.io/managed-by"
INSTALLATION = "dispatch.io/installation"
ORGANIZATION = "dispatch.io/organization"
FUNCTION = "dispatch.io/function"
FAAS_ID = "dispatch.io/faas-id"
TEMPLATE = "dispatch.io/template"
"""On pods only: tells the pods of the current template from older ones during a rollout."""
APPLIED = "dispatch.io/applied-sha256"
"""What Dispatch last wrote, so a deploy that finds the same object leaves it alone."""
NAMES = "dispatch.io/function-name"
SECRET_NAMES = "dispatch.io/secret-names"

_RUNTIMES = Path(dispatch.__file__).resolve().parent / "runtimes"
_MOUNT = "/dispatch"
_SOURCE_DIR = "/function"
_TMP = "/tmp"
_PYTHON_PACKAGES = "/image/site-packages"
_NODE_PACKAGES = "/image/node_modules"
"""Where an image built from the image template holds its runtime dependencies."""
USER = 65532
"""The uid and gid of every container: of no account, and the Docker runtime's too."""
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _dispatch(component: str) -> dict[str, str]:
    """The labels a Helm chart gives a part of Dispatch."""
    return {"app.kubernetes.io/name": "dispatch", "app.kubernetes.io/component": component}


CALLERS = (_dispatch("gateway"), _dispatch("handlers"))
"""Who runs functions: the handlers (runs), and gateways of installations that run both in one pod."""
PROTECTED = (_dispatch("gateway"), _dispatch("handlers"), _dispatch("rabbitmq"), _dispatch("postgresql"))
PRIVATE_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
                 "fc00::/7", "fe80::/10")
"""Not the internet: private, shared (CGNAT) and link-local ranges, where a cluster's pods and
services, a cloud's metadata address and a VPC's databases live."""


@dataclass(frozen=True)
class Options:
    """What all functions of one installation share."""

    namespace: str = "default"
    installation: str = "dispatch"
    max_replicas: int = 4
    idle_seconds: float = 300.0
    max_log_bytes: int = 1 << 20
    tmp_mb: int = 64
    """The size of each pod's /tmp, its only writable place besides the unpacked source."""
    network_policy: bool = True
    """Write the installation's NetworkPolicy (policy.py)."""
    dispatch_namespace: str | None = None
    """Where Dispatch's own pods run; None: the functions' namespace."""
    callers: tuple[dict[str, str], ...] = CALLERS
    """Labels of the pods that may call functions."""
    protected: tuple[dict[str, str], ...] = PROTECTED
    """Labels of the pods functions may not reach."""
    dns_labels: dict[str, str] = field(default_factory=lambda: {"k8s-app": "kube-dns"})
    private_cidrs: tuple[str, ...] = PRIVATE_CIDRS
    builds: BuildOptions = field(default_factory=BuildOptions)
    """Where and how images with packages are built (build_jobs.py)."""


def options_from(settings) -> Options:
    """The Options the server's settings (dispatch.settings.Settings) ask for; unset ones keep their default."""
    chosen = {"namespace": settings.kubernetes_namespace, "installation": settings.namespace,
              "max_replicas": settings.max_workers_per_function, "idle_seconds": settings.idle_seconds,
              "max_log_bytes": settings.max_log_bytes, "tmp_mb": settings.function_tmp_mb,
              "network_policy": settings.kubernetes_network_policy,
              "dispatch_namespace": settings.kubernetes_dispatch_namespace,
              "callers": _tuple(settings.kubernetes_caller_labels),
              "protected": _tuple(settings.kubernetes_protected_labels),
              "private_cidrs": _tuple(settings.kubernetes_private_cidrs), "dns_labels": settings.kubernetes_dns_labels,
              "builds": build_options_from(settings)}
    return Options(**{name: value for name, value in chosen.items() if value is not None})


def _tuple(values: list | None) -> tuple | None:
    return None if values is None else tuple(values)


@dataclass(frozen=True)
class Scale:
    min: int
    max: int
    idle_seconds: float

    @property
    def start(self) -> int:
        """Replicas at deploy: at least one, so the deploy proves the function starts."""
        return max(self.min, 1)

    @property
    def autoscaled(self) -> bool:
        return self.max > self.start


@dataclass(frozen=True)
class Manifests:
    name: str
    scale: Scale
    secret: dict
    deployment: dict
    service: dict
    autoscaler: dict | None


def object_name(faas_id: str) -> str:
    """A DNS-1035 label, as Services need: 'fn-' and the faas id (a UUID), or a safe form of it."""
    return "fn-" + dns_label(faas_id, 60)


def dns_label(value: str, limit: int) -> str:
    return _safe(value.lower(), r"[^a-z0-9-]", limit)


def label_value(value: str) -> str:
    return value if len(value) <= 63 and _LABEL_VALUE.fullmatch(value) else _safe(value, r"[^A-Za-z0-9_.-]", 63)


def selector(options: Options, faas_id: str) -> dict[str, str]:
    return {INSTALLATION: label_value(options.installation), FAAS_ID: label_value(faas_id)}


def pods_selector(options: Options, faas_id: str) -> str:
    return ",".join(f"{key}={value}" for key, value in selector(options, faas_id).items())


def installation_selector(options: Options) -> str:
    return f"{INSTALLATION}={label_value(options.installation)}"


def functions_selector(options: Options) -> str:
    """The installation's function objects, not its image builds (build_jobs.py)."""
    return f"{installation_selector(options)},{FAAS_ID}"


def scale_of(spec: DeploymentSpec, options: Options) -> Scale:
    low = 1 if spec.min_replicas is None else spec.min_replicas
    high = max(spec.max_replicas or options.max_replicas, low, 1)
    idle = options.idle_seconds if spec.idle_seconds is None else spec.idle_seconds
    return Scale(low, high, float(idle))


def build(spec: DeploymentSpec, options: Options, archive: bytes) -> Manifests:
    """Every object of the function; raise BuildFailed when its source cannot fit in a Secret."""
    name, scale = object_name(spec.faas_id), scale_of(spec, options)
    labels = {MANAGED_BY: "dispatch", **selector(options, spec.faas_id),
              ORGANIZATION: label_value(spec.organization), FUNCTION: label_value(spec.name)}
    files = {"source.tgz": ("source.tgz", archive), **_server_files(spec.language)}
    size = sum(len(data) for _, data in files.values())
    if size > MAX_SECRET_BYTES:
        raise BuildFailed(f"the function's source is {len(archive)} bytes compressed, more than a Kubernetes "
                          f"Secret holds ({MAX_SECRET_BYTES} bytes): put its dependencies in the image instead")
    data = {key: base64.b64encode(value).decode() for key, (_, value) in files.items()}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": data,
              "metadata": _meta(name, labels, spec, {SECRET_NAMES: ",".join(spec.secrets)})}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, labels, spec),
                  "spec": _deployment_spec(spec, options, name, labels, scale, files, _digest(data))}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, labels, spec),
               "spec": {"type": "ClusterIP", "selector": selector(options, spec.faas_id),
                        "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]}}
    autoscaler = None
    if scale.autoscaled:
        autoscaler = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                      "metadata": _meta(name, labels, spec),
                      "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                               "minReplicas": scale.start, "maxReplicas": scale.max,
                               "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                                   "type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT}}}]}}
    return Manifests(name, scale, secret, deployment, service, autoscaler)


def applied_digest(body: dict) -> str:
    """Digest of what Dispatch asks for; replicas are left out, the autoscaler and idle scaling own them."""
    spec = {key: value for key, value in (body.get("spec") or {}).items() if key != "replicas"}
    return _digest({**body, "spec": spec})


def _deployment_spec(spec: DeploymentSpec, options: Options, name: str, labels: dict, scale: Scale,
                     files: dict[str, tuple[str, bytes]], content: str) -> dict:
    pod = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": USER, "runAsGroup": USER,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [
            {"name": "dispatch", "secret": {"secretName": name, "defaultMode": 0o444,
                                            "items": [{"key": key, "path": path} for key, (path, _) in files.items()]}},
            {"name": "function", "emptyDir": {}},
            # In memory, as the Docker runtime's /tmp: a full /tmp is ENOSPC, not an evicted pod.
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": f"{options.tmp_mb}Mi"}},
        ],
        # The check loads the function's code, which may run anything at import: the same limits.
        "initContainers": [
            {**_container(spec, "unpack", ["tar", "-xzf", f"{_MOUNT}/source.tgz", "-C", _SOURCE_DIR]),
             "resources": _resources(spec)},
            {**_container(spec, "check", _server_command(spec, options) + ["--check"]), "resources": _resources(spec)},
        ],
        "containers": [{
            **_container(spec, "function", _server_command(spec, options) + ["--http"]),
            "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                               "periodSeconds": 2, "failureThreshold": 2, "timeoutSeconds": 2},
            "resources": _resources(spec),
        }],
    }
    template: dict = {"metadata": {"labels": labels, "annotations": {"dispatch.io/content-sha256": content}},
                      "spec": pod}
    template["metadata"]["labels"] = {**labels, TEMPLATE: _digest(template)[:16]}
    return {"replicas": scale.start, "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector(options, spec.faas_id)},
            # A new version starts before the old one stops: no moment without a ready pod.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": template}


def _container(spec: DeploymentSpec, name: str, command: list[str]) -> dict:
    return {"name": name, "image": spec.image_location, "command": command, "workingDir": f"{_MOUNT}/runtime",
            "env": [{"name": "PORT", "value": str(PORT)}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                    {"name": "PYTHONUNBUFFERED", "value": "1"}, {"name": "HOME", "value": _TMP},
                    *([{"name": "NODE_PATH", "value": _NODE_PACKAGES}] if spec.language == "nodejs" else [])],
            # A failing check or crash leaves its last lines in the pod's status, where the deploy reads them.
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": {"allowPrivilegeEscalation": False, "privileged": False, "runAsNonRoot": True,
                                "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "dispatch", "mountPath": _MOUNT, "readOnly": True},
                             {"name": "function", "mountPath": _SOURCE_DIR},
                             {"name": "tmp", "mountPath": _TMP}]}


def _server_command(spec: DeploymentSpec, options: Options) -> list[str]:
    flags = ["--handler", spec.handler] if spec.handler else []
    flags += ["--max-log-bytes", str(options.max_log_bytes)]
    if spec.max_output_bytes:
        flags += ["--max-output-bytes", str(spec.max_output_bytes)]
    if spec.concurrency and spec.concurrency > 1:
        flags += ["--concurrency", str(spec.concurrency)]
    if spec.cpu_seconds:
        # The function server enforces a run's CPU time itself; Kubernetes has no such limit.
        flags += ["--cpu-seconds", str(spec.cpu_seconds)]
    if spec.language == "python3":
        return ["python3", "-m", "dispatch.runtimes.python3", "--source", _SOURCE_DIR, "--library", _PYTHON_PACKAGES,
                *flags]
    return ["node", f"{_MOUNT}/runtime/server.js", "--source", _SOURCE_DIR, *flags]


def _server_files(language: str) -> dict[str, tuple[str, bytes]]:
    """The function server's files: Secret key -> (path under the mount, content)."""
    if language == "python3":
        package = "runtime/dispatch/runtimes/python3"
        files = {f"python3.{p.name}": (f"{package}/{p.name}", p.read_bytes())
                 for p in sorted((_RUNTIMES / "python3").glob("*.py"))}
        # Empty parents: the image has no dispatch package, and the real one's __init__ is not needed.
        return {"dispatch.init.py": ("runtime/dispatch/__init__.py", b""),
                "runtimes.init.py": ("runtime/dispatch/runtimes/__init__.py", b""), **files}
    if language == "nodejs":
        return {"nodejs.server.js": ("runtime/server.js", (_RUNTIMES / "nodejs" / "server.js").read_bytes())}
    raise BuildFailed(f"the kubernetes runtime runs python3 and nodejs functions, not {language!r}")


def _resources(spec: DeploymentSpec) -> dict:
    limits: dict[str, str] = {}
    requests = {"cpu": DEFAULT_CPU_REQUEST}
    if spec.memory_mb:
        limits["memory"] = requests["memory"] = f"{spec.memory_mb}Mi"
    if spec.cpus:
        limits["cpu"] = f"{max(1, round(spec.cpus * 1000))}m"
        requests["cpu"] = limits["cpu"] if spec.cpus < 0.1 else DEFAULT_CPU_REQUEST
    return {"limits": limits, "requests": requests} if limits else {"requests": requests}


def _meta(name: str, labels: dict, spec: DeploymentSpec, extra: dict | None = None) -> dict:
    return {"name": name, "labels": dict(labels),
            "annotations": {NAMES: f"{spec.organization}/{spec.name}", **(extra or {})}}


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _safe(value: str, unsafe: str, limit: int) -> str:
    """`value` with unsafe characters replaced; a digest keeps values that were changed apart."""
    cleaned = re.sub(unsafe, "-", value).strip("-_.")
    if cleaned == value and 0 < len(value) <= limit and value[0].isalnum():
        return value
    suffix = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{cleaned[:limit - 9].strip('-_.')}-{suffix}".lstrip("-_.")
