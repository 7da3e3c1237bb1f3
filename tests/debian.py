"""Debian packages the tests need, installed when missing and the tests run as root with apt-get;
elsewhere `Unavailable` says why not, and the tests that need them skip with that reason."""
import fcntl
import os
import shutil
import subprocess
from pathlib import Path

_LOCK = Path.home() / ".cache" / "dispatch-test" / "apt.lock"


class Unavailable(Exception):
    """Why a package the tests need cannot be had here."""


def install(*packages: str) -> None:
    """apt-get install `packages`; test runs started together install one at a time."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(f"installing {' '.join(packages)} needs root and apt-get")
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for command in (["apt-get", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment,
                                  stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                raise Unavailable(f"{' '.join(command[:2])} failed: {(done.stderr or done.stdout).strip()[-300:]}")
