"""The server image (the repository's Dockerfile) built and run on the tests' Docker engine.

No registry is reachable here, so the image's default base, python:3.11-slim-bookworm (Debian
bookworm with CPython in /usr/local), is stood in for by the engine's local bookworm base
(tests/docker_engine.py) with this host's own CPython copied into /usr/local, as the Java base
image gets this host's JDK: Debian's python3 (3.11.2) lacks the tarfile filters Dispatch needs.
The builder's pip reaches PyPI as this host does, so that base also gets this host's CA bundle,
the one its own pip trusts (a TLS-inspecting proxy's, where there is one). The image is built with
`--network host` (the engine has no bridge). The engine keeps the base and every layer: a run after
a code change rebuilds only the package's layer.
"""
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from dispatch.drivers.docker.installation import NAMESPACE, OWNER, process_owner
from tests.docker_engine import BASE_IMAGE, TEST_NAMESPACE_PREFIX, Unavailable

ROOT = Path(__file__).resolve().parents[1]
SERVER_IMAGE = "dispatch-test/server:e2e"
_CA_BUNDLES = (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"), os.environ.get("SSL_CERT_FILE"),
               "/etc/ssl/certs/ca-certificates.crt")
_VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"
# Not needed to run Dispatch: a smaller base. site-packages is this host's, not the image's; the
# config folder holds the static library, for building extensions.
_STDLIB_LEFT_OUT = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "lib2to3",
                    f"config-{sys.version_info.major}.{sys.version_info.minor}-{sys.implementation._multiarch}"}
_BASE_DOCKERFILE = f"""FROM {BASE_IMAGE}
COPY certificates/ /etc/ssl/certs/
COPY local/ /usr/local/
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \\
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN ldconfig && ln -s {_VERSION} /usr/local/bin/python3 && ln -s {_VERSION} /usr/local/bin/python \\
 && python3 -m ensurepip --default-pip > /dev/null \\
 && python3 -c "import ctypes, lzma, bz2, sqlite3, ssl, tarfile, uuid, zlib; tarfile.data_filter"
"""


def say(line: str) -> None:
    print(f"tests.docker_image: {line}", file=sys.stderr, flush=True)


def docker(url: str, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", "-H", url, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return done


def build_base(url: str) -> str:
    """BASE_IMAGE with this host's CPython and CA bundle, made once per engine, interpreter and bundle;
    raise Unavailable with why it cannot be."""
    if sys.version_info < (3, 11, 4):
        raise Unavailable(f"this host's Python {sys.version.split()[0]} lacks tarfile filters (3.11.4 or later)")
    bundle = next((Path(path) for path in _CA_BUNDLES if path and Path(path).is_file()), None)
    certificates = bundle.read_bytes() if bundle else b""
    prefix = Path(sys.base_prefix)
    recipe = f"{_BASE_DOCKERFILE} {sorted(_STDLIB_LEFT_OUT)} {prefix} {sys.version}"
    digest = hashlib.sha256(recipe.encode() + certificates).hexdigest()[:12]
    tag = f"dispatch-test/server-base:{digest}"
    if docker(url, "image", "inspect", tag, check=False).returncode == 0:
        return tag
    say(f"making {tag}: {BASE_IMAGE} with {prefix} (Python {sys.version.split()[0]}) in /usr/local"
        f"{f' and {bundle}' if bundle else ''} (once)")
    with tempfile.TemporaryFile() as context:
        with tarfile.open(fileobj=context, mode="w") as tar:
            _add_file(tar, "Dockerfile", _BASE_DOCKERFILE.encode())
            _add_file(tar, "certificates/", b"", tarfile.DIRTYPE)
            if bundle:
                _add_file(tar, "certificates/ca-certificates.crt", certificates)
            for relative in (f"bin/{_VERSION}", f"lib/lib{_VERSION}.so.1.0", f"lib/{_VERSION}"):
                tar.add(prefix / relative, arcname=f"local/{relative}", filter=_stdlib_only)
        context.seek(0)
        done = subprocess.run(["docker", "-H", url, "build", "-q", "-t", tag, "-"], stdin=context,
                              capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"building {tag} failed: {(done.stderr or done.stdout).strip()[-1500:]}")
    return tag


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, kind: bytes = tarfile.REGTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data)
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    tar.addfile(info, io.BytesIO(data))


