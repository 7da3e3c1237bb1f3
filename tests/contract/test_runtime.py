"""The function runtime port, as the platform sees it: build, deploy, invoke, fail, clean up.

Every adapter runs the same suite; a Docker adapter joins by adding a parameter to `function_runtime`.
"""
import asyncio
import json
import os
import signal
import textwrap
import zipfile
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest

from dispatch.drivers.local import LocalRuntime
from dispatch.drivers.ports import BuildFailed, DeploymentSpec, FunctionRuntime, ImageSpec, NotDeployed
from dispatch.schemas import source
from tests import docker_engine
from tests.contract import processes, rendezvous
from tests.contract.rendezvous import Rendezvous

ADAPTERS: dict[str, Callable[..., FunctionRuntime]] = {"local": LocalRuntime, "docker": docker_engine.runtime_for_tests}
MARKS = {"docker": [pytest.mark.docker]}
JON = {"name": "Jon", "place": "Winterfell"}
HELLO_PY = """
def handle(context, payload):
    return {"myField": f"Hello, {payload['name']} from {payload['place']}"}
"""
HELLO_JS = """
module.exports = async function (context, payload) {
  return { myField: `Hello, ${payload.name} from ${payload.place}` };
};
"""
HELLO_JAVA = """
import java.util.Map;
import java.util.function.BiFunction;

public class Hello implements BiFunction<Map<String, Object>, Map<String, Object>, Map<String, String>> {
    public Map<String, String> apply(Map<String, Object> context, Map<String, Object> payload) {
        return Map.of("myField", "Hello, " + payload.get("name") + " from " + payload.get("place"));
    }
}
"""


def java(code: str) -> str:
    """A Java function's source: `code`, the body of its class `Handler`, with its imports."""
    return ("import java.util.*;\nimport java.util.function.BiFunction;\n\npublic class Handler"
            " implements BiFunction<Map<String, Object>, Object, Object> {\n" + textwrap.dedent(code) + "}\n")


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, [])) for name in ADAPTERS])
async def runtime_with(request, tmp_path) -> AsyncIterator[Callable[..., FunctionRuntime]]:
    """Makes the adapter with the runtime options a test names (the same on every adapter)."""
    if request.param == "docker" and request.function.__name__ in docker_engine.CONTRACT_EXCEPTIONS:
        pytest.skip(docker_engine.CONTRACT_EXCEPTIONS[request.function.__name__])
    made: list[FunctionRuntime] = []

    def make(**options) -> FunctionRuntime:
        made.append(ADAPTERS[request.param](tmp_path / f"runtime-data-{len(made)}", **options))
        return made[-1]

    yield make
    for runtime in made:
        await runtime.close()


@pytest.fixture
def function_runtime(runtime_with) -> FunctionRuntime:
    return runtime_with()


async def deploy(runtime: FunctionRuntime, tmp_path: Path, language: str, files: dict[str, str],
                 handler: str = "", manifest: str = "", **scale) -> str:
    """Build an image for `language`, deploy `files` (one file alone, or a folder) and return the faas id."""
    number = len(list(tmp_path.glob("src-*")))
    folder = tmp_path / f"src-{number}"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    archive = source.pack(folder / next(iter(files)) if len(files) == 1 else folder)
    image = await runtime.build_image(ImageSpec(id=f"image-{number}", name="img", language=language, base_url="",
                                                manifest=manifest))
    faas_id = f"fn-{number}"
    await runtime.deploy(DeploymentSpec(faas_id=faas_id, name=f"fn{number}", organization="dispatch",
                                        language=language, image_location=image, source=archive, handler=handler,
                                        **scale))
    return faas_id


# ---- hello, context, logs


@pytest.mark.parametrize("language, files", [("python3", {"hello.py": HELLO_PY}), ("nodejs", {"hello.js": HELLO_JS}),
                                             ("java", {"Hello.java": HELLO_JAVA})])
async def test_hello_returns_its_output_with_empty_logs_and_no_error(function_runtime, tmp_path, language, files):
    faas_id = await deploy(function_runtime, tmp_path, language, files)

    result = await function_runtime.invoke(faas_id, {"secrets": {}}, JON, 0)

    assert (result.output, result.error) == ({"myField": "Hello, Jon from Winterfell"}, None)
    assert (result.stdout, result.stderr) == ([], [])


