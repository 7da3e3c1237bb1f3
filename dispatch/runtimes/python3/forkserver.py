"""The zygote: a process with the Python function server already imported that forks workers on request.

    python -P -m dispatch.runtimes.python3.forkserver --control-fd N

The local runtime starts one per function, in the function's sandbox when there is one (see
dispatch/drivers/local/bubblewrap.py), and talks to it over a SOCK_SEQPACKET unix socket (fd N),
one JSON message per packet. A fork request carries the new worker's pipes as SCM_RIGHTS descriptors
(stdout, stderr, request, response), which the worker finds at fds 1, 2, 3 and 4, stdin being
/dev/null:

    {"id": 1, "cwd": DIR, "env": {...}, "uid": U|null, "gid": G|null,
     "rlimits": {"DATA": [soft, hard], ...}, "open": [PATH, ...],   # opened before dropping to uid: fds 5, 6…
     "python": [ARG, ...] | null,    # run dispatch.runtimes.python3's main with these arguments in the fork
     "exec": [PROGRAM, ARG, ...] | null}   # or replace the fork by this program (Node.js workers)

A worker running as another user may not reach the interpreter's own library (a Python installed
under /root, say): the zygote opens each folder of sys.path that others cannot read and the worker
imports through those descriptors (/proc/self/fd/N), as it does its function and image.

The new worker itself answers {"id": 1, "pid": P} before anything else, so that the kernel attaches
its credentials: the runtime learns its pid as the host numbers it, P being its pid here (the
sandbox has a pid namespace of its own). The zygote answers {"id": 1, "error": "..."} when it
cannot fork, and {"exit": P, "id": 1, "code": C, "cpu": S} when a worker ends (C negative for a
signal, S its CPU seconds). A Python worker costs a fork and the import of the function, not an
interpreter start.

No process of the function outlives it: the zygote is a child subreaper (or the sandbox's pid 1),
so whatever a worker started and left behind (a `setsid` or double-forked child) becomes the
zygote's child when that worker ends, and the zygote then kills it (see reaper.py). When the socket
closes, every worker and everything they started is killed.
"""
# Everything a Python worker needs, imported once here and shared by every fork (copy on write).
import asyncio  # noqa: F401  (concurrent pipe mode)
import concurrent.futures.thread  # noqa: F401
import ctypes
import fcntl
import gc
import inspect  # noqa: F401
import json
import math  # noqa: F401
import os
import resource
import selectors
import signal
import socket
import sys
import traceback

from dispatch.runtimes.python3 import __main__ as function_server, reaper

_FIRST_OPENED_FD = 5
_MAX_MESSAGE = 1 << 20
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[argv.index("--control-fd") + 1]))
    libraries = {entry: os.open(entry, os.O_RDONLY | os.O_DIRECTORY) for entry in _hidden_libraries()}
    wakeup_read, wakeup_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wakeup_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the runtime ends us by closing the socket
    libc = ctypes.CDLL(None, use_errno=True)
    reaper.adopt_orphans(libc)
    gc.freeze()  # objects imported so far never change again: forks keep sharing their pages
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wakeup_read, selectors.EVENT_READ)
    workers: dict[int, object] = {}  # pid: the id of the request that started it
    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                message, fds = _receive(control)
                if message is None:
                    reaper.kill_trees(reaper.children(os.getpid()))
                    return 0
                pid = _fork(message, fds, control, libc, libraries)
                if pid is not None:
                    workers[pid] = message.get("id")
            else:
                _drain(wakeup_read)
                if _reap(workers, control):
                    # Whatever the ended workers left running is ours now: it goes with them.
                    reaper.kill_trees(pid for pid in reaper.children(os.getpid()) if pid not in workers)


def _receive(control: socket.socket) -> tuple[dict | None, list[int]]:
    data, ancillary, _, _ = control.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(16 * 4))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, len(payload), 4))
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), fds


def _fork(message: dict, fds: list[int], control: socket.socket, libc, libraries: dict[str, int]) -> int | None:
    try:
        if len(fds) != 4:
            raise ValueError(f"a fork request needs 4 descriptors, got {len(fds)}")
        pid = os.fork()
        if pid == 0:
            _become_worker(message, fds, control, libc, libraries)  # never returns
    except Exception as exc:  # noqa: BLE001 - the runtime shows the reason; the zygote carries on
        _send(control, {"id": message.get("id"), "error": f"cannot fork a worker: {exc}"})
        return None
    finally:
        for fd in fds:
            os.close(fd)
    return pid


