"""What a function's workers may reach and use, enforced by the OS, within the function's sandbox
when there is one (bubblewrap.py).

Users: when the server runs as root, each function's workers run as a user of their own (a uid
derived from the function's id, outside the range of accounts), without supplementary groups. The
runtime's folders are root's alone (0700), so a worker sees neither the data directory nor another
function; it reaches its own source through its working directory (/proc/self/cwd) and its image
through a descriptor opened before the uid changed (/proc/self/fd/5). A server not running as root
cannot change users: its workers then run as itself, and only the environment is kept from them.

Limits: memory is RLIMIT_DATA (heap and other private writable memory, the runtime's own included;
Node.js also gets --max-old-space-size). CPU time is RLIMIT_CPU, in two layers, because raising a
hard limit needs CAP_SYS_RESOURCE, which a root server in a container often lacks: each worker gets a
hard ceiling of CPU_CEILING_RUNS times the function's allowance for its whole life (SIGXCPU, then
SIGKILL a second later; the function cannot lift it), and the pool replaces a worker before a run
whose allowance would cross that ceiling. Within it, each run gets its allowance: a Python worker
lowers its own soft limit to "used so far + allowance" before each run (SIGXCPU from the kernel);
for Node.js, which cannot set its own limits, the runtime reads the worker's CPU time while runs are
in flight and kills it at the allowance.

Processes: RLIMIT_NPROC, which the kernel counts per user and user namespace, all threads
included. It holds where a function's processes are counted on their own: under a user of their
own (a root server), or in the user namespace of the function's sandbox (another server). There
the function's workers together may have `processes` times its maxReplicas, each worker's share,
and a fork or a thread past that fails (EAGAIN). A server of another user without the sandbox
would count every process of its own user: it sets no such limit, and says so at start.
"""
import hashlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from dispatch.drivers.local.forkserver import Exit
from dispatch.drivers.ports import cpu_message, memory_message

EXIT_OUT_OF_MEMORY = 86  # dispatch.runtimes.python3.pipe.EXIT_OUT_OF_MEMORY
_FIRST_UID = 1_900_000_000
_UIDS = 200_000_000
_TICKS = os.sysconf("SC_CLK_TCK")
CPU_CEILING_RUNS = 10


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None = None
    cpu_seconds: int | None = None
    processes: int | None = None
    """Processes and threads of the function's processes together (RLIMIT_NPROC); None: unlimited."""
    output_bytes: int | None = None
    """A run's output, as the function server answers it (it refuses more, see ports.output_message)."""
    answer_bytes: int | None = None
    """The most the runtime reads of one answer line (output, logs, error): past it, the worker is killed."""

    @property
    def cpu_ceiling(self) -> int | None:
        return self.cpu_seconds * CPU_CEILING_RUNS if self.cpu_seconds else None

    def rlimits(self) -> dict[str, list[int]]:
        """The zygote's `rlimits` for a new worker."""
        limits: dict[str, list[int]] = {"CORE": [0, 0]}
        ceiling = self.cpu_ceiling
        if self.memory_mb:
            limits["DATA"] = [self.memory_mb << 20] * 2
        if ceiling is not None:  # there is one when cpu_seconds is set
            limits["CPU"] = [ceiling, ceiling + 1]
        if self.processes:
            limits["NPROC"] = [self.processes] * 2
        return limits

    def worn_out(self, pid: int) -> bool:
        """Whether a run given to this worker could be cut short by its lifetime CPU ceiling."""
        seconds, ceiling = self.cpu_seconds, self.cpu_ceiling
        return seconds is not None and ceiling is not None and cpu_used(pid) + seconds > ceiling

    def exit_reason(self, exit: Exit) -> str | None:
        """The limit a worker's end points to, if any."""
        ceiling = self.cpu_ceiling
        if self.cpu_seconds and ceiling is not None and (exit.code == -signal.SIGXCPU or (
                exit.code == -signal.SIGKILL and exit.cpu_seconds >= ceiling)):
            return cpu_message(self.cpu_seconds)
        if self.memory_mb and exit.code in (EXIT_OUT_OF_MEMORY, -signal.SIGABRT, -signal.SIGSEGV):
            return memory_message(self.memory_mb)
        return None


class Users:
    """Which user a function's workers run as, and the folder permissions that go with it."""

    def __init__(self, separate: bool | None = None):
        """`separate`: a user per function; default: when this process is root."""
        self.separate = os.geteuid() == 0 if separate is None else separate

    def of(self, faas_id: str) -> tuple[int, int] | None:
        if not self.separate:
            return None
        digest = int.from_bytes(hashlib.sha256(faas_id.encode()).digest()[:8], "big")
        uid = _FIRST_UID + digest % _UIDS
        return uid, uid

    @staticmethod
    def keep_private(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)

    def hand_over(self, folder: Path, faas_id: str) -> None:
        """Let the function's own user read (not write) its source folder, and nobody else."""
        ids = self.of(faas_id)
        if ids is None:
            return
        for path in [folder, *folder.rglob("*")]:
            if path.is_symlink():
                continue
            os.chown(path, 0, ids[1])
            mode = path.stat().st_mode
            executable = path.is_dir() or mode & 0o100
            path.chmod(0o750 if executable else 0o640)


def cpu_used(pid: int) -> float:
    """CPU seconds the process used so far (every user may read /proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS
