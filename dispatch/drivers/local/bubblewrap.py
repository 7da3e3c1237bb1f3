"""A sandbox per function, made with bubblewrap (`bwrap`): the function's zygote and every worker it
forks run in their own pid, mount, ipc and uts namespaces (and network namespace, with
`limits.network: false`).

What a sandbox shows, read-only, at the same paths as on the host: the system (/usr, /bin, /lib…,
/etc without the secrets below), the Python installation, the `dispatch` package (its function
servers), the interpreters the workers exec (Node.js, the JDK) when they live outside /usr, and
the function's own folder, image and compiled server classes. Writable: a private /tmp and
/dev/shm, each a tmpfs as large as the function's memory limit. Nothing else of the host: not the
server's data directory (its secret key, admin.pem, the event log), not $HOME or the CLI config,
not another function's files. /proc shows the function's own processes only.

bwrap runs as the server's user. As root it needs no user namespace; the zygote keeps the few
capabilities it needs to give each worker its function's user (see sandbox.py), and workers keep
none. As another user it makes a user namespace, where that user's processes are counted on their
own (RLIMIT_NPROC). Where bwrap is missing or cannot make namespaces (no user namespaces for
unprivileged users), `auto` runs functions without it and says so loudly; `on` refuses to deploy.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

MODES = ("auto", "on", "off")
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Readable by root only on most hosts; hidden all the same, for a server whose workers run as root.
_SECRET_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
                 "/etc/security/opasswd", "/etc/krb5.keytab")
_SECRET_FOLDERS = ("/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d", "/etc/docker", "/etc/kubernetes",
                   "/etc/rancher", "/etc/wireguard", "/etc/NetworkManager/system-connections", "/etc/letsencrypt",
                   "/etc/pki/tls/private", "/etc/openvpn", "/etc/ipsec.d/private")
# What a zygote running as root keeps to start workers as their function's user and to kill them.
_ROOT_CAPABILITIES = ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL")
_PROBE_TIMEOUT_SECONDS = 10
_probed: dict[tuple[str, bool], str | None] = {}


class Bubblewrap:
    def __init__(self, mode: str = "auto", program: str = "bwrap"):
        if mode not in MODES:
            raise ValueError(f"unknown sandbox mode {mode!r}: use {', '.join(MODES)}")
        self.mode = mode
        self._program = shutil.which(program)
        self._root = os.geteuid() == 0
        self.problem: str | None = None
        """Why functions run without a sandbox (None when they get one)."""
        if mode == "off":
            self.problem = "the sandbox is off (sandbox: off)"
        elif self._program is None:
            self.problem = f"{program} was not found on PATH (Debian: apt-get install bubblewrap)"
        else:
            self.problem = _probe(self._program, self._root)

    @property
    def active(self) -> bool:
        return self.problem is None

    def command(self, readable: list[Path], inner: list[str], network: bool = True,
                tmp_mb: int | None = None) -> list[str]:
        """bwrap running `inner` in a sandbox that shows `readable` (folders or files) read-only."""
        return [*self._base(network), *_mounts(readable, tmp_mb), "--remount-ro", "/", "--chdir", "/", "--",
                *inner]

    def _base(self, network: bool) -> list[str]:
        if self._program is None:
            raise RuntimeError("bwrap was not found on PATH")
        options = [self._program, "--die-with-parent", "--as-pid-1", "--unshare-pid", "--unshare-ipc",
                   "--unshare-uts", "--unshare-cgroup-try", "--hostname", "dispatch"]
        if not network:
            options.append("--unshare-net")
        if self._root:
            options += ["--cap-drop", "ALL"]
            for capability in _ROOT_CAPABILITIES:
                options += ["--cap-add", capability]
        return options


def interpreter_paths() -> list[Path]:
    """What the zygote and the exec'd workers need of this host beyond /usr and /etc."""
    paths = [Path(sys.base_prefix).resolve(), Path(sys.base_exec_prefix).resolve(), zygote_python().parent]
    for program in ("node", "java"):
        found = shutil.which(program)
        if found:
            real = Path(found).resolve()
            paths.append(real.parent.parent)  # the installation's prefix: bin/.. holds its libraries
    return [path for path in paths if not _under(path, [Path(system) for system in _SYSTEM])]


def zygote_python() -> Path:
    """The interpreter itself, not a virtual environment's link to it: the sandbox has no venv."""
    return Path(getattr(sys, "_base_executable", None) or sys.executable).resolve()


def _mounts(readable: list[Path], tmp_mb: int | None) -> list[str]:
    mounts: list[str] = []
    bound: list[Path] = []
    for system in _SYSTEM:
        if os.path.islink(system):
            mounts += ["--symlink", os.readlink(system), system]
        elif os.path.isdir(system):
            mounts += ["--ro-bind", system, system]
            bound.append(Path(system))
    mounts += ["--ro-bind", "/etc", "/etc"]
    mounts += [argument for path in _SECRET_FILES if os.path.isfile(path)
               for argument in ("--ro-bind", "/dev/null", path)]
    mounts += [argument for path in _SECRET_FOLDERS if os.path.isdir(path)
               for argument in ("--perms", "0555", "--tmpfs", path)]
    size = ["--size", str(tmp_mb << 20)] if tmp_mb else []
    mounts += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", *size, "--tmpfs", "/tmp",
               "--perms", "1777", *size, "--tmpfs", "/dev/shm"]
    made: set[Path] = set()
    for path in sorted({Path(os.path.abspath(path)) for path in readable}, key=lambda path: len(path.parts)):
        if _under(path, bound) or not path.exists():
            continue
        for parent in reversed(path.parents):  # bwrap would make them as private as the host's (/root)
            if parent != Path("/") and parent not in made and not _under(parent, bound):
                mounts += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        mounts += ["--ro-bind", str(path), str(path)]
        bound.append(path)
    return mounts


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _probe(program: str, root: bool) -> str | None:
    """None when bwrap makes a sandbox here, else why not (bwrap's own words); once per process."""
    key = (program, root)
    if key not in _probed:
        sandbox = Bubblewrap.__new__(Bubblewrap)
        sandbox._program, sandbox._root = program, root
        command = sandbox.command(interpreter_paths(), [str(zygote_python()), "-c", "pass"])
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_SECONDS,
                                  stdin=subprocess.DEVNULL)
            failed = done.returncode != 0 and (done.stderr.strip() or f"exit code {done.returncode}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            failed = str(exc)
        _probed[key] = f"{program} cannot make a sandbox here: {failed}" if failed else None
    return _probed[key]
