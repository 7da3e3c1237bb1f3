"""What the local runtime knows per language: its interpreter, its package manager, and how the zygote
starts its workers (a fork running the Python function server, or node exec'd from a fork)."""
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import dispatch
from dispatch.drivers.ports import BuildFailed

# Workers see this and nothing else of the server's environment.
_PASSED_THROUGH = ("PATH", "HOME", "TMPDIR", "TZ")
_RUNTIMES = Path(dispatch.__file__).resolve().parent / "runtimes"
PACKAGE_PARENT = Path(dispatch.__file__).resolve().parent.parent
# A worker reaches its source through its working directory and its image through the first
# descriptor the zygote opened for it, both valid whatever the folders above them allow.
SOURCE = "/proc/self/cwd"
IMAGE = "/proc/self/fd/5"
_PIPES = ["--request-fd", "3", "--response-fd", "4"]


@dataclass(frozen=True)
class WorkerSpec:
    handler: str
    image_dir: Path | None
    max_log_bytes: int
    concurrency: int = 1
    memory_mb: int | None = None
    cpu_seconds: int | None = None
    isolated: bool = False


class Language(Protocol):
    name: str
    package_manager: str
    limits_own_cpu: bool
    """Its workers hold each run to the CPU allowance themselves (see sandbox)."""

    def version_command(self) -> list[str]: ...

    def install_command(self, manifest: str, image_dir: Path) -> list[str] | None:
        """Write the manifest into `image_dir`; the command installing it there, None when nothing to install."""

    def worker_request(self, spec: WorkerSpec) -> dict:
        """What the zygote needs to start a worker: `open`, `env`, and `python` or `exec` (see forkserver)."""


class Python3:
    name = "python3"
    package_manager = "pip"
    limits_own_cpu = True

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

    def worker_request(self, spec: WorkerSpec) -> dict:
        args = ["--source", SOURCE, "--handler", spec.handler, *_PIPES, "--max-log-bytes", str(spec.max_log_bytes),
                "--concurrency", str(spec.concurrency)]
        if spec.image_dir is not None:
            args += ["--library", f"{IMAGE}/site-packages"]
        if spec.memory_mb:
            args += ["--memory-mb", str(spec.memory_mb)]
        if spec.cpu_seconds:
            args += ["--cpu-seconds", str(spec.cpu_seconds)]
        return {"open": [str(spec.image_dir)] if spec.image_dir is not None else [], "python": args,
                "env": _base_env(spec.isolated) | {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}}


class NodeJS:
    name = "nodejs"
    package_manager = "npm"
    limits_own_cpu = False

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
        # --install-links: a file: dependency is copied in, not linked to a folder function users may not see.
        return [_find("npm"), "install", "--no-audit", "--no-fund", "--no-update-notifier", "--install-links"]

    def worker_request(self, spec: WorkerSpec) -> dict:
        opened = [str(spec.image_dir)] if spec.image_dir is not None else []
        opened.append(str(_RUNTIMES / "nodejs" / "server.js"))  # read as the server: the worker may not see it
        # Without --preserve-symlinks node would resolve /proc/self/cwd to a path the worker cannot open.
        argv = [_find("node"), "--preserve-symlinks", "--preserve-symlinks-main"]
        if spec.memory_mb:
            argv.append(f"--max-old-space-size={spec.memory_mb}")
        argv += [f"/proc/self/fd/{4 + len(opened)}", "--source", SOURCE, "--handler", spec.handler, *_PIPES,
                 "--max-log-bytes", str(spec.max_log_bytes), "--concurrency", str(spec.concurrency)]
        env = _base_env(spec.isolated)
        if spec.image_dir is not None:
            env["NODE_PATH"] = f"{IMAGE}/node_modules"
        return {"open": opened, "exec": argv, "env": env}


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


def _base_env(isolated: bool = False) -> dict[str, str]:
    env = {key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ}
    env.setdefault("PATH", os.defpath)
    if isolated:
        env["HOME"] = env["TMPDIR"] = "/tmp"  # the server's home is not theirs to read or write
    return env | {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def zygote_env() -> dict[str, str]:
    return _base_env() | {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
