"""One warm function process, driven over a pipe pair with newline-delimited JSON (see the runtimes)."""
import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Callable

from dispatch.drivers.local.lines import LineReader, OutputTail

# A dead process's last response line may still be in the pipe when its exit is reported.
_EXIT_SETTLE_SECONDS = 0.05
_DRAIN_SECONDS = 0.5


class WorkerNotReady(Exception):
    """The process did not load the function; `reason` is shown to the user."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class WorkerTimedOut(Exception):
    """The call ran past its timeout; the process has been killed."""


class WorkerDied(Exception):
    """The process ended during a call; `reason` says how (exit code or signal)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Worker:
    def __init__(self, process: asyncio.subprocess.Process, requests: asyncio.WriteTransport, responses: LineReader):
        self.process = process
        self._requests = requests
        self._responses = responses
        self.stdout = OutputTail()
        self.stderr = OutputTail()
        self._drains = [
            asyncio.ensure_future(self.stdout.follow(process.stdout)),
            asyncio.ensure_future(self.stderr.follow(process.stderr)),
        ]
        self._exited = asyncio.ensure_future(process.wait())
        self._exited.add_done_callback(self._on_exit)

    @classmethod
    async def start(
        cls, argv_for: Callable[[int, int], list[str]], env: dict[str, str], cwd: Path, ready_timeout: float
    ) -> "Worker":
        """Start the process and return once it reported ready; raise WorkerNotReady otherwise."""
        loop = asyncio.get_running_loop()
        request_out, request_in = os.pipe()
        response_out, response_in = os.pipe()
        transports: list[asyncio.BaseTransport] = []
        try:
            # Our ends join the event loop before the spawn, so nothing can interrupt between the spawn
            # and the Worker that owns (and will stop) the process.
            requests, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(request_in, "wb", buffering=0))
            transports.append(requests)
            reading, responses = await loop.connect_read_pipe(LineReader, os.fdopen(response_out, "rb", buffering=0))
            transports.append(reading)
            process = await asyncio.create_subprocess_exec(
                *argv_for(request_out, response_in),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=env,
                pass_fds=(request_out, response_in),
                start_new_session=True,  # its own process group, so a kill also reaches what it started
            )
        except BaseException:
            for transport in transports:
                transport.close()
            raise
        finally:
            os.close(request_out)
            os.close(response_in)
        worker = cls(process, requests, responses)
        try:
            await worker._wait_ready(ready_timeout)
        except BaseException:
            await worker.stop(grace=0)
            raise
        return worker

    async def _wait_ready(self, timeout: float) -> None:
        try:
            line = await asyncio.wait_for(self._responses.next_line(), timeout)
            status = json.loads(line)
        except EOFError:
            reason = await self._death_reason("before it was ready")
            raise WorkerNotReady(f"{reason}: {self.stderr.text()}".rstrip(": ")) from None
        except asyncio.TimeoutError:
            raise WorkerNotReady(f"function process did not report ready within {timeout:g} s") from None
        except ValueError:
            raise WorkerNotReady(f"function process wrote an unreadable ready line: {line[:200]!r}") from None
        if not isinstance(status, dict) or status.get("ready") is not True:
            error = (status.get("error") if isinstance(status, dict) else None) or {}
            raise WorkerNotReady(error.get("message") or "function process refused to start")

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and not self._responses.closed

    async def call(self, request: bytes, timeout: float | None) -> bytes:
        """Send one request line and return the response line; raise WorkerTimedOut or WorkerDied."""
        self.stdout.clear()
        self.stderr.clear()
        answer = self._responses.next_line()
        self._requests.write(request)
        timer = asyncio.get_running_loop().call_later(timeout, _expire, answer) if timeout else None
        try:
            return await answer
        except asyncio.TimeoutError:
            self.kill()
            raise WorkerTimedOut() from None
        except EOFError:
            raise WorkerDied(await self._death_reason("while running")) from None
        finally:
            if timer is not None:
                timer.cancel()

    def kill(self) -> None:
        _signal_group(self.process, signal.SIGKILL)
        self._requests.close()

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; return once the process is gone."""
        self._requests.close()
        if self.process.returncode is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self._exited), grace)
            except asyncio.TimeoutError:
                pass
        _signal_group(self.process, signal.SIGKILL)  # also whatever the function left running
        await self._exited
        # Reading stdout/stderr to their end lets asyncio close the process transport.
        _, stuck = await asyncio.wait(self._drains, timeout=_DRAIN_SECONDS)
        for drain in stuck:
            drain.cancel()
        self._responses.close()

    async def _death_reason(self, when: str) -> str:
        try:
            code = await asyncio.wait_for(asyncio.shield(self._exited), _DRAIN_SECONDS)
        except asyncio.TimeoutError:
            self.kill()
            return f"function process closed its response pipe {when}"
        await asyncio.wait(self._drains, timeout=_DRAIN_SECONDS)
        if code < 0:
            return f"function process was killed by signal {_signal_name(-code)} {when}"
        return f"function process exited with code {code} {when}"

    def _on_exit(self, _: asyncio.Future) -> None:
        asyncio.get_running_loop().call_later(_EXIT_SETTLE_SECONDS, self._responses.fail_pending)


def _expire(answer: asyncio.Future) -> None:
    if not answer.done():
        answer.set_exception(asyncio.TimeoutError())


def _signal_name(signum: int) -> str:
    try:
        return f"{signum} ({signal.Signals(signum).name})"
    except ValueError:
        return str(signum)


def _signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
