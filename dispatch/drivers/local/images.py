"""Local "images": a folder per image holding the packages its manifest installs.

A build installs into a staging folder next to the image's folder and swaps it in only on success, so
functions already running on the previous build keep their packages until the swap.
"""
import asyncio
import shutil
import tempfile
from pathlib import Path

from dispatch.drivers.local.commands import run
from dispatch.drivers.local.languages import Language
from dispatch.drivers.ports import BuildFailed, ImageSpec, Progress

_VERSION_TIMEOUT_SECONDS = 15


async def check_interpreter(language: Language) -> None:
    """Raise BuildFailed unless the language's interpreter (or compiler) tells its version."""
    command = language.version_command()
    code, tail = await run(command, cwd=None, timeout=_VERSION_TIMEOUT_SECONDS)
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
            code, tail = await run(command, cwd=staging, progress=progress)
            if code != 0:
                raise BuildFailed(language.install_failure(code, tail))
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
