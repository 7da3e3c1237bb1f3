"""One warm function process, forked by the zygote and driven over a pipe pair with newline-delimited
JSON, several calls in flight at once when the function's concurrency allows (see the runtimes' pipe.py)."""
import asyncio
import json
import os
import signal
from functools import partial
from typing import Any

from dispatch.drivers.local.forkserver import Exit, ForkFailed, ForkServer, close_all
from dispatch.drivers.local.lines import LineReader, OutputTail
from dispatch.drivers.local.sandbox import Limits, cpu_used
from dispatch.drivers.ports import cpu_message, output_message

# A dead process's last answers may still be in the pipe when its exit is reported.
_EXIT_SETTLE_SECONDS = 0.05
_CPU_CHECK_SECONDS = 0.1
_DRAIN_SECONDS = 0.5


class WorkerNotReady(Exception):
    """The process did not load the function; `reason` is shown to the user."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class WorkerTimedOut(Exception):
    """The call ran past its timeout; the process has been killed."""


class WorkerDied(Exception):
    """The process ended during a call; `reason` says how, `limit` whether a limit ended it."""

    def __init__(self, reason: str, limit: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.limit = limit


class Worker:
    def __init__(self, pid: int, exited: asyncio.Future, requests: asyncio.WriteTransport, responses: LineReader,
                 outputs: tuple[asyncio.StreamReader, asyncio.StreamReader], limits: Limits, watch_cpu: bool):
        self.pid = pid
        self.limits = limits
        self.stdout = OutputTail()
        self.stderr = OutputTail()
        self.retiring = False
        """The worker asked to be replaced (it ran out of memory): give it no more calls."""
        self._watch_cpu = bool(watch_cpu and limits.cpu_seconds)
        self._cpu_at_start: dict[int, float] = {}  # per call in flight, when the runtime watches CPU time
        self._watching: asyncio.Task | None = None
        self._limit_hit: str | None = None
        self._requests = requests
        self._responses = responses
        self._calls: dict[int, asyncio.Future] = {}
        self._next_id = 0
        self._killed_because: str | None = None
        self._drains = [asyncio.ensure_future(self.stdout.follow(outputs[0])),
                        asyncio.ensure_future(self.stderr.follow(outputs[1]))]
        self._exited = exited
        exited.add_done_callback(self._on_exit)

    @classmethod
    async def start(cls, zygote: ForkServer, request: dict, limits: Limits, watch_cpu: bool,
                    ready_timeout: float) -> "Worker":
        """`watch_cpu`: the worker cannot hold each run to its CPU allowance itself (see sandbox)."""
        """Fork the worker and return once it reported ready; raise WorkerNotReady otherwise."""
        loop = asyncio.get_running_loop()
        ends = [os.pipe() for _ in range(4)]  # stdout, stderr, request, response: (read, write) each
        theirs = [ends[0][1], ends[1][1], ends[2][0], ends[3][1]]
        transports: list[asyncio.BaseTransport] = []
        try:
            outputs = []
            for read_end, _ in ends[:2]:
                reader = asyncio.StreamReader(limit=1 << 20)
                output, _ = await loop.connect_read_pipe(partial(asyncio.StreamReaderProtocol, reader),
                                                         os.fdopen(read_end, "rb", buffering=0))
                transports.append(output)
                outputs.append(reader)
            requests, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(ends[2][1], "wb", buffering=0))
            transports.append(requests)
            reading, responses = await loop.connect_read_pipe(lambda: LineReader(limits.answer_bytes),
                                                              os.fdopen(ends[3][0], "rb", buffering=0))
            transports.append(reading)
            pid, exited = await zygote.fork(request, theirs)
        except ForkFailed as failed:
            for transport in transports:
                transport.close()
            raise WorkerNotReady(failed.reason) from None
        except BaseException:
            for transport in transports:
                transport.close()
            raise
        finally:
            close_all(theirs)
        worker = cls(pid, exited, requests, responses, (outputs[0], outputs[1]), limits, watch_cpu)
        responses.overflowed = worker._overflowed
        try:
            await worker._wait_ready(ready_timeout)
        except BaseException:
            await worker.stop(grace=0)
            raise
        responses.listen(worker._on_line)
        return worker

    async def _wait_ready(self, timeout: float) -> None:
        try:
            line = await asyncio.wait_for(self._responses.next_line(), timeout)
            status = json.loads(line)
        except EOFError:
            reason, _ = await self._death_reason("before it was ready")
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
        return not self._exited.done() and not self._responses.closed and self._killed_because is None

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    @property
    def worn_out(self) -> bool:
        return self.limits.worn_out(self.pid)

    async def call(self, request: bytes, timeout: float | None) -> dict[str, Any]:
        """Send one request (a JSON object) and return the worker's answer message; raise WorkerTimedOut
        or WorkerDied."""
        if not self._calls:
            self.stdout.clear()
            self.stderr.clear()
        self._next_id += 1
        ident = self._next_id
        answer = self._calls[ident] = asyncio.get_running_loop().create_future()
        if self._watch_cpu:
            self._cpu_at_start[ident] = cpu_used(self.pid)
            if self._watching is None or self._watching.done():
                self._watching = asyncio.ensure_future(self._watch())
        self._requests.write(b'{"id":%d,' % ident + request[1:] + b"\n")
        timer = asyncio.get_running_loop().call_later(timeout, _expire, answer) if timeout else None
        try:
            return await answer
        except asyncio.TimeoutError:
            self.kill("another run on the same function process exceeded its timeout")
            raise WorkerTimedOut() from None
        finally:
            self._calls.pop(ident, None)
            self._cpu_at_start.pop(ident, None)
            if timer is not None:
                timer.cancel()

    def _on_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
            answer = self._calls.get(message["id"])
        except (ValueError, KeyError, TypeError):
            self.kill(f"unreadable answer from the function process: {line[:200]!r}")
            return
        if message.get("retire"):
            self.retiring = True
        if answer is not None and not answer.done():
            answer.set_result(message)

    def _overflowed(self) -> None:
        """An answer longer than any the function server sends within the limits: not read further."""
        self._limit_hit = output_message(self.limits.output_bytes or 0)
        self.kill()

    async def _watch(self) -> None:
        """Kill the worker when a run in flight used its CPU allowance; stops when none is in flight."""
        allowance = self.limits.cpu_seconds  # set whenever the worker watches (see __init__)
        while allowance and self._cpu_at_start and not self._exited.done():
            await asyncio.sleep(_CPU_CHECK_SECONDS)
            started = min(self._cpu_at_start.values(), default=None)
            if started is not None and cpu_used(self.pid) - started >= allowance:
                self._limit_hit = cpu_message(allowance)
                self.kill()
                return

    def kill(self, because: str = "the function process was killed") -> None:
        if self._killed_because is None:
            self._killed_because = because
        _signal_group(self.pid, signal.SIGKILL)
        self._requests.close()

    async def stop(self, grace: float) -> None:
        """Close its requests (it exits on its own), SIGKILL after `grace` seconds; return once it is gone."""
        self._requests.close()
        if not self._exited.done() and grace > 0:
            try:
                await asyncio.wait_for(asyncio.shield(self._exited), grace)
            except asyncio.TimeoutError:
                pass
        _signal_group(self.pid, signal.SIGKILL)  # also whatever the function left running
        await self._exited
        if self._watching is not None:
            self._watching.cancel()
        # Reading stdout/stderr to their end closes their transports.
        _, stuck = await asyncio.wait(self._drains, timeout=_DRAIN_SECONDS)
        for drain in stuck:
            drain.cancel()
        self._responses.close()

    async def _death_reason(self, when: str) -> tuple[str, bool]:
        try:
            exit: Exit = await asyncio.wait_for(asyncio.shield(self._exited), _DRAIN_SECONDS)
        except asyncio.TimeoutError:
            self.kill()
            return f"function process closed its response pipe {when}", False
        await asyncio.wait(self._drains, timeout=_DRAIN_SECONDS)
        limit = self._limit_hit or self.limits.exit_reason(exit)
        if limit is not None:
            return limit, True
        if self._killed_because is not None:
            return f"function process was stopped {when}: {self._killed_because}", False
        if exit.code is None:
            return f"function process was lost {when}: the worker zygote ended", False
        if exit.code < 0:
            return f"function process was killed by signal {_signal_name(-exit.code)} {when}", False
        return f"function process exited with code {exit.code} {when}", False

    def _on_exit(self, _: asyncio.Future) -> None:
        asyncio.get_running_loop().call_later(_EXIT_SETTLE_SECONDS, self._fail_calls)

    def _fail_calls(self) -> None:
        self._responses.fail_pending()
        if self._calls:
            asyncio.ensure_future(self._fail_pending_calls())

    async def _fail_pending_calls(self) -> None:
        reason, limit = await self._death_reason("while running")
        for answer in list(self._calls.values()):
            if not answer.done():
                answer.set_exception(WorkerDied(reason, limit))


def _expire(answer: asyncio.Future) -> None:
    if not answer.done():
        answer.set_exception(asyncio.TimeoutError())


def _signal_name(signum: int) -> str:
    try:
        return f"{signum} ({signal.Signals(signum).name})"
    except ValueError:
        return str(signum)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