@pytest.mark.parametrize("language, files", [
    ("python3", {"logs.py": """
        import sys
        def handle(context, payload):
            print(f"out {payload}")
            print(f"err {payload}", file=sys.stderr)
            return payload
        """}),
    ("nodejs", {"logs.js": """
        module.exports = (context, payload) => {
          console.log(`out ${payload}`);
          process.stderr.write(`err ${payload}\\n`);
          return payload;
        };
        """}),
    ("java", {"Handler.java": java("""
        public Object apply(Map<String, Object> context, Object payload) {
            System.out.println("out " + payload);
            System.err.println("err " + payload);
            return payload;
        }
        """)}),
])
async def test_each_call_returns_only_the_lines_it_printed(function_runtime, tmp_path, language, files):
    faas_id = await deploy(function_runtime, tmp_path, language, files)

    first = await function_runtime.invoke(faas_id, {}, 1, 0)
    second = await function_runtime.invoke(faas_id, {}, 2, 0)

    assert (first.stdout, first.stderr) == (["out 1"], ["err 1"])
    assert (second.stdout, second.stderr) == (["out 2"], ["err 2"])


async def test_concurrent_calls_run_in_parallel_workers_without_mixing_logs(function_runtime, tmp_path):
    faas_id = await deploy(function_runtime, tmp_path, "python3", {"together.py": rendezvous.source("python3", """
        def handle(context, payload):
            print(f"start {payload['who']}")
            seen = meet(payload["at"], payload["who"])
            print(f"end {payload['who']}")
            return seen
        """)})

    async with Rendezvous(quorum=3) as together:  # each call goes on only once all three have started
        results = await asyncio.gather(*(function_runtime.invoke(faas_id, {}, {"who": who, "at": together.address}, 0)
                                         for who in "abc"))

    assert [r.output for r in results] == [3] * 3  # one after the other, the first would see 1
    assert [r.stdout for r in results] == [[f"start {who}", f"end {who}"] for who in "abc"]


async def test_secrets_reach_the_function_in_its_context(function_runtime, tmp_path):
    faas_id = await deploy(function_runtime, tmp_path, "python3", {"s.py": """
        def handle(context, payload):
            return context["secrets"]["password"]
        """})

    result = await function_runtime.invoke(faas_id, {"secrets": {"password": "ghost"}}, None, 0)

    assert result.output == "ghost"


async def test_printing_5_mb_is_truncated_and_the_call_still_succeeds(function_runtime, tmp_path):
    faas_id = await deploy(function_runtime, tmp_path, "python3", {"loud.py": """
        def handle(context, payload):
            for _ in range(50_000):
                print("x" * 99)
            return "done"
        """})

    result = await function_runtime.invoke(faas_id, {}, None, 0)

    assert (result.output, result.error) == ("done", None)
    assert result.stdout[-1].startswith("... log truncated: ")
    assert result.stdout[-1].endswith("bytes over the 1048576-byte limit")
    assert sum(len(line) + 1 for line in result.stdout[:-1]) <= 1048576 + 1


# ---- errors (§3.6)


async def test_python_value_error_is_an_input_error_with_its_message(function_runtime, tmp_path):
    faas_id = await deploy(function_runtime, tmp_path, "python3", {"v.py": """
        def handle(context, payload):
            raise ValueError("name is required")
        """})

    result = await function_runtime.invoke(faas_id, {}, {}, 0)

    assert result.error["type"] == "InputError"
    assert result.error["message"] == "name is required"
    assert result.output is None


async def test_python_exception_is_a_function_error_with_its_stacktrace(function_runtime, tmp_path):
    faas_id = await deploy(function_runtime, tmp_path, "python3", {"boom.py": """
        def handle(context, payload):
            print("about to fail")
            raise RuntimeError("the wall fell")
        """})

    result = await function_runtime.invoke(faas_id, {}, {}, 0)

    assert (result.error["type"], result.error["message"]) == ("FunctionError", "the wall fell")
    assert any('boom.py", line 4, in handle' in line for line in result.error["stacktrace"])
    assert result.error["stacktrace"][-1] == "RuntimeError: the wall fell"
    assert result.stdout == ["about to fail"]


