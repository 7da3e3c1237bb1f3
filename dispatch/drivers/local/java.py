"""Java in the local runtime. The Java function server (dispatch/runtimes/java) is compiled once and
kept under the runtime's folder, keyed by a hash of its sources. A deploy compiles the function
with it (`--compile`) before the first worker starts, as the server's user: javac runs no code of
the function's (annotation processing is off), and its first error becomes the function's reason.
An image's pom.xml has Maven copy its dependencies into the image's lib/. A worker is `java`
exec'd from a fork of the zygote, like Node.js's; it loads and instantiates the handler class as
the function's user, and reaches the server's classes through a descriptor the zygote opened."""
import asyncio
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from dispatch.drivers import maven
from dispatch.drivers.local.commands import run
from dispatch.drivers.local.languages import IMAGE, PIPES, RUNTIMES, SOURCE, BaseLanguage, WorkerSpec, base_env, find
from dispatch.drivers.ports import BuildFailed

MAIN = "dispatch.runtime.Server"
_SERVER_SOURCES = RUNTIMES / "java"
_JDK = "install a JDK 17 or later (Debian: openjdk-17-jdk-headless)"
_MAVEN = "install Maven to install a pom.xml's dependencies (Debian: maven)"
# One GC thread, C1 alone, the JDK's class data archive, no perf data file in /tmp: a start of
# about 0.1 s, where the defaults spend CPU on optimising code that a worker's first runs, and a
# compile, hardly repeat (javac itself compiles about twice as fast with them).
_LEAN_JVM = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-XX:-UsePerfData"]
# What a JVM needs beside its heap under RLIMIT_DATA (thread stacks, metaspace, its class data
# archive): about 35 MB measured for the function server; -Xmx gets the rest of memoryMB.
_JVM_OWN_MB = 48
_COMPILE_TIMEOUT_SECONDS = 300
# Server classes this process compiled, by version: another runtime of the process (another data
# directory) copies them instead of compiling again.
_COMPILED: dict[str, Path] = {}


class Java(BaseLanguage):
    name = "java"
    package_manager = "maven"
    limits_own_cpu = False

    def __init__(self, cache_dir: Path, maven_settings: Path | None = None):
        """`cache_dir`: where the compiled function server is kept. `maven_settings`: a settings.xml
        given to Maven (`mvn -s`), e.g. naming the repositories or mirror to use."""
        self._cache_dir = Path(cache_dir)
        self._maven_settings = maven_settings
        self._server: Path | None = None
        self._compiling: asyncio.Lock | None = None

    def version_command(self) -> list[str]:
        find("java", _JDK)
        return [find("javac", _JDK), "-version"]

    def install_command(self, manifest: str, image_dir: Path) -> list[str] | None:
        (image_dir / "lib").mkdir()
        if not manifest.strip():
            return None
        maven.check_pom(manifest)
        pom = image_dir / "pom.xml"
        pom.write_text(manifest)
        return [find("mvn", _MAVEN), *maven.copy_dependencies(pom, image_dir / "lib", self._maven_settings)]

    def install_failure(self, code: int, tail: list[str]) -> str:
        return maven.failure_reason(tail) or super().install_failure(code, tail)

    async def prepare(self, folder: Path, spec: WorkerSpec) -> None:
        """Compile the handler's class into `folder`/.classes (Sources.compile in the server)."""
        server = await self.server_classes()
        command = [find("java", _JDK), *_LEAN_JVM, "-cp", str(server), MAIN, "--source", str(folder),
                   "--handler", spec.handler, "--compile"]
        if spec.image_dir is not None:
            command += ["--classpath", f"{spec.image_dir}/lib/*"]
        code, tail = await run(command, cwd=folder, timeout=_COMPILE_TIMEOUT_SECONDS)
        if code != 0:
            raise BuildFailed(_reported(tail) or f"cannot compile the function (exit code {code}): " + "\n".join(tail))

    def worker_request(self, spec: WorkerSpec) -> dict:
        if self._server is None:
            raise BuildFailed("the Java function server is not compiled yet: deploy compiles it")
        opened = [str(spec.image_dir)] if spec.image_dir is not None else []
        opened.append(str(self._server))  # read as the server: the worker may not see the cache
        argv = [find("java", _JDK)]
        if spec.memory_mb:
            argv.append(f"-Xmx{max(spec.memory_mb - _JVM_OWN_MB, spec.memory_mb // 4)}m")
        argv += [*_LEAN_JVM, "-cp", f"/proc/self/fd/{4 + len(opened)}", MAIN, "--source", SOURCE,
                 "--handler", spec.handler, *PIPES, *spec.limit_args()]
        if spec.image_dir is not None:
            argv += ["--classpath", f"{IMAGE}/lib/*"]
        if spec.memory_mb:
            argv += ["--memory-mb", str(spec.memory_mb)]
        return {"open": opened, "exec": argv, "env": base_env(spec.isolated)}

    async def server_classes(self) -> Path:
        """The compiled function server: from the cache, else compiled now, once per version."""
        if self._compiling is None:
            self._compiling = asyncio.Lock()
        async with self._compiling:
            digest = _sources_digest()
            folder = self._cache_dir / f"server-{digest}"
            if not _compiled(folder):
                await self._compile_server(folder, _COMPILED.get(digest))
            _COMPILED[digest] = self._server = folder
            return folder

    async def _compile_server(self, folder: Path, earlier: Path | None) -> None:
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        self._cache_dir.chmod(0o700)
        staging = Path(tempfile.mkdtemp(prefix=".server-", dir=self._cache_dir))
        try:
            if earlier is not None and _compiled(earlier):
                await asyncio.to_thread(shutil.copytree, earlier, staging, dirs_exist_ok=True)
            else:
                sources = sorted(str(path) for path in _SERVER_SOURCES.glob("*.java"))
                # Inline string concatenation: the invokedynamic kind costs every worker's start ~20 ms.
                command = [find("javac", _JDK), *(f"-J{flag}" for flag in _LEAN_JVM), "-d", str(staging),
                           "-encoding", "UTF-8", "-nowarn", "-XDstringConcat=inline", *sources]
                code, tail = await run(command, cwd=staging, timeout=_COMPILE_TIMEOUT_SECONDS)
                if code != 0:
                    raise BuildFailed(f"cannot compile the Java function server (exit code {code}):\n"
                                      + "\n".join(tail))
            await asyncio.to_thread(_publish, staging, folder)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)


def _compiled(folder: Path) -> bool:
    return (folder / "dispatch" / "runtime" / "Server.class").is_file()


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(_SERVER_SOURCES.glob("*.java")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _publish(staging: Path, folder: Path) -> None:
    """Readable by every function's user (through the descriptor; the cache's parents stay private),
    then renamed into place: a process compiling the same version meanwhile loses the race harmlessly."""
    for path in [staging, *staging.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    try:
        staging.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise


def _reported(tail: list[str]) -> str | None:
    """The server prints a bad handler's §3.6 error as one JSON line."""
    for line in reversed(tail):
        if line.startswith("{"):
            try:
                return str(json.loads(line)["message"])
            except (ValueError, KeyError, TypeError):
                continue
    return None

