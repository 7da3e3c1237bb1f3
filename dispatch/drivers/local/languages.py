"""What the local runtime knows per language: its interpreter, its package manager, its worker command."""
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Protocol

import dispatch
from dispatch.drivers.ports import BuildFailed

# Workers see this and nothing else of the server's environment.
_PASSED_THROUGH = ("PATH", "HOME", "TMPDIR", "TZ")
_RUNTIMES = Path(dispatch.__file__).resolve().parent / "runtimes"


class Language(Protocol):
    name: str
    package_manager: str

    def version_command(self) -> list[str]: ...

    def install_command(self, manifest: str, image_dir: Path) -> list[str] | None:
        """Write the manifest into `image_dir`; the command installing it there, None when nothing to install."""

    def worker_command(
        self, source: Path, handler: str, image_dir: Path | None, fds: tuple[int, int], max_log_bytes: int
    ) -> list[str]:
        """The worker's argv; `fds` are the request and response pipe ends it inherits."""

    def worker_env(self, image_dir: Path | None) -> dict[str, str]: ...


class Python3:
    name = "python3"
    package_manager = "pip"

    def version_command(self) -> list[str]:
        return [sys.executable, "--version"]

    def install_command(self, manifest: str, image_dir: Path) -> list[str] | None:
        (image_dir / "site-packages").mkdir()
        if not manifest.strip():
            return None
        requirements = image_dir / "requirements.txt"
        requirements.write_text(manifest)
        # --no-compile: bytecode compiled here would name the staging folder in tracebacks after the swap.
        return [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                "--no-compile", "--no-warn-script-location", "--progress-bar", "off",
                "--target", str(image_dir / "site-packages"), "-r", str(requirements)]

    def worker_command(self, source, handler, image_dir, fds, max_log_bytes):
        # -P: the worker's own cwd must not shadow the dispatch package; it puts the source first itself.
        command = [sys.executable, "-P", "-m", "dispatch.runtimes.python3", "--source", str(source),
                   "--handler", handler, "--request-fd", str(fds[0]), "--response-fd", str(fds[1]),
                   "--max-log-bytes", str(max_log_bytes)]
        if image_dir is not None:
            command += ["--library", str(image_dir / "site-packages")]
        return command

    def worker_env(self, image_dir):
        paths = [str(Path(dispatch.__file__).resolve().parent.parent)]
        if image_dir is not None:
            paths.append(str(image_dir / "site-packages"))
        return _base_env() | {"PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1",
                              "PYTHONIOENCODING": "utf-8"}


class NodeJS:
    name = "nodejs"
    package_manager = "npm"

    def version_command(self) -> list[str]:
        return [_find("node"), "--version"]

    def install_command(self, manifest: str, image_dir: Path) -> list[str] | None:
        if not manifest.strip():
            return None
        try:
            package = json.loads(manifest)
        except ValueError as exc:
            raise BuildFailed(f"the nodejs manifest must be a package.json document: {exc}") from None
        if not isinstance(package, dict):
            raise BuildFailed("the nodejs manifest must be a package.json document (a JSON object)")
        (image_dir / "package.json").write_text(json.dumps(package, indent=2))
        return [_find("npm"), "install", "--no-audit", "--no-fund", "--no-update-notifier"]

    def worker_command(self, source, handler, image_dir, fds, max_log_bytes):
        return [_find("node"), str(_RUNTIMES / "nodejs" / "server.js"), "--source", str(source),
                "--handler", handler, "--request-fd", str(fds[0]), "--response-fd", str(fds[1]),
                "--max-log-bytes", str(max_log_bytes)]

    def worker_env(self, image_dir):
        env = _base_env()
        if image_dir is not None:
            env["NODE_PATH"] = str(image_dir / "node_modules")
        return env


LANGUAGES: dict[str, Language] = {language.name: language for language in (Python3(), NodeJS())}


def language_named(name: str) -> Language:
    try:
        return LANGUAGES[name]
    except KeyError:
        supported = ", ".join(LANGUAGES)
        raise BuildFailed(f"language {name} is not supported by the local runtime (supported: {supported})") from None


def _find(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise BuildFailed(f"{program} was not found on PATH; install Node.js 18 or later")
    return found


def _base_env() -> dict[str, str]:
    env = {key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ}
    env.setdefault("PATH", os.defpath)
    return env | {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