async def test_python_result_that_is_not_json_is_a_function_error(function_runtime, tmp_path):
    faas_id = await deploy(function_runtime, tmp_path, "python3", {"s.py": "def handle(c, p):\n    return {1, 2}\n"})

    result = await function_runtime.invoke(faas_id, {}, None, 0)

    assert result.error["type"] == "FunctionError"
    assert "not JSON serialisable" in result.error["message"]


@pytest.mark.parametrize("body, kind, message", [
    ('throw new Error("the wall fell");', "FunctionError", "the wall fell"),
    ('return Promise.reject(new Error("broken promise"));', "FunctionError", "broken promise"),
    ("return payload.missing.field;", "InputError", "Cannot read properties of undefined (reading 'field')"),
])
async def test_node_errors_come_back_in_the_error_not_in_the_output(function_runtime, tmp_path, body, kind, message):
    files = {"e.js": f"module.exports = async (c, payload) => {{ {body} }};"}
    faas_id = await deploy(function_runtime, tmp_path, "nodejs", files)

    result = await function_runtime.invoke(faas_id, {}, {}, 0)

    assert result.output is None
    assert (result.error["type"], result.error["message"]) == (kind, message)
    assert any("e.js" in line for line in result.error["stacktrace"])


@pytest.mark.parametrize("language, code", [
    ("python3", """
        import time
        def handle(context, payload):
            meet(payload["at"], "started")
            time.sleep(payload["seconds"])
            meet(payload["at"], "finished")
            return "woke"
        """),
    ("nodejs", """
        module.exports = async (context, payload) => {
          await meet(payload.at, 'started');
          const end = Date.now() + payload.seconds * 1000;
          while (Date.now() < end);
          await meet(payload.at, 'finished');
          return 'woke';
        };
        """),
    ("java", java("""
        public Object apply(Map<String, Object> context, Object payload) {
            Map<?, ?> given = (Map<?, ?>) payload;
            Rendezvous.meet(given.get("at"), "started");
            long end = System.currentTimeMillis() + ((Number) given.get("seconds")).longValue() * 1000;
            while (System.currentTimeMillis() < end) {
                Thread.onSpinWait();
            }
            Rendezvous.meet(given.get("at"), "finished");
            return "woke";
        }
        """)),
])
async def test_a_call_over_its_timeout_fails_and_the_next_call_works(function_runtime, tmp_path, language, code):
    name = {"nodejs": "slow.js", "python3": "slow.py", "java": "Handler.java"}[language]
    faas_id = await deploy(function_runtime, tmp_path, language, {name: rendezvous.source(language, code)})

    async with Rendezvous(quorum=1) as passing:
        late = await function_runtime.invoke(faas_id, {}, {"seconds": 30, "at": passing.address}, 300)
        cut_short = list(passing.arrivals)
        after = await function_runtime.invoke(faas_id, {}, {"seconds": 0, "at": passing.address}, 300)

    assert late.error == {"type": "FunctionError", "message": "Function execution exceeded the timeout",
                          "stacktrace": []}
    assert cut_short == ["started"]  # the answer came while the function was still sleeping
    assert (after.output, after.error) == ("woke", None)


@pytest.mark.parametrize("language, code", [
    ("python3", """
        import time
        def handle(context, payload):
            meet(payload["at"], payload["role"])
            time.sleep(payload["seconds"])
            return "woke"
        """),
    # the late call keeps Node.js's only thread busy: the call beside it cannot end on its own
    ("nodejs", """
        module.exports = async (context, payload) => {
          await meet(payload.at, payload.role);
          if (payload.role === 'late') while (true);
          await new Promise((resolve) => setTimeout(resolve, payload.seconds * 1000));
          return 'woke';
        };
        """),
    ("java", java("""
        public Object apply(Map<String, Object> context, Object payload) {
            Map<?, ?> given = (Map<?, ?>) payload;
            Rendezvous.meet(given.get("at"), (String) given.get("role"));
            try {
                Thread.sleep(((Number) given.get("seconds")).longValue() * 1000);
            } catch (InterruptedException stopped) {
                return "stopped";
            }
            return "woke";
        }
        """)),
])
async def test_a_call_over_its_timeout_ends_the_calls_beside_it_with_the_reason(function_runtime, tmp_path,
                                                                                language, code):
    name = {"nodejs": "slow.js", "python3": "slow.py", "java": "Handler.java"}[language]
    faas_id = await deploy(function_runtime, tmp_path, language, {name: rendezvous.source(language, code)},
                           min_replicas=1, max_replicas=1, concurrency=2)
    async with Rendezvous(quorum=1) as passing:
        beside = asyncio.ensure_future(function_runtime.invoke(
            faas_id, {}, {"seconds": 30, "at": passing.address, "role": "beside"}, 0))
        assert await passing.arrived(1, seconds=60)
        late = await function_runtime.invoke(faas_id, {}, {"seconds": 30, "at": passing.address, "role": "late"}, 500)
        ended = await asyncio.wait_for(beside, 30)

    assert late.error["message"] == "Function execution exceeded the timeout"
    assert ended.error["type"] == "SystemError"
    assert ended.error["message"].endswith(": another run on the same function process exceeded its timeout")


