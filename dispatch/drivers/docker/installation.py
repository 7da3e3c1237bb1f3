"""Who owns what on a Docker engine that several installations and processes share.

Every container and function image carries the installation's namespace and its owner: the runtime
that created it. An embedded server owns its data directory, so its owner survives a restart; a
process of a distributed installation is its own owner (host, pid and start time), and once that
process is gone nobody serves its containers any more. At start a runtime removes what it owned
before and what belonged to dead processes of its host: after a crash no container is left behind.
"""
import hashlib
import json
import os
import re
import socket
from pathlib import Path

import aiodocker

NAMESPACE = "io.dispatchframework.namespace"
OWNER = "io.dispatchframework.owner"
FAAS_ID = "io.dispatchframework.faasId"
FUNCTION = "io.dispatchframework.function"
KIND = "io.dispatchframework.kind"
IMAGE_ID = "io.dispatchframework.imageId"


def installation_owner(data_dir: Path) -> str:
    """The owner of everything an installation with its own data directory runs on this host."""
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]
    return f"{socket.gethostname()}:{digest}"


def process_owner() -> str:
    """This process as an owner: a later process never takes it over, even with the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"


def owner_is_gone(owner: str) -> bool:
    """True for a process owner of this host whose process no longer runs; other hosts are unknown."""
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or not started:
        return False
    return _started(int(pid)) != started


def repository(namespace: str) -> str:
    """The namespace as a Docker repository path component (lowercase letters, digits, dashes)."""
    return re.sub(r"[^a-z0-9]+", "-", namespace.lower()).strip("-") or "dispatch"


def tag_of(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:12]


async def reconcile(docker: aiodocker.Docker, namespace: str, owner: str) -> tuple[int, int]:
    """Remove the namespace's containers and function images that no live runtime owns any more;
    return how many of each went."""
    filters = json.dumps({"label": [f"{NAMESPACE}={namespace}"]})
    removed_containers = 0
    for container in await docker.containers.list(all=True, filters=filters):
        labels = container._container.get("Labels") or {}
        if _orphaned(labels.get(OWNER, ""), owner):
            try:
                await container.delete(force=True)
                removed_containers += 1
            except aiodocker.DockerError as exc:
                if exc.status != 404:
                    raise
    removed_images = 0
    for image in await docker.images.list(filters={"label": [f"{NAMESPACE}={namespace}", f"{KIND}=function"]}):
        if _orphaned((image.get("Labels") or {}).get(OWNER, ""), owner):
            try:
                await docker.images.delete(image["Id"], force=True)
                removed_images += 1
            except aiodocker.DockerError as exc:
                if exc.status not in (404, 409):
                    raise
    return removed_containers, removed_images


def _orphaned(their_owner: str, owner: str) -> bool:
    return their_owner == owner or owner_is_gone(their_owner)


def _started(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' when it does not run)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else ""
