"""A function's process as this host sees it. Inside its sandbox a worker's pid is that of the
sandbox's pid namespace (2, 3…), which names another process here: a function tells its pid with
its namespace's inode, and the tests look the pair up among the host's processes."""
import asyncio
from pathlib import Path

# What a function returns as its process's identity, per language.
PYTHON = "[__import__('os').getpid(), __import__('os').stat('/proc/self/ns/pid').st_ino]"
NODEJS = "[process.pid, require('fs').statSync('/proc/self/ns/pid').ino]"
JAVA = "identity()"
JAVA_METHOD = """
    static Object identity() {
        try {
            return List.of(ProcessHandle.current().pid(), ((Number) java.nio.file.Files.getAttribute(
                    java.nio.file.Path.of("/proc/self/ns/pid"), "unix:ino")).longValue());
        } catch (java.io.IOException unreadable) {
            throw new IllegalStateException(unreadable);
        }
    }
"""


def host_pid(identity: list[int]) -> int | None:
    """The host pid of the process a function described as [pid, pid namespace inode], while it runs."""
    pid, namespace = identity
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if Path(status.parent, "ns", "pid").stat().st_ino != namespace:
                continue
            numbers = next(line for line in status.read_text().splitlines() if line.startswith("NSpid:"))
        except (OSError, StopIteration):
            continue
        if int(numbers.split()[-1]) == pid:
            return int(status.parent.name)
    return None


def running(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def alive(identity: list[int]) -> bool:
    return running(host_pid(identity))


def with_marker(marker: str) -> list[int]:
    """Host pids of the running processes whose command line holds `marker`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes() and running(int(cmdline.parent.name)):
                found.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue
    return found


async def counted_with_marker(marker: str, count: int, seconds: float = 10) -> list[int]:
    """The processes holding `marker` once `count` of them run: a double-forked child execs after
    the call that started it has returned, so an instant count can come before it."""
    found = with_marker(marker)
    for _ in range(int(seconds * 20)):
        if len(found) >= count:
            break
        await asyncio.sleep(0.05)
        found = with_marker(marker)
    return found
