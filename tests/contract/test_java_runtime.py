"""Java functions through the runtime port, on every adapter: the shapes Dispatch's Java users write
(a Map in and a String out; inner classes in and out), Maven layouts, the handler checked and
compiled at deploy, and images whose pom.xml brings libraries (local runtime: the test base image
of the Docker tests carries no Maven)."""
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

from dispatch.drivers.ports import BuildFailed, DeploymentSpec, ImageSpec
from dispatch.schemas import source
from tests import maven_repository
from tests.contract.test_runtime import JON, deploy, function_runtime, runtime_with  # noqa: F401 (fixtures)

GREETER = """
    package io.example.greetings;

    import java.util.Map;
    import java.util.function.BiFunction;

    public class Greeter implements BiFunction<Map<String, Object>, Map<String, Object>, String> {
        public String apply(Map<String, Object> context, Map<String, Object> payload) {
            Object place = payload.getOrDefault("place", "Somewhere");
            return "Hello, " + payload.getOrDefault("name", "Someone") + " from " + place;
        }
    }
    """
WITH_CLASSES = """
    package io.example.greetings;

    import java.util.Map;
    import java.util.function.BiFunction;

    public class WithClasses implements BiFunction<Map<String, Object>, WithClasses.Visitor, WithClasses.Greeting> {
        public Greeting apply(Map<String, Object> context, Visitor visitor) {
            System.out.println("greeting " + visitor.name);
            String place = visitor.place == null ? "Somewhere" : visitor.place;
            return new Greeting("Hello, " + visitor.name + " from " + place);
        }

        public class Visitor {
            private String name;
            private String place;

            Visitor(String name, String place) {
                this.name = name;
                this.place = place;
            }
        }

        public class Greeting {
            private String myField;

            Greeting(String myField) {
                this.myField = myField;
            }
        }
    }
    """
NEEDS_A_LIBRARY = """
    package io.example.greetings;

    import org.joda.time.DateTimeZone;

    public class NeedsALibrary {
        public String zone() {
            return DateTimeZone.UTC.getID();
        }
    }
    """
MAVEN = "src/main/java/io/example/greetings"


async def test_a_single_file_without_a_handler_runs_the_class_its_package_and_name_make(function_runtime, tmp_path):
    faas_id = await deploy(function_runtime, tmp_path, "java", {"Greeter.java": GREETER})

    result = await function_runtime.invoke(faas_id, {}, JON, 0)

    assert (result.output, result.error) == ("Hello, Jon from Winterfell", None)


async def test_inner_classes_take_the_payload_and_make_the_result(function_runtime, tmp_path):
    faas_id = await deploy(function_runtime, tmp_path, "java", {"WithClasses.java": WITH_CLASSES},
                           handler="io.example.greetings.WithClasses")

    result = await function_runtime.invoke(faas_id, {}, {"name": "Jon"}, 0)

    assert (result.output, result.error) == ({"myField": "Hello, Jon from Somewhere"}, None)
    assert result.stdout == ["greeting Jon"]


async def test_a_maven_layout_builds_its_handler_beside_a_source_needing_a_missing_library(function_runtime, tmp_path):
    files = {"pom.xml": "<project><modelVersion>4.0.0</modelVersion></project>",
             f"{MAVEN}/Greeter.java": GREETER, f"{MAVEN}/NeedsALibrary.java": NEEDS_A_LIBRARY}
    faas_id = await deploy(function_runtime, tmp_path, "java", files, handler="io.example.greetings.Greeter")

    result = await function_runtime.invoke(faas_id, {}, {"name": "Jon"}, 0)

    assert (result.output, result.error) == ("Hello, Jon from Somewhere", None)


async def test_a_class_name_with_no_source_fails_the_deploy_naming_what_was_looked_for(function_runtime, tmp_path):
    files = {"pom.xml": "<project/>", f"{MAVEN}/Greeter.java": GREETER}

    with pytest.raises(BuildFailed) as failed:
        await deploy(function_runtime, tmp_path, "java", files, handler="io.example.greetings.Greeting")

    assert failed.value.reason == ("Invalid function file or handler: no source file for class "
                                   "io.example.greetings.Greeting: expected src/main/java/io/example/greetings/"
                                   "Greeting.java")


async def test_a_compile_error_fails_the_deploy_with_javacs_first_error(function_runtime, tmp_path):
    broken = GREETER.replace('payload.getOrDefault("place", "Somewhere")', "payload.place")

    with pytest.raises(BuildFailed) as failed:
        await deploy(function_runtime, tmp_path, "java", {f"{MAVEN}/Greeter.java": broken, "pom.xml": "<project/>"},
                     handler="io.example.greetings.Greeter")

    lines = failed.value.reason.splitlines()
    assert lines[0] == ("Invalid function file or handler: src/main/java/io/example/greetings/Greeter.java:9: "
                        "error: cannot find symbol")
    assert lines[1].strip() == "Object place = payload.place;"
    assert lines[2].strip() == "^"
    assert "symbol:   variable place" in failed.value.reason


async def test_a_class_that_is_no_bifunction_fails_the_deploy(function_runtime, tmp_path):
    with pytest.raises(BuildFailed, match="Invalid function file or handler: Greeter must implement "
                                          r"java.util.function.BiFunction"):
        await deploy(function_runtime, tmp_path, "java", {"Greeter.java": "public class Greeter {\n}\n"})