def _stdlib_only(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = Path(member.name).parts
    if len(parts) > 3 and parts[1] == "lib" and parts[2] == _VERSION and parts[3] in _STDLIB_LEFT_OUT:
        return None
    if member.name.endswith((".opt-1.pyc", ".opt-2.pyc")):  # for python -O only
        return None
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    return member


def build_server_image(url: str, log: Path, timeout: float = 900) -> float:
    """Build SERVER_IMAGE from the work tree, each step printed as it starts; the seconds it took."""
    base = build_base(url)
    command = ["docker", "-H", url, "build", "--force-rm", "--network", "host", "--build-arg", f"BASE={base}",
               "-t", SERVER_IMAGE, str(ROOT)]
    say(f"building {SERVER_IMAGE} FROM {base} (output: {log})")
    started = time.monotonic()
    with log.open("w") as output, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                   text=True, stdin=subprocess.DEVNULL) as process:
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        try:
            for line in process.stdout:
                output.write(line)
                if line.startswith("Step "):
                    say(f"{time.monotonic() - started:6.1f} s  {line.strip()[:100]}")
            code = process.wait()
        finally:
            watchdog.cancel()
    seconds = time.monotonic() - started
    if code != 0:
        raise AssertionError(f"docker build failed ({code}) after {seconds:.0f} s: {log.read_text()[-3000:]}")
    size = docker(url, "image", "inspect", "-f", "{{.Size}}", SERVER_IMAGE).stdout.strip()
    say(f"built {SERVER_IMAGE} in {seconds:.1f} s, {int(size) / 1e6:.0f} MB")
    return seconds


class Container:
    """One detached container of SERVER_IMAGE, on the host's network unless told; `remove()` whatever
    happened. Labelled as the Docker runtime's test containers are, so that the next run's engine
    preparation removes it if this test process dies before it does."""

    def __init__(self, url: str, name: str, env: dict[str, str], mounts: dict[Path, str], work: Path,
                 network: str = "host"):
        self.url, self.name = url, name
        env_file = work / f"{name}.env"
        env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
        env_file.chmod(0o600)
        volumes = [option for source, target in mounts.items() for option in ("-v", f"{source}:{target}")]
        labels = ["--label", f"{NAMESPACE}={TEST_NAMESPACE_PREFIX}{name}", "--label", f"{OWNER}={process_owner()}"]
        docker(url, "run", "-d", "--name", name, "--network", network, "--env-file", str(env_file), *labels, *volumes,
               SERVER_IMAGE)

    def inspect(self, template: str) -> str:
        return docker(self.url, "inspect", "-f", template, self.name).stdout.strip()

    def logs(self) -> str:
        done = docker(self.url, "logs", self.name, check=False)
        return done.stdout + done.stderr

    def process_status(self) -> dict[str, str]:
        """The /proc/PID/status fields of the container's main process, as this host sees it."""
        pid = self.inspect("{{.State.Pid}}")
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}

    def wait_healthy(self, timeout: float = 120) -> float:
        """Seconds until Docker reports the image's HEALTHCHECK healthy."""
        started = time.monotonic()
        status = ""
        while time.monotonic() - started < timeout:
            if self.inspect("{{.State.Running}}") != "true":
                raise AssertionError(f"{self.name} exited: {self.logs()[-3000:]}")
            now = self.inspect("{{.State.Health.Status}}")
            if now != status:
                status = now
                say(f"{self.name}: {status} after {time.monotonic() - started:.1f} s")
            if status == "healthy":
                return time.monotonic() - started
            time.sleep(1)
        raise AssertionError(f"{self.name} is {status} after {timeout:.0f} s: "
                             f"{self.inspect('{{json .State.Health}}')[-1500:]}\n{self.logs()[-3000:]}")

    def exec(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return docker(self.url, "exec", self.name, *args, timeout=timeout, check=False)

    def stop(self, timeout: float = 30) -> float:
        """`docker stop` (SIGTERM, SIGKILL after `timeout`); the seconds it took."""
        started = time.monotonic()
        docker(self.url, "stop", "-t", str(int(timeout)), self.name, timeout=timeout + 30)
        return time.monotonic() - started

    def remove(self) -> None:
        docker(self.url, "rm", "-f", "-v", self.name, check=False)
