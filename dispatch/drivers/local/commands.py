"""Build steps of the local runtime (package installs, compiles): a command run to its end in its own
process group, each output line passed on as it comes, its exit code and last lines kept."""
import asyncio
import inspect
import os
import signal
from collections import deque
from pathlib import Path

from dispatch.drivers.ports import BuildFailed, Progress

TAIL_LINES = 20


async def run(
    command: list[str], cwd: Path | None, progress: Progress | None = None, timeout: float | None = None
) -> tuple[int, list[str]]:
    """Run `command` (stdout and stderr together), passing each line to `progress`; return its exit
    code and last lines. Past `timeout` seconds its whole process group is killed: BuildFailed."""
    try:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True, limit=1 << 20,
        )
    except OSError as exc:
        raise BuildFailed(f"cannot run {command[0]}: {exc}") from None
    tail: deque[str] = deque(maxlen=TAIL_LINES)
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
    assert process.stdout is not None  # started with stdout=PIPE
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