@pytest.mark.parametrize("throw, kind", [("new IllegalArgumentException(\"name is required\")", "InputError"),
                                         ("new IllegalStateException(\"name is required\")", "FunctionError")])
async def test_exceptions_come_back_typed_with_the_functions_stack_trace(function_runtime, tmp_path, throw, kind):
    thrower = GREETER.replace("return", f"if (payload.isEmpty()) {{\n throw {throw};\n}}\nreturn")
    faas_id = await deploy(function_runtime, tmp_path, "java", {"Greeter.java": thrower})

    result = await function_runtime.invoke(faas_id, {}, {}, 0)

    assert (result.output, result.error["type"], result.error["message"]) == (None, kind, "name is required")
    assert result.error["stacktrace"][1].startswith("\tat io.example.greetings.Greeter.apply(Greeter.java:")


# ---- images (local runtime)


def words_repository(folder: Path) -> Path:
    """A Maven repository on disk serving io.example.words:words:1.0, a jar made here with javac."""
    code = folder / "words-src" / "io" / "example" / "words" / "Words.java"
    code.parent.mkdir(parents=True)
    code.write_text("package io.example.words;\n\npublic class Words {\n    public static String greet(String name, "
                    "String place) {\n        return \"Hello, \" + name + \" from \" + place;\n    }\n}\n")
    classes = folder / "words-classes"
    subprocess.run(["javac", "-d", str(classes), str(code)], check=True, capture_output=True)
    artifact = folder / "repository" / "io" / "example" / "words" / "words" / "1.0"
    artifact.mkdir(parents=True)
    with zipfile.ZipFile(artifact / "words-1.0.jar", "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        jar.write(classes / "io" / "example" / "words" / "Words.class", "io/example/words/Words.class")
    (artifact / "words-1.0.pom").write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion><groupId>io.example.words'
        "</groupId><artifactId>words</artifactId><version>1.0</version></project>\n")
    return folder / "repository"


def pom(artifact: str) -> str:
    return textwrap.dedent(f"""\
        <project xmlns="http://maven.apache.org/POM/4.0.0">
          <modelVersion>4.0.0</modelVersion>
          <groupId>io.example</groupId><artifactId>image</artifactId><version>1.0</version>
          <dependencies>
            <dependency>
              <groupId>io.example.words</groupId><artifactId>{artifact}</artifactId><version>1.0</version>
            </dependency>
          </dependencies>
        </project>
        """)


@pytest.fixture(scope="module")
def maven_folder(tmp_path_factory) -> Path:
    """The test repository, and Maven's local repository, shared by the module's Maven runs."""
    folder = tmp_path_factory.mktemp("maven")
    try:
        maven_repository.settings(folder, {"words": words_repository(folder).as_uri()})
    except maven_repository.Unavailable as missing:
        pytest.skip(f"Maven: {missing}")
    return folder


@pytest.fixture
def maven_runtime(runtime_with, maven_folder):
    return runtime_with(maven_settings=maven_folder / "settings.xml")


async def test_a_java_image_installs_its_pom_dependencies_for_the_function(maven_runtime, tmp_path):
    lines: list[str] = []
    image = await maven_runtime.build_image(ImageSpec(id="words", name="words", language="java", base_url="",
                                                      manifest=pom("words")), lines.append)
    function = tmp_path / "Greeter.java"
    uses_words = GREETER.replace("import java.util.Map;", "import io.example.words.Words;\nimport java.util.Map;")
    uses_words = uses_words.replace('"Hello, " + payload.getOrDefault("name", "Someone") + " from " + place',
                                    'Words.greet((String) payload.get("name"), (String) place)')
    function.write_text(textwrap.dedent(uses_words))

    await maven_runtime.deploy(DeploymentSpec(faas_id="uses-words", name="uses", organization="dispatch",
                                              language="java", image_location=image, source=source.pack(function)))
    result = await maven_runtime.invoke("uses-words", {}, JON, 0)

    assert (result.output, result.error) == ("Hello, Jon from Winterfell", None)
    assert (Path(image) / "lib" / "words-1.0.jar").is_file()
    assert any("Copying words-1.0.jar" in line for line in lines)  # the build's log, as Maven wrote it


async def test_a_pom_dependency_no_repository_serves_fails_the_image_naming_it(maven_runtime):
    spec = ImageSpec(id="nowhere", name="nowhere", language="java", base_url="", manifest=pom("no-such-words"))

    with pytest.raises(BuildFailed) as failed:
        await maven_runtime.build_image(spec)

    assert failed.value.reason.startswith("maven could not resolve the pom.xml's dependencies: ")
    assert "io.example.words:no-such-words:jar:1.0" in failed.value.reason
    assert "[Help" not in failed.value.reason and "\n" not in failed.value.reason


async def test_a_manifest_that_is_not_a_pom_fails_the_image_before_maven_runs(function_runtime):
    spec = ImageSpec(id="not-pom", name="not-pom", language="java", base_url="", manifest="joda-time==2.3\n")

    with pytest.raises(BuildFailed, match="the java manifest must be a pom.xml document: not well-formed"):
        await function_runtime.build_image(spec)
