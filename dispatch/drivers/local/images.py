"""Local "images": a folder per image holding the packages its manifest installs.

A build installs into a staging folder next to the image's folder and swaps it in only on success, so
functions already running on the previous build keep their packages until the swap.
"""
import asyncio
import inspect
import os
import shutil
import signal
import tempfile
from collections import deque
from pathlib import Path

from dispatch.drivers.local.languages import Language
from dispatch.drivers.ports import BuildFailed, ImageSpec, Progress

_LOG_TAIL_LINES = 20
_VERSION_TIMEOUT_SECONDS = 15


async def check_interpreter(language: Language) -> None:
    """Raise BuildFailed unless the language's interpreter answers `--version`."""
    command = language.version_command()
    code, tail = await _run(command, cwd=None, progress=None, timeout=_VERSION_TIMEOUT_SECONDS)
    if code != 0:
        raise BuildFailed(f"{' '.join(command)} failed (exit code {code}): {' '.join(tail)}".rstrip(": "))


async def build(language: Language, spec: ImageSpec, images_dir: Path, progress: Progress | None) -> Path:
    if spec.system_packages:
        names = ", ".join(name for name, _ in spec.system_packages)
        raise BuildFailed(f"system packages are not supported by the local runtime: {names}; use the Docker runtime")
    images_dir.mkdir(parents=True, exist_ok=True)
    final = images_dir / spec.id
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.id}.building-", dir=images_dir))
    try:
        command = language.install_command(spec.manifest, staging)
        if command is not None:
            code, tail = await _run(command, cwd=staging, progress=progress)
            if code != 0:
                raise BuildFailed(f"{language.package_manager} install failed (exit code {code}):\n" + "\n".join(tail))
        await asyncio.to_thread(_swap, staging, final)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, staging, True)
        raise
    return final


async def remove(location: str) -> None:
    await asyncio.to_thread(shutil.rmtree, location, True)


def _swap(staging: Path, final: Path) -> None:
    if not final.exists():
        staging.rename(final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
    final.rename(old / final.name)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


async def _run(
    command: list[str], cwd: Path | None, progress: Progress | None, timeout: float | None = None
) -> tuple[int, list[str]]:
    """Run a build step, passing each output line to `progress`; return its exit code and last lines."""
    try:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True, limit=1 << 20,
        )
    except OSError as exc:
        raise BuildFailed(f"cannot run {command[0]}: {exc}") from None
    tail: deque[str] = deque(maxlen=_LOG_TAIL_LINES)
    try:
        await asyncio.wait_for(_follow(process, tail, progress), timeout)
        return await process.wait(), list(tail)
    except asyncio.TimeoutError:
        raise BuildFailed(f"{' '.join(command)} did not answer within {timeout} s") from None
    finally:
        if process.returncode is None:
            _kill_group(process.pid)
            await process.wait()


async def _follow(process: asyncio.subprocess.Process, tail: deque[str], progress: Progress | None) -> None:
    async for raw in process.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        tail.append(line)
        if progress is not None:
            answer = progress(line)
            if inspect.isawaitable(answer):
                await answer


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
