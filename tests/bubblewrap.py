"""bubblewrap for the sandbox tests: installed as root on Debian when missing (apt-get install
bubblewrap), else the tests that need it skip with the reason."""
import fcntl
import os
import shutil
import subprocess
from pathlib import Path

PACKAGE = "bubblewrap"
_LOCK = Path.home() / ".cache" / "dispatch-test" / "bubblewrap.lock"


class Unavailable(Exception):
    """Why the sandbox tests cannot run here."""


def ensure() -> None:
    """bwrap on PATH, making sandboxes here; raise Unavailable with why not."""
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # test runs started together install once
        if shutil.which("bwrap") is None:
            _install()
    from dispatch.drivers.local.bubblewrap import Bubblewrap

    problem = Bubblewrap("on").problem
    if problem:
        raise Unavailable(problem)


def _install() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(f"bwrap is missing, and installing {PACKAGE} needs root and apt-get")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", PACKAGE]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise Unavailable(f"{' '.join(command[:2])} failed: {(done.stderr or done.stdout).strip()[-300:]}")
    if shutil.which("bwrap") is None:
        raise Unavailable(f"bwrap is still missing after installing {PACKAGE}")


def required() -> None:
    """Skip the calling test, with the reason, where the sandbox cannot be had."""
    import pytest

    try:
        ensure()
    except Unavailable as missing:
        pytest.skip(f"sandbox: {missing}")
