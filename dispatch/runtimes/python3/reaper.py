"""The zygote's hold on everything its workers start: orphans come to it, and it kills whole trees.

A process that calls `setsid` or forks twice leaves its worker's process group, so killing the group
misses it. As a child subreaper (PR_SET_CHILD_SUBREAPER), or as pid 1 of the function's sandbox,
the zygote becomes the parent of every such process once the process that started it ends, and it
kills them (see forkserver.py). A tree is killed stopped first, from its root down: a stopped
process cannot fork, so no child appears after its parent's children were listed.
"""
import ctypes
import os
import signal
from typing import Iterable

_PR_SET_CHILD_SUBREAPER = 36
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522


def adopt_orphans(libc) -> None:
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def drop_capabilities(libc) -> None:
    """Give up every capability: a worker left running as root must not keep the zygote's."""
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable; twice (64 capability bits)
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "cannot drop the worker's capabilities")


def children(pid: int) -> list[int]:
    """The pids of `pid`'s children, as this process's /proc numbers them."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                found.extend(int(child) for child in listed.read().split())
        except FileNotFoundError:
            return _children_by_scan(pid)  # a kernel without CONFIG_PROC_CHILDREN
        except OSError:
            continue
    return found


def _children_by_scan(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def kill_trees(roots: Iterable[int]) -> None:
    """SIGKILL each process of `roots` and all their descendants, stopping them first."""
    stopped: list[int] = []
    seen: set[int] = set()
    pending = list(roots)
    while pending:
        pid = pending.pop()
        if pid in seen or pid == os.getpid():
            continue
        seen.add(pid)
        try:
            os.kill(pid, signal.SIGSTOP)
        except (ProcessLookupError, PermissionError):
            continue
        stopped.append(pid)
        pending.extend(children(pid))
    for pid in stopped:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
