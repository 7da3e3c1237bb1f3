"""An image's Dockerfile and build context, the same for every runtime that builds images: the
Docker runtime on its engine, the Kubernetes runtime in a build Job. The templates live with the
Docker runtime (docker/templates/), which also builds function images from them."""
import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path

from dispatch.drivers import maven
from dispatch.drivers.ports import BuildFailed

TEMPLATES = Path(__file__).resolve().parent / "docker" / "templates"


def image_files(language: str, manifest: str, system_packages: str,
                extra: Mapping[str, str | bytes] | None = None) -> dict[str, str | bytes]:
    """The image template's build context (§7.3: Dockerfile, system-packages.txt, packages.txt),
    by path in the context; `extra` adds files (a compiled language's function server)."""
    return {"Dockerfile": (TEMPLATES / language / "image.Dockerfile").read_text(),
            "install-system-packages.sh": (TEMPLATES / "install-system-packages.sh").read_text(),
            "system-packages.txt": system_packages, "packages.txt": manifest, **(extra or {})}


def system_packages_text(packages: tuple[tuple[str, str], ...]) -> str:
    """One `name version` a line, as the image template reads it; both are needed (§7.2)."""
    lines = []
    for name, version in packages:
        name, version = (name or "").strip(), (version or "").strip()
        if not name or not version:
            raise BuildFailed("invalid system package: empty name or version")
        if any(char.isspace() for char in name + version):
            raise BuildFailed(f"invalid system package {name} {version}: names and versions hold no spaces")
        lines.append(f"{name} {version}\n")
    return "".join(lines)


def check_manifest(language: str, manifest: str) -> None:
    """Refuse a manifest the package manager would only reject after a slow build."""
    if not manifest.strip():
        return
    if language == "java":
        maven.check_pom(manifest)
        return
    if language != "nodejs":
        return
    try:
        package = json.loads(manifest)
    except ValueError as exc:
        raise BuildFailed(f"the nodejs manifest must be a package.json document: {exc}") from None
    if not isinstance(package, dict):
        raise BuildFailed("the nodejs manifest must be a package.json document (a JSON object)")


def context(files: dict[str, bytes | str], folders: dict[str, Path] | None = None) -> bytes:
    """A build context: an uncompressed tar of `files` by their paths in it, and of `folders` (links
    kept). The same files give the same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
        for name, folder in (folders or {}).items():
            tar.add(folder, arcname=name, filter=_anonymous)
    return buffer.getvalue()


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owned by root and dated 0, so the same source hits the engine's build cache; readable (and
    folders searchable) by everyone, since functions run as a user of their own, and writable by
    nobody else."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    if not info.issym():
        searchable = 0o111 if info.isdir() else 0
        info.mode = (info.mode | 0o444 | searchable) & ~0o022
    return info
