"""The runtime's side of a function's zygote (dispatch/runtimes/python3/forkserver.py): ask it to
fork workers, learn their pids and, since they are its children and not ours, how they ended.

A worker's pid comes from the credentials the kernel attaches to the worker's first message
(SO_PASSCRED), in this process's numbering: inside a sandbox the zygote numbers its workers in a
pid namespace of their own, where they are 2, 3…, which mean other processes here."""
import array
import asyncio
import json
import os
import socket
import struct
from dataclasses import dataclass
from typing import Callable

from dispatch.drivers.local.lines import OutputTail

_MAX_MESSAGE = 1 << 20
_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class ForkFailed(Exception):
    """The zygote could not start a worker; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Exit:
    code: int | None
    """Exit code, negative for a signal; None when the zygote itself went away."""
    cpu_seconds: float = 0.0


class ForkServer:
    """One zygote process, started on first use and again if it ever dies."""

    def __init__(self, command: Callable[[int], list[str]], env: dict[str, str]):
        """`command(fd)`: the zygote's command line, given its end of the control socket."""
        self._command = command
        self._env = env
        self._socket: socket.socket | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._stderr = OutputTail()
        self._starting: asyncio.Lock | None = None
        self._next_id = 0
        self._replies: dict[int, asyncio.Future] = {}
        self._exits: dict[int, asyncio.Future] = {}  # by the pid the zygote knows the worker by
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The zygote's process (its sandbox's, when it has one), while it runs."""
        return self._process.pid if self._process is not None else None

    async def fork(self, request: dict, fds: list[int]) -> tuple[int, asyncio.Future]:
        """Start a worker (see the zygote for `request`); return its pid and a future of its Exit."""
        if self._closed:
            raise ForkFailed("the runtime is closed")
        sock = await self._running()
        loop = asyncio.get_running_loop()
        self._next_id += 1
        ident = self._next_id
        reply = self._replies[ident] = loop.create_future()
        data = json.dumps({**request, "id": ident}).encode()
        try:
            await _send(loop, sock, data, fds)
            return await reply
        finally:
            self._replies.pop(ident, None)

    async def close(self) -> None:
        self._closed = True
        await self._stop()

    async def _running(self) -> socket.socket:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._socket is None:
                return await self._start()
            return self._socket

    async def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self._command(theirs.fileno()), pass_fds=(theirs.fileno(),),
                env=self._env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._socket = ours
        self._stderr = OutputTail()
        assert self._process.stderr is not None  # started with stderr=PIPE
        self._tail = asyncio.ensure_future(self._stderr.follow(self._process.stderr))
        asyncio.get_running_loop().add_reader(ours.fileno(), self._readable, ours)
        return ours

    def _readable(self, sock: socket.socket) -> None:
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(_CREDENTIALS.size))
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost(sock)
                return
            sender = next((_CREDENTIALS.unpack(payload)[0] for level, kind, payload in ancillary
                           if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS), None)
            self._handle(json.loads(data), sender)

    def _handle(self, message: dict, sender: int | None) -> None:
        loop = asyncio.get_running_loop()
        reply = self._replies.get(message["id"]) if "id" in message else None
        if "exit" in message:
            exited = self._exits.pop(message["exit"], None)
            if exited is not None and not exited.done():
                exited.set_result(Exit(message["code"], message.get("cpu", 0.0)))
            if reply is not None and not reply.done():  # it ended before it could say it started
                reply.set_exception(ForkFailed(f"the worker ended at once (exit code {message['code']})"))
            return
        if reply is None or reply.done():
            return
        if "pid" in message and sender:
            exited = self._exits[message["pid"]] = loop.create_future()
            reply.set_result((sender, exited))
        else:
            reply.set_exception(ForkFailed(message.get("error") or "the zygote refused to fork"))

    def _lost(self, sock: socket.socket) -> None:
        """The zygote ended (its workers die with it): fail whatever waits on it; start anew on next use."""
        asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()
        if self._socket is sock:
            self._socket = None
        why = self._stderr.text() or "the worker zygote ended"
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(ForkFailed(why))
        for exited in self._exits.values():
            if not exited.done():
                exited.set_result(Exit(None))
        self._exits.clear()
        process, self._process = self._process, None
        if process is not None:
            asyncio.ensure_future(process.wait())

    async def _stop(self) -> None:
        sock, process = self._socket, self._process
        if sock is not None:
            self._lost(sock)  # closing our end makes the zygote kill its workers and exit
        if process is not None:
            try:
                await asyncio.wait_for(process.wait(), 5)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
            await asyncio.wait([self._tail], timeout=0.5)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _send(loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytes, fds: list[int]) -> None:
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
    while True:
        try:
            sock.sendmsg([data], ancillary)
            return
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(sock.fileno(), _wake, writable)
            try:
                await writable
            finally:
                loop.remove_writer(sock.fileno())


def close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
