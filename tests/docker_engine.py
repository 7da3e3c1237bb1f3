"""A Docker engine and a base image for the Docker runtime's tests, made on this machine.

    python -m tests.docker_engine      # prepare, then print the export line `make test` evaluates

Order: DISPATCH_TEST_DOCKER_HOST if set; else the engine this module starts on its own socket
(dockerd with --bridge=none --iptables=false, so it touches neither the host's network nor its
firewall; functions then run with host networking). As root on Debian it installs docker.io and
debootstrap when missing. The base image (Debian bookworm minbase with python3, pip and nodejs) is
made with debootstrap and `docker import`; the engine keeps it in its data directory and the rootfs
tarball stays under ~/.cache/dispatch-test/, so later runs skip debootstrap. The engine is left
running for the next run. When none of this can be done, DISPATCH_TEST_DOCKER_SKIP carries the
reason and the Docker tests skip with it.

Java functions get JAVA_BASE_IMAGE: the base image plus this host's JDK 17 (the host runs bookworm
too), made on the engine by the first test that builds a Java image and kept there like the base
image, so a run without Java tests pays nothing for it.
"""
import fcntl
import io
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

BASE_IMAGE = "dispatch-test/bookworm:python3-nodejs-1"
CACHE = Path.home() / ".cache" / "dispatch-test"
ROOTFS_TARBALL = CACHE / "bookworm-python3-nodejs-1.tar.gz"
JAVA_BASE_IMAGE = "dispatch-test/bookworm:java17-1"
JDK = Path("/usr/lib/jvm/java-17-openjdk-amd64")
_JDK_LEFT_OUT = {"jmods", "src.zip", "man", "demo"}  # not needed to compile and run: a smaller image
RUN_DIR = Path("/run/dispatch-test-docker")
ENGINE_URL = f"unix://{RUN_DIR / 'docker.sock'}"
DATA_ROOT = Path("/var/lib/dispatch-test-docker")
MIRROR = "http://deb.debian.org/debian"
TEST_NAMESPACE_PREFIX = "dispatch-test-"
# Cases of the shared runtime contract (tests/contract/test_runtime.py) that speak of this host's
# processes or files, which a container does not see; test_docker_runtime.py checks the same promise.
CONTRACT_EXCEPTIONS = {
    "test_a_worker_killed_between_calls_is_replaced_without_failing_a_call":
        "kills a host pid; the Docker runtime kills the container instead (test_docker_runtime.py)",
    "test_a_python_image_installs_its_manifest_for_the_function":
        "names a wheel by its host path; the Docker build fetches it over HTTP (test_docker_runtime.py)",
    "test_a_nodejs_image_installs_its_package_json_for_the_function":
        "names a package by its host path, and the test base image carries no npm",
    "test_system_packages_fail_the_build": "the Docker runtime installs system packages",
    "test_supported_base_images_pass_the_check":
        "the Dispatch base images need a registry; test_docker_runtime.py checks a local base image",
    "test_close_leaves_no_process_behind_not_even_ones_a_function_started":
        "counts host processes; test_docker_runtime.py checks that no container is left",
    "test_a_java_image_installs_its_pom_dependencies_for_the_function":
        "the test base image carries no Maven; test_docker_runtime.py checks that a pom.xml then fails clearly",
    "test_a_pom_dependency_no_repository_serves_fails_the_image_naming_it":
        "the test base image carries no Maven; test_docker_runtime.py checks that a pom.xml then fails clearly",
}


class Unavailable(Exception):
    """The reason the Docker tests cannot run here."""


def prepare() -> str:
    """The URL of an engine holding BASE_IMAGE; raise Unavailable with the reason."""
    if os.environ.get("DISPATCH_TEST_DOCKER", "1") in ("0", "no", "false"):
        raise Unavailable("DISPATCH_TEST_DOCKER is off")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "prepare.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # test runs started together start one engine and import once
        return _prepare()