def _become_worker(message: dict, fds: list[int], control: socket.socket, libc, libraries: dict[str, int]) -> None:
    try:
        control.send(json.dumps({"id": message["id"], "pid": os.getpid()}).encode())  # with our credentials
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        os.setsid()  # its own process group: a kill also reaches whatever the function started
        os.chdir(message["cwd"])
        opened = [os.open(path, os.O_RDONLY) for path in message.get("open") or ()]
        other_user = message.get("uid") not in (None, os.geteuid()) and message.get("python")
        hidden = list(libraries.items()) if other_user else []
        _arrange([os.open(os.devnull, os.O_RDONLY), *fds, *opened, *(fd for _, fd in hidden)])
        if hidden:
            first = _FIRST_OPENED_FD + len(opened)
            _import_through({entry: f"/proc/self/fd/{first + i}" for i, (entry, _) in enumerate(hidden)})
        for name, (soft, hard) in (message.get("rlimits") or {}).items():
            resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (soft, hard))
        if message.get("uid") is not None:
            # Its pipes (fds 1-4) become its user's: a worker that can use an inherited descriptor
            # only by opening /proc/self/fd/N again (Java) needs the pipe's own permission for it.
            for fd in range(1, 5):
                os.fchown(fd, message["uid"], message["gid"])
            os.setgroups([])
            os.setgid(message["gid"])
            os.setuid(message["uid"])
        # No set-user-id program gives the function back what it has not got; and no capability of
        # the zygote's (a root one changes users) stays with a worker that runs as root.
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if os.geteuid() == 0:
            reaper.drop_capabilities(libc)
        # Set after the uid change, which clears it: the worker dies with the zygote.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        os.environ.clear()
        os.environ.update(message.get("env") or {})
        if message.get("exec"):
            for signum in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(signum, signal.SIG_DFL)  # as a fresh process would have them
            os.execve(message["exec"][0], message["exec"], dict(os.environ))
        code = function_server.main(message["python"])
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)
    except SystemExit as leaving:
        os._exit(leaving.code if isinstance(leaving.code, int) else 1)
    except BaseException:  # noqa: BLE001 - whatever happens, the fork must not go back to serving forks
        try:
            os.write(2, traceback.format_exc().encode())
        finally:
            os._exit(127)


def _arrange(wanted: list[int]) -> None:
    """Put `wanted` at fds 0, 1, 2…, close every other descriptor (the zygote's own among them)."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for fd in wanted]
    for number, fd in enumerate(high):
        os.dup2(fd, number, inheritable=True)
    os.closerange(len(wanted), resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _import_through(through: dict[str, str]) -> None:
    """Import from the folders `through` maps to descriptors: sys.path, and packages already imported
    (their submodules are found through their own __path__)."""
    roots = {os.path.abspath(entry): fd_path for entry, fd_path in through.items()}

    def moved(path: str) -> str:
        for root, fd_path in roots.items():
            if path == root or path.startswith(root + os.sep):
                return fd_path + path[len(root):]
        return path

    sys.path[:] = [through.get(entry) or moved(entry) for entry in sys.path]
    for module in list(sys.modules.values()):
        locations = getattr(module, "__path__", None)
        if isinstance(locations, list):
            locations[:] = [moved(location) for location in locations]
    sys.path_importer_cache.clear()


def _hidden_libraries() -> list[str]:
    """Folders of sys.path that a user other than the owner cannot list, or cannot reach."""
    hidden = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        path = os.path.abspath(entry)
        if os.stat(path).st_mode & 0o005 != 0o005 or any(
                os.stat(parent).st_mode & 0o001 == 0 for parent in _parents(path)):
            hidden.append(entry)
    return hidden


def _parents(path: str) -> list[str]:
    parents = []
    while (parent := os.path.dirname(path)) != path:
        parents.append(parent)
        path = parent
    return parents


def _reap(workers: dict[int, object], control: socket.socket) -> bool:
    """Reap every child that ended (workers, and processes they left to us); whether a worker did."""
    ended = False
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        if pid in workers:
            ended = True
            _send(control, {"exit": pid, "id": workers.pop(pid), "code": os.waitstatus_to_exitcode(status),
                            "cpu": round(usage.ru_utime + usage.ru_stime, 3)})


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _send(control: socket.socket, message: dict) -> None:
    try:
        control.send(json.dumps(message).encode())
    except OSError:
        pass  # the runtime is gone; the next receive sees the socket closed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
