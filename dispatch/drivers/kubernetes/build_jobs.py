"""The Kubernetes objects of one image build: a Secret holding the build context, which is the
Dockerfile and files the Docker runtime builds (dockerfiles.py), and a Job running Kaniko's
executor on it, which pushes the image to the installation's registry.

Kaniko unpacks the base image over its own root filesystem and runs the Dockerfile's steps there,
so its container runs as root, with a writable root filesystem and the capabilities that work with
files and users (CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETUID, SETGID, SETFCAP, KILL). It has nothing
more: not privileged, no privilege escalation, every other capability dropped, the runtime's default
seccomp profile, no service-account token. That is the Pod Security Standards' `baseline` profile;
`restricted` forbids root, so the build namespace must allow `baseline`. (Rootless BuildKit needs
its seccomp and AppArmor profiles `Unconfined`, which `baseline` forbids.)

Both objects are named by what they build, so a build started again (a retry, a restart, another
server process) finds the Job under way, or done, instead of starting a second one.
"""
import base64
import dataclasses
import gzip
import hashlib
from dataclasses import dataclass

from dispatch.drivers import dockerfiles
from dispatch.drivers.kubernetes import manifests as m
from dispatch.drivers.kubernetes.registry import BuildOptions
from dispatch.drivers.ports import BuildFailed, ImageSpec

CONTAINER = "build"
CONTEXT_KEY = "context.tar.gz"
_CONTEXT_DIR = "/context"
_DOCKER_CONFIG = "/kaniko/.docker"
"""Where Kaniko's executor image reads registry credentials (its DOCKER_CONFIG)."""
BUILD = "dispatch.io/build"
IMAGE_ID = "dispatch.io/image-id"
IMAGE_NAME = "dispatch.io/image-name"
CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "SETFCAP", "KILL"]
FINISHED_SECONDS = 600
"""How long an ended Job stays, the record of its build for every server process waiting for it;
then the cluster removes it, and its Secret with it (the Job owns it)."""


@dataclass(frozen=True)
class Build:
    name: str
    destination: str
    """repository:tag the builder pushes to."""
    secret: dict
    job: dict


def build(spec: ImageSpec, options: m.Options) -> Build:
    """The Secret and Job that build `spec`; raise BuildFailed for what no build would fix."""
    builds = options.builds
    packages = dockerfiles.system_packages_text(spec.system_packages)
    dockerfiles.check_manifest(spec.language, spec.manifest)
    files = dockerfiles.image_files(spec.language, spec.manifest, packages)
    archive = gzip.compress(dockerfiles.context(files), mtime=0)
    if len(archive) > m.MAX_SECRET_BYTES:
        raise BuildFailed(f"the image's build context is {len(archive)} bytes compressed, more than a Kubernetes "
                          f"Secret holds ({m.MAX_SECRET_BYTES} bytes)")
    tag = _digest(archive, spec.base_url)[:20]
    destination = f"{builds.repository(spec.id)}:{tag}"
    name = f"build-{m.dns_label(spec.id, 36)}-{_digest(destination, repr(dataclasses.astuple(builds)))[:10]}"
    labels = {m.MANAGED_BY: "dispatch", m.INSTALLATION: m.label_value(options.installation),
              IMAGE_ID: m.label_value(spec.id), BUILD: name}
    meta = {"name": name, "labels": labels, "annotations": {IMAGE_NAME: spec.name}}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta,
              "data": {CONTEXT_KEY: base64.b64encode(archive).decode()}}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
           "spec": {"backoffLimit": 0, "activeDeadlineSeconds": max(1, round(builds.timeout)),
                    "ttlSecondsAfterFinished": FINISHED_SECONDS,
                    "template": {"metadata": {"labels": labels},
                                 "spec": _pod(name, builder_args(spec, builds, destination), builds)}}}
    return Build(name, destination, secret, job)


def builder_args(spec: ImageSpec, builds: BuildOptions, destination: str) -> list[str]:
    """Kaniko's executor flags: the context from the Secret, the image template's build argument,
    the digest it pushed written where Kubernetes reads a container's termination message."""
    args = ["--dockerfile=Dockerfile", f"--context=tar://{_CONTEXT_DIR}/{CONTEXT_KEY}",
            f"--destination={destination}", f"--build-arg=BASE_IMAGE={spec.base_url}",
            "--digest-file=/dev/termination-log", "--log-format=text", "--push-retry=2"]
    if builds.insecure:
        args.append(f"--insecure-registry={builds.host()}")
    return args


def _pod(name: str, args: list[str], builds: BuildOptions) -> dict:
    volumes = [{"name": "context", "secret": {"secretName": name, "defaultMode": 0o444,
                                              "items": [{"key": CONTEXT_KEY, "path": CONTEXT_KEY}]}}]
    mounts = [{"name": "context", "mountPath": _CONTEXT_DIR, "readOnly": True}]
    if builds.registry_secret:
        volumes.append({"name": "registry", "secret": {
            "secretName": builds.registry_secret, "defaultMode": 0o444,
            "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}})
        mounts.append({"name": "registry", "mountPath": _DOCKER_CONFIG, "readOnly": True})
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": volumes,
        "containers": [{
            "name": CONTAINER, "image": builds.builder_image, "args": args,
            # On success the message is the digest; on failure, without one, the log's last lines.
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "privileged": False,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"], "add": list(CAPABILITIES)}},
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                          "limits": {"memory": f"{builds.memory_mb}Mi"}},
            "volumeMounts": mounts,
        }],
    }


def _digest(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def context_of(secret: dict) -> bytes:
    """The gzipped build context a build's Secret holds, as the builder reads it."""
    return base64.b64decode(secret["data"][CONTEXT_KEY])