def _prepare() -> str:
    url = os.environ.get("DISPATCH_TEST_DOCKER_HOST") or ENGINE_URL
    if not answers(url):
        if url != ENGINE_URL:
            raise Unavailable(f"no Docker engine answers at DISPATCH_TEST_DOCKER_HOST={url}")
        _start_engine()
    _remove_test_leftovers(url)
    if not _docker(url, "image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        _import_base_image(url)
    return url


def answers(url: str) -> bool:
    return shutil.which("docker") is not None and _docker(url, "version", check=False, timeout=10).returncode == 0


def _start_engine() -> None:
    if sys.platform != "linux" or os.geteuid() != 0:
        raise Unavailable("no Docker engine answers, and starting one needs root on Linux")
    _install("dockerd", "docker.io")
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    for extra in ([], ["--storage-driver=vfs"]):
        log = RUN_DIR / "dockerd.log"
        command = ["dockerd", f"--host={ENGINE_URL}", f"--data-root={DATA_ROOT}", f"--exec-root={RUN_DIR / 'exec'}",
                   f"--pidfile={RUN_DIR / 'dockerd.pid'}", "--bridge=none", "--iptables=false", "--ip-forward=false",
                   "--ip-masq=false", *extra]
        _say(f"starting {' '.join(command)} (log: {log})")
        with log.open("ab") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        for _ in range(60):
            if answers(ENGINE_URL):
                return
            if process.poll() is not None:
                break
            time.sleep(0.5)
        if process.poll() is None:
            process.terminate()
            process.wait(20)
    tail = (RUN_DIR / "dockerd.log").read_text(errors="replace").strip().splitlines()[-3:]
    raise Unavailable(f"dockerd did not start: {' / '.join(tail)}")


def _import_base_image(url: str) -> None:
    if not ROOTFS_TARBALL.exists():
        _debootstrap()
    _say(f"importing {ROOTFS_TARBALL} as {BASE_IMAGE}")
    _docker(url, "import", str(ROOTFS_TARBALL), BASE_IMAGE, timeout=300)


def _debootstrap() -> None:
    if os.geteuid() != 0:
        raise Unavailable(f"{BASE_IMAGE} is missing and debootstrap needs root")
    _install("debootstrap", "debootstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    rootfs = CACHE / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    _say(f"debootstrap bookworm into {rootfs} (about a minute, once)")
    _run(["debootstrap", "--variant=minbase", "--include=python3,python3-pip,nodejs", "bookworm", str(rootfs),
          MIRROR], timeout=900)
    for waste in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                  "usr/share/locale"):
        shutil.rmtree(rootfs / waste, ignore_errors=True)
    partial = ROOTFS_TARBALL.with_suffix(".partial")
    _run(["sh", "-c", f"tar -C {shlex.quote(str(rootfs))} -c . | gzip -1 > {shlex.quote(str(partial))}"], timeout=300)
    partial.rename(ROOTFS_TARBALL)
    shutil.rmtree(rootfs, ignore_errors=True)


def java_base_image(url: str) -> str:
    """JAVA_BASE_IMAGE on the engine at `url`, made now if it lacks it; raise Unavailable with why not."""
    with (CACHE / "prepare.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _docker(url, "image", "inspect", JAVA_BASE_IMAGE, check=False).returncode != 0:
            _build_java_base_image(url)
    return JAVA_BASE_IMAGE


def _build_java_base_image(url: str) -> None:
    if not (JDK / "bin" / "javac").is_file():
        raise Unavailable(f"{JAVA_BASE_IMAGE} is missing and {JDK} holds no JDK to copy into it")
    _say(f"building {JAVA_BASE_IMAGE}: {BASE_IMAGE} with {JDK} (once per engine)")
    dockerfile = (f"FROM {BASE_IMAGE}\nCOPY jdk/ {JDK}/\n"
                  f"RUN ln -s {JDK}/bin/java /usr/bin/java && ln -s {JDK}/bin/javac /usr/bin/javac && javac -version\n")
    with tempfile.TemporaryFile() as context:
        # Dereferenced: the JDK's links into /etc (its configuration, cacerts) become files.
        with tarfile.open(fileobj=context, mode="w", dereference=True) as tar:
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile.encode()))
            for folder, folders, files in os.walk(JDK):
                folders[:] = [name for name in folders if name not in _JDK_LEFT_OUT]
                tar.add(folder, arcname=f"jdk/{Path(folder).relative_to(JDK)}", recursive=False)
                for name in files:
                    path = Path(folder) / name
                    if name not in _JDK_LEFT_OUT and path.exists():  # src.zip links to a package not installed
                        tar.add(path, arcname=f"jdk/{path.relative_to(JDK)}")
        context.seek(0)
        done = subprocess.run(["docker", "-H", url, "build", "-q", "-t", JAVA_BASE_IMAGE, "-"], stdin=context,
                              capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise Unavailable(f"building {JAVA_BASE_IMAGE} failed: {(done.stderr or done.stdout).strip()[-300:]}")


def _remove_test_leftovers(url: str) -> None:
    """What interrupted test runs left: containers whose test process is gone, and, on this module's
    own engine, images of tests that no container has used for an hour. Runs going on are untouched."""
    from dispatch.drivers.docker.installation import NAMESPACE, OWNER, owner_is_gone

    listed = _docker(url, "ps", "-a", "--filter", f"label={NAMESPACE}", "--format",
                     f'{{{{.ID}}}} {{{{.Label "{NAMESPACE}"}}}} {{{{.Label "{OWNER}"}}}}', check=False).stdout
    rows = [line.split() for line in listed.splitlines()]
    stale = [row[0] for row in rows
             if len(row) == 3 and row[1].startswith(TEST_NAMESPACE_PREFIX) and owner_is_gone(row[2])]
    if stale:
        _docker(url, "rm", "-f", *stale, check=False)
    if url == ENGINE_URL:
        _docker(url, "image", "prune", "-a", "-f", "--filter", f"label={NAMESPACE}", "--filter", "until=1h",
                check=False)


def _install(program: str, package: str) -> None:
    if shutil.which(program):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(f"{program} is missing and cannot be installed here (needs root and apt-get)")
    _say(f"installing {package} with apt-get")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], timeout=300, env=environment)
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", package], timeout=600, env=environment)
    if not shutil.which(program):
        raise Unavailable(f"{program} is still missing after installing {package}")


