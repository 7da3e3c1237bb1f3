"""What the Docker runtime knows per language: its Dockerfiles, the function server it copies into
function images, and the command that proves a base image carries the language."""
from dataclasses import dataclass
from pathlib import Path

import dispatch
from dispatch.drivers import dockerfiles
from dispatch.drivers.dockerfiles import TEMPLATES, system_packages_text
from dispatch.drivers.ports import unsupported_language

_DISPATCH = Path(dispatch.__file__).resolve().parent
__all__ = ["LANGUAGES", "Language", "TEMPLATES", "language_named", "system_packages_text"]


@dataclass(frozen=True)
class Language:
    name: str
    version_command: tuple[str, ...]
    compiled: bool = False
    """Its function server is compiled in the image, once for all its functions (see runtime_files)."""

    def image_files(self, manifest: str, system_packages: str) -> dict[str, str | bytes]:
        """The image template's build context (§7.3: Dockerfile, system-packages.txt, packages.txt)."""
        extra = {f"runtime/{name}": data for name, data in self.runtime_files().items()} if self.compiled else {}
        return dockerfiles.image_files(self.name, manifest, system_packages, extra)

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
        dockerfiles.check_manifest(self.name, manifest)


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
