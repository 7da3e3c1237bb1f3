"""How a function's processes are kept apart: its zygote in a bubblewrap sandbox of its own
(bubblewrap.py), under a user of its own when the server runs as root (sandbox.py). Without the
sandbox (`off`, or `auto` where bwrap cannot make one) functions get only the users and the limits:
the log says so loudly at start and at each deploy, and `on` refuses to deploy."""
import functools
import os
import sys
from pathlib import Path

import structlog

from dispatch.drivers.local.bubblewrap import Bubblewrap, interpreter_paths, zygote_python
from dispatch.drivers.local.forkserver import ForkServer
from dispatch.drivers.local.languages import PACKAGE_PARENT, RUNTIMES, base_env
from dispatch.drivers.local.sandbox import Users
from dispatch.drivers.ports import BuildFailed

log = structlog.get_logger(__name__)
_ZYGOTE = ["-P", "-m", "dispatch.runtimes.python3.forkserver", "--control-fd"]


class Isolation:
    def __init__(self, sandbox: str = "auto", separate_users: bool | None = None):
        """`sandbox`: auto, on or off (see bubblewrap.py); `separate_users`: see sandbox.Users."""
        self.sandbox = Bubblewrap(sandbox)
        self.users = Users(separate_users)
        if not self.sandbox.active:
            level = log.error if sandbox == "on" else log.warning
            level(f"!!! FUNCTIONS RUN WITHOUT A SANDBOX: {self._exposed()} !!!", reason=self.sandbox.problem)

    @property
    def isolated(self) -> bool:
        """Workers do not run with the server's home and user as their own."""
        return self.sandbox.active or self.users.separate

    def check(self, function: str) -> None:
        """Raise BuildFailed when the function may not run as things are; warn when it runs unsandboxed."""
        if self.sandbox.active:
            return
        if self.sandbox.mode == "on":
            raise BuildFailed(f"the function sandbox is required (sandbox: on) but {self.sandbox.problem}")
        log.warning(f"!!! FUNCTION {function} RUNS WITHOUT A SANDBOX: {self._exposed()} !!!",
                    function=function, reason=self.sandbox.problem)

    def processes(self, per_worker: int | None, replicas: int) -> int | None:
        """The RLIMIT_NPROC of the function's workers, where the kernel counts them apart (sandbox.py)."""
        if not per_worker or not self.isolated:
            return None
        return per_worker * replicas + 1  # the zygote, in the sandbox's user namespace

    def zygote(self, readable: list[Path], network: bool = True, tmp_mb: int | None = None) -> ForkServer:
        """The function's zygote: in its sandbox, where it sees `readable` and the interpreters."""
        if not self.sandbox.active:
            env = base_env() | {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "PYTHONPATH": str(PACKAGE_PARENT)}
            return ForkServer(lambda fd: [sys.executable, *_ZYGOTE, str(fd)], env)
        shown = [*readable, RUNTIMES.parent, *_interpreters()]
        env = base_env(isolated=True) | {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8",
                                         "PYTHONPATH": str(PACKAGE_PARENT)}
        python = str(zygote_python())
        return ForkServer(lambda fd: self.sandbox.command(shown, [python, *_ZYGOTE, str(fd)], network, tmp_mb), env)

    def _exposed(self) -> str:
        if self.users.separate:
            return ("each function runs as a user of its own, but functions see every process of this host and "
                    "share its network namespace; /tmp and /dev/shm are shared")
        return (f"functions can read whatever user {os.geteuid()} can read (the data directory's secret.key and "
                f"admin.pem, ~/.dispatch, other functions' sources), share /tmp and /dev/shm, see and signal "
                f"each other's processes, and have no process limit")


@functools.cache
def _interpreters() -> tuple[Path, ...]:
    return tuple(interpreter_paths())
