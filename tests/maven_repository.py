"""Maven for the Java tests, without a reachable Maven repository: Debian packages the dependency
plugin the runtimes run (libmaven-dependency-plugin-java) and what it needs (junit4 among them)
into /usr/share/maven-repo. The tests' settings.xml mirrors every repository but their own to that
folder and keeps Maven's local repository in a temporary folder, so they neither reach out nor
touch ~/.m2. As root on Debian the packages are installed when missing; elsewhere the tests that
need them skip with the reason.
"""
import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from dispatch.drivers import maven

SYSTEM_REPOSITORY = Path("/usr/share/maven-repo")
PACKAGES = ("libmaven-dependency-plugin-java", "junit4")
_LOCK = Path.home() / ".cache" / "dispatch-test" / "maven.lock"


class Unavailable(Exception):
    """Why the Maven tests cannot run here."""


def system_repository() -> Path:
    """The folder serving the pinned dependency plugin; raise Unavailable with why not."""
    if shutil.which("mvn") is None:
        raise Unavailable("mvn is not installed (Debian: maven)")
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # test runs started together install once
        if not _serves_the_plugin():
            _install()
    return SYSTEM_REPOSITORY


def settings(folder: Path, own: dict[str, str]) -> Path:
    """A settings.xml in `folder`: the repositories `own` (id: URL) as they are, every other one
    mirrored to the system repository, a local repository of its own."""
    others = ",".join(["*", *(f"!{name}" for name in own)])
    repositories = "".join(f"<repository><id>{name}</id><url>{url}</url></repository>" for name, url in own.items())
    path = folder / "settings.xml"
    path.write_text(
        f"<settings><localRepository>{folder / 'local-repository'}</localRepository>"
        f"<mirrors><mirror><id>system</id><mirrorOf>{others}</mirrorOf><url>{system_repository().as_uri()}</url>"
        "</mirror></mirrors>"
        f"<profiles><profile><id>tests</id><repositories>{repositories}</repositories></profile></profiles>"
        "<activeProfiles><activeProfile>tests</activeProfile></activeProfiles></settings>\n")
    return path


def _serves_the_plugin() -> bool:
    group, artifact, version = maven.DEPENDENCY_PLUGIN.split(":")
    plugin = SYSTEM_REPOSITORY / group.replace(".", "/") / artifact / version
    return plugin.is_dir() and (SYSTEM_REPOSITORY / "junit").is_dir()


def _install() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(f"{SYSTEM_REPOSITORY} lacks {maven.DEPENDENCY_PLUGIN}, and installing "
                          f"{' '.join(PACKAGES)} needs root and apt-get")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise Unavailable(f"{' '.join(command[:2])} failed: {(done.stderr or done.stdout).strip()[-300:]}")
    if not _serves_the_plugin():
        raise Unavailable(f"{SYSTEM_REPOSITORY} still lacks {maven.DEPENDENCY_PLUGIN} after installing "
                          f"{' '.join(PACKAGES)}")
