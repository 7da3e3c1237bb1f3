"""What the local runtime knows per language: its interpreter, its package manager, what readies a
function's source before its workers start, and how the zygote starts its workers (a fork running
the Python function server, or node exec'd from a fork). Java, which compiles, is in java.py."""
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import dispatch
from dispatch.drivers.ports import BuildFailed, unsupported_language

# Workers see this and nothing else of the server's environment.
_PASSED_THROUGH = ("PATH", "HOME", "TMPDIR", "TZ")
RUNTIMES = Path(dispatch.__file__).resolve().parent / "runtimes"
PACKAGE_PARENT = Path(dispatch.__file__).resolve().parent.parent
# A worker reaches its source through its working directory and its image through the first
# descriptor the zygote opened for it, both valid whatever the folders above them allow.
SOURCE = "/proc/self/cwd"
IMAGE = "/proc/self/fd/5"
PIPES = ["--request-fd", "3", "--response-fd", "4"]
_NODE = "install Node.js 18 or later"


@dataclass(frozen=True)
class WorkerSpec:
    handler: str
    image_dir: Path | None
    max_log_bytes: int
    concurrency: int = 1
    memory_mb: int | None = None
    cpu_seconds: int | None = None
    isolated: bool = False
    max_output_bytes: int | None = None
    processes: int | None = None
    """Named by the function server when a fork or a thread fails for want of processes."""

    def limit_args(self) -> list[str]:
        """The function server's options common to every language."""
        args = ["--max-log-bytes", str(self.max_log_bytes), "--concurrency", str(self.concurrency)]
        if self.max_output_bytes:
            args += ["--max-output-bytes", str(self.max_output_bytes)]
        if self.processes:
            args += ["--processes", str(self.processes)]
        return args


class Language(Protocol):
    name: str
    package_manager: str
    limits_own_cpu: bool
    """Its workers hold each run to the CPU allowance themselves (see sandbox)."""

    def version_command(self) -> list[str]: ...

    def install_command(self, manifest: str, image_dir: Path) -> list[str] | None:
        """Write the manifest into `image_dir`; the command installing it there, None when nothing to install."""

    def install_failure(self, code: int, tail: list[str]) -> str:
        """The reason an image build shows when the install command failed, from its last lines."""

    async def prepare(self, folder: Path, spec: WorkerSpec) -> None:
        """Ready the function's unpacked source in `folder` before its first worker starts (compile
        it); raise BuildFailed with the reason the function shows."""

    def worker_request(self, spec: WorkerSpec) -> dict:
        """What the zygote needs to start a worker: `open`, `env`, and `python` or `exec` (see forkserver)."""


class BaseLanguage:
    """What a language that leaves these steps alone does."""

    package_manager: str

    def install_failure(self, code: int, tail: list[str]) -> str:
        return f"{self.package_manager} install failed (exit code {code}):\n" + "\n".join(tail)

    async def prepare(self, folder: Path, spec: WorkerSpec) -> None:
        """Nothing to do: the worker loads the source as it is."""


class Python3(BaseLanguage):
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
        args = ["--source", SOURCE, "--handler", spec.handler, *PIPES, *spec.limit_args()]
        if spec.image_dir is not None:
            args += ["--library", f"{IMAGE}/site-packages"]
        if spec.memory_mb:
            args += ["--memory-mb", str(spec.memory_mb)]
        if spec.cpu_seconds:
            args += ["--cpu-seconds", str(spec.cpu_seconds)]
        return {"open": [str(spec.image_dir)] if spec.image_dir is not None else [], "python": args,
                "env": base_env(spec.isolated) | {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}}


class NodeJS(BaseLanguage):
    name = "nodejs"
    package_manager = "npm"
    limits_own_cpu = False

    def version_command(self) -> list[str]:
        return [find("node", _NODE), "--version"]

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
        return [find("npm", _NODE), "install", "--no-audit", "--no-fund", "--no-update-notifier", "--install-links"]

    def worker_request(self, spec: WorkerSpec) -> dict:
        opened = [str(spec.image_dir)] if spec.image_dir is not None else []
        opened.append(str(RUNTIMES / "nodejs" / "server.js"))  # read as the server: the worker may not see it
        # Without --preserve-symlinks node would resolve /proc/self/cwd to a path the worker cannot open.
        argv = [find("node", _NODE), "--preserve-symlinks", "--preserve-symlinks-main"]
        if spec.memory_mb:
            argv.append(f"--max-old-space-size={spec.memory_mb}")
        argv += [f"/proc/self/fd/{4 + len(opened)}", "--source", SOURCE, "--handler", spec.handler, *PIPES,
                 *spec.limit_args()]
        env = base_env(spec.isolated)
        if spec.image_dir is not None:
            env["NODE_PATH"] = f"{IMAGE}/node_modules"
        return {"open": opened, "exec": argv, "env": env}


LANGUAGES: dict[str, Language] = {language.name: language for language in (Python3(), NodeJS())}


def language_named(name: str, languages: dict[str, Language] = LANGUAGES) -> Language:
    try:
        return languages[name]
    except KeyError:
        raise unsupported_language(name, "local", languages) from None


def find(program: str, install: str) -> str:
    """The program's path on PATH; BuildFailed saying what to `install` when it is missing."""
    found = shutil.which(program)
    if found is None:
        raise BuildFailed(f"{program} was not found on PATH; {install}")
    return found


def base_env(isolated: bool = False) -> dict[str, str]:
    env = {key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ}
    env.setdefault("PATH", os.defpath)
    if isolated:
        env["HOME"] = env["TMPDIR"] = "/tmp"  # the server's home is not theirs to read or write
    return env | {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