def _docker(url: str, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return _run(["docker", "-H", url, *args], check=check, timeout=timeout)


def _run(command: list[str], check: bool = True, timeout: float = 60, env=None) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if not check:
            return subprocess.CompletedProcess(command, 1, "", str(exc))
        raise Unavailable(f"{command[0]} failed: {exc}") from None
    if check and done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise Unavailable(f"{' '.join(command[:3])} failed (exit code {done.returncode}): {' / '.join(last)}")
    return done


def _say(line: str) -> None:
    print(f"tests.docker_engine: {line}", file=sys.stderr, flush=True)


# ---- for the tests


def url_for_tests() -> str:
    """The prepared engine's URL, or skip the calling test with the reason."""
    import pytest

    reason = os.environ.get("DISPATCH_TEST_DOCKER_SKIP")
    if reason:
        pytest.skip(f"Docker: {reason}")
    url = os.environ.get("DISPATCH_TEST_DOCKER_HOST")
    if url:
        return url
    if _prepared_here():
        return ENGINE_URL
    pytest.skip("Docker: no engine was prepared; `make test` prepares one (python -m tests.docker_engine)")


def runtime_for_tests(data_dir: Path, **options):
    """A DockerRuntime on the prepared engine, in a namespace of its own, with host networking (so
    the tests' traffic stays on 127.0.0.1); images built without a base image get BASE_IMAGE, and
    close() also removes the images it built."""
    import asyncio
    import dataclasses
    import uuid

    import pytest

    from dispatch.drivers.docker import DockerRuntime

    class OnTestBase(DockerRuntime):
        async def build_image(self, spec, progress=None):
            if not spec.base_url and spec.language == "java":
                try:
                    base = await asyncio.to_thread(java_base_image, self._url)
                except Unavailable as missing:
                    pytest.skip(f"Docker: {missing}")
                spec = dataclasses.replace(spec, base_url=base)
            elif not spec.base_url:
                spec = dataclasses.replace(spec, base_url=BASE_IMAGE)
            location = await super().build_image(spec, progress)
            self.__dict__.setdefault("built", []).append(location)
            return location

        async def close(self):
            for location in self.__dict__.get("built", []):
                await self.remove_image(location)
            await super().close()

    options.setdefault("namespace", f"{TEST_NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}")
    options.setdefault("network_mode", "host")
    return OnTestBase(data_dir, url=url_for_tests(), **options)


_prepared: list[bool] = []


def _prepared_here() -> bool:
    if not _prepared:
        _prepared.append(answers(ENGINE_URL)
                         and _docker(ENGINE_URL, "image", "inspect", BASE_IMAGE, check=False).returncode == 0)
    return _prepared[0]


def export_line() -> str:
    """The line `make test` evaluates: where the engine is, or why there is none."""
    try:
        return f"export DISPATCH_TEST_DOCKER_HOST={shlex.quote(prepare())}"
    except Exception as problem:  # whatever went wrong, the other services' lines must still be printed
        reason = str(problem) if isinstance(problem, Unavailable) else f"{type(problem).__name__}: {problem}"
        _say(f"Docker tests will skip: {reason}")
        return f"export DISPATCH_TEST_DOCKER_SKIP={shlex.quote(reason)}"


if __name__ == "__main__":
    print(export_line())