@pytest.mark.parametrize("language, files", [
    ("python3", {"d.py": "def handle(c, p):\n    print('ran')\n"}),
    ("java", {"Handler.java": java("""
        public Object apply(Map<String, Object> context, Object payload) {
            System.out.println("ran");
            return null;
        }
        """)}),
])
async def test_a_deadline_already_passed_does_not_invoke_the_function(function_runtime, tmp_path, language, files):
    faas_id = await deploy(function_runtime, tmp_path, language, files)

    result = await function_runtime.invoke(faas_id, {"deadline": "2020-01-01T00:00:00.000000001Z"}, None, 0)

    assert result.error["message"] == "Did not invoke, already exceeded timeout"
    assert result.stdout == []


@pytest.mark.parametrize("language, files", [
    ("python3", {"bye.py": """
        import sys
        def handle(c, p):
            if p == 'exit':
                sys.exit(3)
            return 'still here'
        """}),
    ("nodejs", {"bye.js": "module.exports = (c, p) => { if (p === 'exit') process.exit(3); return 'still here'; };"}),
    ("java", {"Handler.java": java("""
        public Object apply(Map<String, Object> context, Object payload) {
            if ("exit".equals(payload)) {
                System.exit(3);
            }
            return "still here";
        }
        """)}),
])
async def test_a_function_exiting_its_process_is_a_system_error_and_the_next_call_works(
        function_runtime, tmp_path, language, files):
    faas_id = await deploy(function_runtime, tmp_path, language, files)

    gone = await function_runtime.invoke(faas_id, {}, "exit", 0)
    after = await function_runtime.invoke(faas_id, {}, "again", 0)

    assert gone.error["type"] == "SystemError"
    assert "exited with code 3" in gone.error["message"]
    assert (after.output, after.error) == ("still here", None)


async def test_a_worker_killed_between_calls_is_replaced_without_failing_a_call(function_runtime, tmp_path):
    faas_id = await deploy(function_runtime, tmp_path, "python3",
                           {"pid.py": f"def handle(c, p):\n    return {processes.PYTHON}\n"})
    first = await function_runtime.invoke(faas_id, {}, None, 0)
    os.kill(processes.host_pid(first.output), signal.SIGKILL)
    await asyncio.sleep(0.2)

    second = await function_runtime.invoke(faas_id, {}, None, 0)

    assert second.error is None
    assert second.output != first.output


async def test_functions_do_not_see_the_servers_environment(function_runtime, tmp_path, monkeypatch):
    monkeypatch.setenv("DISPATCH_DATABASE_PASSWORD", "hunter2")
    faas_id = await deploy(function_runtime, tmp_path, "python3", {"env.py": """
        import os
        def handle(context, payload):
            return os.environ.get("DISPATCH_DATABASE_PASSWORD")
        """})

    result = await function_runtime.invoke(faas_id, {}, None, 0)

    assert (result.output, result.error) == (None, None)


async def test_invoking_an_unknown_or_undeployed_function_raises_not_deployed(function_runtime, tmp_path):
    faas_id = await deploy(function_runtime, tmp_path, "python3", {"hello.py": HELLO_PY})
    await function_runtime.undeploy(faas_id)

    for missing in (faas_id, "never-deployed"):
        with pytest.raises(NotDeployed):
            await function_runtime.invoke(missing, {}, JON, 0)


