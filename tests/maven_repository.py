"""Maven for the Java tests, without a reachable Maven repository: Debian packages the dependency
plugin the runtimes run (libmaven-dependency-plugin-java) and what it needs (junit4 among them)
into /usr/share/maven-repo. The tests' settings.xml mirrors every repository but their own to that
folder and keeps Maven's local repository in a temporary folder, so they neither reach out nor
touch ~/.m2. As root on Debian the packages are installed when missing; elsewhere the tests that
need them skip with the reason.
"""
import shutil
from pathlib import Path

from dispatch.drivers import maven
from tests import debian
from tests.debian import Unavailable

SYSTEM_REPOSITORY = Path("/usr/share/maven-repo")
PACKAGES = ("libmaven-dependency-plugin-java", "junit4")


def system_repository() -> Path:
    """The folder serving the pinned dependency plugin; raise Unavailable with why not."""
    if shutil.which("mvn") is None:
        raise Unavailable("mvn is not installed (Debian: maven)")
    if not _serves_the_plugin():
        debian.install(*PACKAGES)
        if not _serves_the_plugin():
            raise Unavailable(f"{SYSTEM_REPOSITORY} still lacks {maven.DEPENDENCY_PLUGIN} after installing "
                              f"{' '.join(PACKAGES)}")
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

