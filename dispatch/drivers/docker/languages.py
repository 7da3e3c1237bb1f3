"""What the Docker runtime knows per language: its Dockerfiles, the function server it copies into
function images, and the command that proves a base image carries the language."""
import json
from dataclasses import dataclass
from pathlib import Path

import dispatch
from dispatch.drivers.ports import BuildFailed

_DISPATCH = Path(dispatch.__file__).resolve().parent
TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Language:
    name: str
    version_command: tuple[str, ...]

    def image_files(self, manifest: str, system_packages: str) -> dict[str, str]:
        """The image template's build context (§7.3: Dockerfile, system-packages.txt, packages.txt)."""
        return {"Dockerfile": (TEMPLATES / self.name / "image.Dockerfile").read_text(),
                "install-system-packages.sh": (TEMPLATES / "install-system-packages.sh").read_text(),
                "system-packages.txt": system_packages, "packages.txt": manifest}

    def function_dockerfile(self) -> str:
        return (TEMPLATES / self.name / "function.Dockerfile").read_text()

    def runtime_files(self) -> dict[str, bytes]:
        """The function server, by its path under /opt/dispatch in the function image."""
        if self.name == "nodejs":
            return {"server.js": (_DISPATCH / "runtimes" / "nodejs" / "server.js").read_bytes()}
        files = {"dispatch/__init__.py": b"", "dispatch/runtimes/__init__.py": b""}
        for path in sorted((_DISPATCH / "runtimes" / "python3").glob("*.py")):
            files[f"dispatch/runtimes/python3/{path.name}"] = path.read_bytes()
        return files

    def check_manifest(self, manifest: str) -> None:
        """Refuse a manifest the package manager would only reject after a slow build."""
        if self.name != "nodejs" or not manifest.strip():
            return
        try:
            package = json.loads(manifest)
        except ValueError as exc:
            raise BuildFailed(f"the nodejs manifest must be a package.json document: {exc}") from None
        if not isinstance(package, dict):
            raise BuildFailed("the nodejs manifest must be a package.json document (a JSON object)")


LANGUAGES = {
    "python3": Language("python3", ("python3", "--version")),
    "nodejs": Language("nodejs", ("node", "--version")),
}


def language_named(name: str) -> Language:
    try:
        return LANGUAGES[name]
    except KeyError:
        supported = ", ".join(LANGUAGES)
        raise BuildFailed(f"language {name} is not supported by the Docker runtime (supported: {supported})") from None


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
