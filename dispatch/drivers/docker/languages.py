"""What the Docker runtime knows per language: its Dockerfiles, the function server it copies into
function images, and the command that proves a base image carries the language."""
import json
from dataclasses import dataclass
from pathlib import Path

import dispatch
from dispatch.drivers import maven
from dispatch.drivers.ports import BuildFailed, unsupported_language

_DISPATCH = Path(dispatch.__file__).resolve().parent
TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Language:
    name: str
    version_command: tuple[str, ...]
    compiled: bool = False
    """Its function server is compiled in the image, once for all its functions (see runtime_files)."""

    def image_files(self, manifest: str, system_packages: str) -> dict[str, str | bytes]:
        """The image template's build context (§7.3: Dockerfile, system-packages.txt, packages.txt)."""
        files: dict[str, str | bytes] = {
            "Dockerfile": (TEMPLATES / self.name / "image.Dockerfile").read_text(),
            "install-system-packages.sh": (TEMPLATES / "install-system-packages.sh").read_text(),
            "system-packages.txt": system_packages, "packages.txt": manifest}
        if self.compiled:
            files.update({f"runtime/{name}": data for name, data in self.runtime_files().items()})
        return files

    def function_dockerfile(self) -> str:
        return (TEMPLATES / self.name / "function.Dockerfile").read_text()

    def runtime_files(self) -> dict[str, bytes]:
        """The function server, by its path under /opt/dispatch in the function image."""
        if self.name == "nodejs":
            return {"server.js": (_DISPATCH / "runtimes" / "nodejs" / "server.js").read_bytes()}
        if self.name == "java":  # sources, compiled with the image's JDK
            return {f"java/{path.name}": path.read_bytes()
                    for path in sorted((_DISPATCH / "runtimes" / "java").glob("*.java"))}
        files = {"dispatch/__init__.py": b"", "dispatch/runtimes/__init__.py": b""}
        for path in sorted((_DISPATCH / "runtimes" / "python3").glob("*.py")):
            files[f"dispatch/runtimes/python3/{path.name}"] = path.read_bytes()
        return files

    def check_manifest(self, manifest: str) -> None:
        """Refuse a manifest the package manager would only reject after a slow build."""
        if not manifest.strip():
            return
        if self.name == "java":
            maven.check_pom(manifest)
            return
        if self.name != "nodejs":
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
    "java": Language("java", ("javac", "-version"), compiled=True),  # a JDK: functions are compiled
}


def language_named(name: str) -> Language:
    try:
        return LANGUAGES[name]
    except KeyError:
        raise unsupported_language(name, "Docker", LANGUAGES) from None


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