# ---- handlers and sources (§3.4, §7.3)


@pytest.mark.parametrize("language, files, handler", [
    ("python3", {"hello.py": HELLO_PY}, "hello.missing"),
    ("python3", {"hello.py": "def handle(payload):\n    return payload\n"}, "hello.handle"),
    ("python3", {"hello.py": "def handle(c, p):\n    return p\nthis is not python\n"}, "hello.handle"),
    ("nodejs", {"hello.js": "module.exports = { handle: () => 1 };"}, "./hello.js"),
    ("nodejs", {"hello.js": HELLO_JS}, "./missing.js"),
    ("java", {"Hello.java": HELLO_JAVA}, "Missing"),
    ("java", {"Hello.java": "public class Hello {\n}\n"}, "Hello"),
    ("java", {"Hello.java": HELLO_JAVA.replace("Map.of(", "Map.off(")}, "Hello"),
])
async def test_an_invalid_handler_fails_the_deploy(function_runtime, tmp_path, language, files, handler):
    with pytest.raises(BuildFailed, match="Invalid function file or handler"):
        await deploy(function_runtime, tmp_path, language, files, handler=handler)


@pytest.mark.parametrize("language, files", [
    ("python3", {"a.py": HELLO_PY, "b.py": HELLO_PY}),
    ("nodejs", {"a.js": HELLO_JS, "b.js": HELLO_JS}),
    ("java", {"Hello.java": HELLO_JAVA, "Other.java": HELLO_JAVA.replace("Hello", "Other")}),
])
async def test_several_files_without_a_handler_fail_the_deploy(function_runtime, tmp_path, language, files):
    with pytest.raises(BuildFailed, match="Exactly 1 source file needed when HANDLER is empty"):
        await deploy(function_runtime, tmp_path, language, files)


@pytest.mark.parametrize("language, files, handler", [
    ("python3", {"main.py": "from greeting import greet\ndef run(c, p):\n    return greet(p)\n",
                 "greeting.py": "def greet(p):\n    return f\"Hello, {p['name']} from {p['place']}\"\n"}, "main.run"),
    ("nodejs", {"lib/main.js": "const greet = require('../greeting');\nmodule.exports = (c, p) => greet(p);\n",
                "greeting.js": "module.exports = (p) => `Hello, ${p.name} from ${p.place}`;\n"}, "./lib/main.js"),
    ("java", {"src/main/java/winterfell/Main.java": """
        package winterfell;

        import java.util.Map;
        import java.util.function.BiFunction;

        public class Main implements BiFunction<Map<String, Object>, Map<String, Object>, String> {
            public String apply(Map<String, Object> context, Map<String, Object> payload) {
                return Greeting.of(payload);
            }
        }
        """, "src/main/java/winterfell/Greeting.java": """
        package winterfell;

        import java.util.Map;

        class Greeting {
            static String of(Map<String, Object> p) {
                return "Hello, " + p.get("name") + " from " + p.get("place");
            }
        }
        """, "pom.xml": "<project/>"}, "winterfell.Main"),
])
async def test_a_folder_source_runs_with_its_explicit_handler(function_runtime, tmp_path, language, files, handler):
    faas_id = await deploy(function_runtime, tmp_path, language, files, handler=handler)

    result = await function_runtime.invoke(faas_id, {}, JON, 0)

    assert (result.output, result.error) == ("Hello, Jon from Winterfell", None)


# ---- images


