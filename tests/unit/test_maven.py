"""What a failed Maven run means in one line, and the one dependency plugin both runtimes use."""
import pytest

from dispatch.drivers import maven
from dispatch.drivers.docker.languages import TEMPLATES
from dispatch.drivers.ports import BuildFailed

ADVICE = ["[ERROR] ", "[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.",
          "[ERROR] Re-run Maven using the -X switch to enable full debug logging.", "[ERROR] ",
          "[ERROR] For more information about the errors and possible solutions, please read the following articles:",
          "[ERROR] [Help 1] http://cwiki.apache.org/confluence/display/MAVEN/DependencyResolutionException",
          "\x1b[0m\x1b[0m"]


def test_unresolvable_dependencies_are_named_without_mavens_advice():
    lines = ["[INFO] BUILD FAILURE",
             "[ERROR] Failed to execute goal on project img: Could not resolve dependencies for project x:img:jar:1: "
             "Failed to collect dependencies at joda-time:joda-time:jar:2.3: Could not transfer artifact "
             "joda-time:joda-time:pom:2.3 from/to central (https://repo.maven.apache.org/maven2): Unknown host "
             "repo.maven.apache.org -> [Help 1]", *ADVICE]

    assert maven.failure_reason(lines) == (
        "maven could not resolve the pom.xml's dependencies: Failed to collect dependencies at "
        "joda-time:joda-time:jar:2.3: Could not transfer artifact joda-time:joda-time:pom:2.3 from/to central "
        "(https://repo.maven.apache.org/maven2): Unknown host repo.maven.apache.org")


def test_an_unresolvable_dependency_plugin_says_what_to_give_maven():
    lines = [f"[ERROR] Plugin {maven.DEPENDENCY_PLUGIN} or one of its dependencies could not be resolved: Cannot "
             "access central in offline mode -> [Help 1]", *ADVICE]

    reason = maven.failure_reason(lines)

    assert reason.startswith(f"maven could not resolve {maven.DEPENDENCY_PLUGIN}, which copies the dependencies")
    assert "Maven settings file" in reason


def test_other_failures_keep_mavens_first_error_lines():
    lines = ["[ERROR] [ERROR] Some problems were encountered while processing the POMs:",
             "[FATAL] Non-resolvable parent POM for x:img:1: Could not find artifact a:parent:pom:1 @ line 3",
             "[ERROR] The build could not read 1 project -> [Help 1]", *ADVICE]

    assert maven.failure_reason(lines) == (
        "maven failed: Some problems were encountered while processing the POMs: / Non-resolvable parent "
        "POM for x:img:1: Could not find artifact a:parent:pom:1 @ line 3 / The build could not read 1 project")


def test_output_without_errors_means_nothing():
    assert maven.failure_reason(["[INFO] BUILD FAILURE", "Killed"]) is None


@pytest.mark.parametrize("manifest, message", [
    ("joda-time==2.3", "not well-formed"),
    ('{"dependencies": {}}', "not well-formed"),
    ("<package><name>x</name></package>", "its root element is <package>, not <project>"),
])
def test_a_manifest_that_is_not_a_pom_is_refused(manifest, message):
    with pytest.raises(BuildFailed, match=f"the java manifest must be a pom.xml document: .*{message}"):
        maven.check_pom(manifest)


def test_the_docker_image_template_runs_the_dependency_plugin_the_local_runtime_runs():
    assert f"{maven.DEPENDENCY_PLUGIN}:copy-dependencies" in (TEMPLATES / "java" / "image.Dockerfile").read_text()
