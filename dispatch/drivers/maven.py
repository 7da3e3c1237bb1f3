"""Maven, as Java images use it: the pom.xml checked before Maven runs, the run that copies its
runtime dependencies into a folder, and what a failed run means in one line."""
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from dispatch.drivers.ports import BuildFailed

# Pinned: left to prefix resolution, Maven picks whichever version its metadata names, which offline
# may be one whose own dependencies were never downloaded. This one is also the version Debian
# packages (libmaven-dependency-plugin-java, in /usr/share/maven-repo), which a host without a
# reachable repository can point Maven at (see docs/local-runtime.md).
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.5.0"
_BOILERPLATE = ("To see the full stack trace", "Re-run Maven using", "For more information about the errors",
                "[Help ", "After correcting the problems", "For more information about")
_HELP = re.compile(r"\s*->\s*\[Help \d+\]\s*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LEVEL = re.compile(r"^(\[(ERROR|FATAL)\]\s*)+")
_PROJECT = re.compile(r"Could not resolve dependencies for project \S+?: ")


def check_pom(manifest: str) -> None:
    """Refuse, before Maven runs, a manifest that is not a pom.xml document."""
    try:
        root = ElementTree.fromstring(manifest)
    except ElementTree.ParseError as exc:
        raise BuildFailed(f"the java manifest must be a pom.xml document: {exc}") from None
    tag = root.tag.rsplit("}", 1)[-1]
    if tag != "project":
        raise BuildFailed(f"the java manifest must be a pom.xml document: its root element is <{tag}>, not <project>")


def copy_dependencies(pom: Path, lib: Path, settings: Path | None = None) -> list[str]:
    """Maven's arguments (after `mvn`) that copy the pom's runtime dependencies, transitive ones
    included, into `lib`. -U: a dependency that failed before is looked for again, not remembered
    as missing for a day."""
    arguments = ["-B", "-U", "-ntp", "-Dstyle.color=never", "-f", str(pom)]
    if settings is not None:
        arguments += ["-s", str(settings)]
    return arguments + [f"{DEPENDENCY_PLUGIN}:copy-dependencies", f"-DoutputDirectory={lib}",
                        "-DincludeScope=runtime"]


def failure_reason(lines: list[str]) -> str | None:
    """What Maven's [ERROR] lines say went wrong, without its advice; None when it printed none."""
    errors = []
    for line in lines:
        line = _ANSI.sub("", line).strip()
        if not _LEVEL.match(line):
            continue
        text = _HELP.sub("", _LEVEL.sub("", line)).strip()
        if text and not text.startswith(_BOILERPLATE):
            errors.append(text)
    if not errors:
        return None
    first = errors[0]
    unresolved = _PROJECT.search(first)
    if unresolved:
        return f"maven could not resolve the pom.xml's dependencies: {first[unresolved.end():]}"
    if "maven-dependency-plugin" in first and "could not be resolved" in first:
        return (f"maven could not resolve {DEPENDENCY_PLUGIN}, which copies the dependencies (give it a "
                f"repository that serves it with a Maven settings file): {first}")
    return "maven failed: " + " / ".join(errors[:3])