def _write_wheel(folder: Path, module_code: str) -> Path:
    """A tiny installable package (a pure-Python wheel), so the build needs no network."""
    dist_info = "winterfell_words-1.0.dist-info"
    files = {
        "winterfell_words/__init__.py": module_code,
        f"{dist_info}/METADATA": "Metadata-Version: 2.1\nName: winterfell-words\nVersion: 1.0\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    wheel = folder / "winterfell_words-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr(f"{dist_info}/RECORD", "".join(f"{name},,\n" for name in [*files, f"{dist_info}/RECORD"]))
    return wheel


async def test_a_python_image_installs_its_manifest_for_the_function(function_runtime, tmp_path):
    wheel = _write_wheel(tmp_path, "def greet(p):\n    return f\"Hello, {p['name']} from {p['place']}\"\n")
    lines: list[str] = []
    number = len(list(tmp_path.glob("src-*")))
    image = await function_runtime.build_image(
        ImageSpec(id="py-deps", name="py-deps", language="python3", base_url="", manifest=f"{wheel}\n"), lines.append)
    assert any("winterfell" in line.lower() for line in lines)
    (tmp_path / f"src-{number}").mkdir()
    (tmp_path / f"src-{number}" / "uses.py").write_text(
        "import winterfell_words\ndef handle(c, p):\n    return winterfell_words.greet(p)\n")

    await function_runtime.deploy(DeploymentSpec(faas_id="uses-deps", name="uses", organization="dispatch",
                                                 language="python3", image_location=image,
                                                 source=source.pack(tmp_path / f"src-{number}" / "uses.py")))
    result = await function_runtime.invoke("uses-deps", {}, JON, 0)

    assert (result.output, result.error) == ("Hello, Jon from Winterfell", None)


async def test_a_nodejs_image_installs_its_package_json_for_the_function(function_runtime, tmp_path):
    package = tmp_path / "greeter"
    package.mkdir()
    (package / "package.json").write_text(json.dumps({"name": "greeter", "version": "1.0.0", "main": "index.js"}))
    (package / "index.js").write_text("module.exports = (p) => `Hello, ${p.name} from ${p.place}`;\n")
    manifest = json.dumps({"name": "deps", "dependencies": {"greeter": f"file:{package}"}})

    uses = "const greet = require('greeter');\nmodule.exports = (c, p) => greet(p);\n"
    faas_id = await deploy(function_runtime, tmp_path, "nodejs", {"uses.js": uses}, manifest=manifest)
    result = await function_runtime.invoke(faas_id, {}, JON, 0)

    assert (result.output, result.error) == ("Hello, Jon from Winterfell", None)


async def test_a_failing_install_fails_the_build_with_the_end_of_its_log(function_runtime, tmp_path):
    spec = ImageSpec(id="broken", name="broken", language="python3", base_url="", manifest=f"{tmp_path}/nowhere.whl\n")

    with pytest.raises(BuildFailed, match="nowhere.whl"):
        await function_runtime.build_image(spec)


async def test_system_packages_fail_the_build(function_runtime):
    spec = ImageSpec(id="sys", name="sys", language="python3", base_url="", system_packages=(("curl", "7.0"),))

    with pytest.raises(BuildFailed, match="curl"):
        await function_runtime.build_image(spec)


async def test_an_unsupported_language_fails_the_base_image_check_and_the_build(function_runtime):
    with pytest.raises(BuildFailed, match="cobol"):
        await function_runtime.check_base_image("cobol", "dispatchframework/cobol-base:0.0.1")
    with pytest.raises(BuildFailed, match="cobol"):
        await function_runtime.build_image(ImageSpec(id="c", name="c", language="cobol", base_url=""))


async def test_a_powershell_base_image_fails_at_once_saying_powershell_is_not_available(function_runtime):
    """Dispatch's seed images include PowerShell: its base image goes to ERROR with the reason, never hangs."""
    with pytest.raises(BuildFailed, match="PowerShell is not available on this host"):
        await asyncio.wait_for(function_runtime.check_base_image(
            "powershell", "dispatchframework/powershell-base:0.0.13"), 10)


@pytest.mark.parametrize("language", ["python3", "nodejs", "java"])
async def test_supported_base_images_pass_the_check(function_runtime, language):
    await function_runtime.check_base_image(language, f"dispatchframework/{language}-base:0.0.13")


# ---- cleanup


def _children() -> set[int]:
    mine = str(os.getpid())
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == mine and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


async def test_close_leaves_no_process_behind_not_even_ones_a_function_started(function_runtime, tmp_path):
    before = _children()
    seconds = f"60.{os.getpid()}{len(before)}"  # marks the sleeps it starts, as this host lists them
    spawner = await deploy(function_runtime, tmp_path, "python3", {"spawn.py": f"""
        import subprocess, time
        def handle(context, payload):
            time.sleep(0.2)
            subprocess.Popen(["sleep", "{seconds}"])
        """})
    await deploy(function_runtime, tmp_path, "nodejs", {"hello.js": HELLO_JS})
    quitter = await deploy(function_runtime, tmp_path, "python3",
                           {"quit.py": "import os\ndef handle(c, p):\n    os._exit(1)\n"})
    await asyncio.gather(*(function_runtime.invoke(spawner, {}, None, 0) for _ in range(3)))
    grandchildren = await processes.counted_with_marker(seconds, 3)
    assert len(grandchildren) == 3
    assert _children() - before
    await function_runtime.invoke(quitter, {}, None, 0)
    await asyncio.sleep(0.01)  # its replacement process is starting, not ready yet, when close() comes

    await function_runtime.close()

    assert _children() - before == set()
    for _ in range(50):  # killed, but reaped by whoever adopted them
        if not any(map(processes.running, grandchildren)):
            break
        await asyncio.sleep(0.05)
    assert [pid for pid in grandchildren if processes.running(pid)] == []


# ---- local adapter only


async def test_local_runtime_queues_calls_beyond_max_workers(tmp_path):
    runtime = LocalRuntime(tmp_path / "runtime-data", max_workers=2)
    try:
        faas_id = await deploy(runtime, tmp_path, "python3", {"held.py": rendezvous.source("python3", """
            import os
            def handle(context, payload):
                meet(payload, "call")
                return os.getpid()
            """)})

        async with Rendezvous() as held:
            calls = [asyncio.ensure_future(runtime.invoke(faas_id, {}, held.address, 0)) for _ in range(4)]
            assert await held.arrived(2)
            unfinished = [not call.done() for call in calls]
            held.open()
            results = await asyncio.gather(*calls)
    finally:
        await runtime.close()

    assert unfinished == [True] * 4  # the two beyond max_workers waited, they were not refused
    assert [r.error for r in results] == [None] * 4
    assert len({r.output for r in results}) == 2
    assert held.most_at_once == 2


@pytest.mark.parametrize("language", ["python3", "nodejs", "java"])
async def test_one_worker_with_concurrency_two_runs_two_calls_at_once(function_runtime, tmp_path, language):
    code = {"python3": """
        import os
        def handle(context, payload):
            meet(payload, "run")
            return os.getpid()
        """, "nodejs": """
        module.exports = async (context, payload) => { await meet(payload, 'run'); return process.pid; };
        """, "java": java("""
        public Object apply(Map<String, Object> context, Object payload) {
            Rendezvous.meet(payload, "run");
            return ProcessHandle.current().pid();
        }
        """)}[language]
    name = {"python3": "held.py", "nodejs": "held.js", "java": "Handler.java"}[language]
    files = {name: rendezvous.source(language, code)}
    faas_id = await deploy(function_runtime, tmp_path, language, files, min_replicas=1, max_replicas=1,
                           concurrency=2)
    async with Rendezvous() as held:
        running = [asyncio.ensure_future(function_runtime.invoke(faas_id, {}, held.address, 0)) for _ in range(2)]
        together = await held.arrived(2, seconds=60)
        held.open()
        results = await asyncio.gather(*running)

    assert together and held.most_at_once == 2
    assert [r.error for r in results] == [None, None] and len({r.output for r in results}) == 1


async def test_a_full_queue_fails_new_runs_at_once_with_a_clear_error(runtime_with, tmp_path):
    runtime = runtime_with(max_queued_runs=2)
    faas_id = await deploy(runtime, tmp_path, "python3", {"held.py": rendezvous.source("python3", """
        def handle(context, payload):
            meet(payload, "run")
            return "done"
        """)}, min_replicas=1, max_replicas=1)
    async with Rendezvous() as held:
        running = [asyncio.ensure_future(runtime.invoke(faas_id, {}, held.address, 0)) for _ in range(3)]
        assert await held.arrived(1, seconds=60)  # one run holds the only worker, two wait in the queue

        refused = await runtime.invoke(faas_id, {}, held.address, 0)
        unfinished = [not run.done() for run in running]
        held.open()
        finished = await asyncio.gather(*running)

    assert refused.error == {"type": "SystemError", "message": "function fn0 is at capacity: 2 runs queued",
                             "stacktrace": []}
    assert unfinished == [True] * 3  # refused while the running and queued runs were still unfinished
    assert [result.output for result in finished] == ["done"] * 3
