"""Where the Kubernetes runtime's image builds push, and how: the registry an installation is
configured with, the builder that pushes to it, and the references of the images it holds."""
import re
from dataclasses import dataclass

from dispatch.drivers.ports import BuildFailed

KANIKO = "gcr.io/kaniko-project/executor:v1.23.2"
"""Kaniko's executor, pinned. Its upstream repository was archived in June 2025; maintained forks
publish executors with the same flags (`kubernetes_builder_image` picks one)."""
_HOST = r"(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|[A-Za-z0-9.-]+:[0-9]+|\[[0-9a-fA-F:]+\](:[0-9]+)?)"
_PATH = r"[a-z0-9]+([._-][a-z0-9]+)*"
_REGISTRY = re.compile(rf"({_HOST}/)?{_PATH}(/{_PATH})*|{_HOST}")


@dataclass(frozen=True)
class BuildOptions:
    """How one installation builds images in its cluster."""

    registry: str | None = None
    """host[:port][/prefix] the built images are pushed to; the cluster's nodes must pull from it.
    None: images with packages cannot be built."""
    registry_secret: str | None = None
    """A kubernetes.io/dockerconfigjson Secret, in the build namespace, the builder pushes with."""
    insecure: bool = False
    """The registry speaks plain HTTP."""
    namespace: str | None = None
    """Where build Jobs run; None: the functions' namespace."""
    builder_image: str = KANIKO
    timeout: float = 1200.0
    """Seconds a build may take, from the Job's creation."""
    memory_mb: int = 2048
    """The builder's memory limit: it holds the layers it snapshots."""

    def repository(self, image_id: str) -> str:
        """Where an image's builds go: one repository per image, a tag per content."""
        registry = self.registry or ""
        if not _REGISTRY.fullmatch(registry):
            raise BuildFailed(f"kubernetes_registry {registry!r} is not a registry and path prefix, "
                              "e.g. registry.example.com/dispatch or 10.0.0.5:5000/dispatch")
        name = re.sub(r"[^a-z0-9]+", "-", image_id.lower()).strip("-") or "image"
        return f"{registry.rstrip('/')}/image-{name}"

    def host(self) -> str:
        """The registry's host as the builder's --insecure-registry names it."""
        first = (self.registry or "").split("/")[0]
        return first if re.fullmatch(_HOST, first) else "index.docker.io"


def build_options_from(settings) -> BuildOptions:
    """The BuildOptions the server's settings (dispatch.settings.Settings) ask for."""
    chosen = {"registry": settings.kubernetes_registry, "registry_secret": settings.kubernetes_registry_secret,
              "insecure": settings.kubernetes_registry_insecure, "namespace": settings.kubernetes_build_namespace,
              "builder_image": settings.kubernetes_builder_image, "timeout": settings.kubernetes_build_timeout,
              "memory_mb": settings.kubernetes_build_memory_mb}
    return BuildOptions(**{name: value for name, value in chosen.items() if value is not None})
