"""The Docker runtime on a real engine: images with dependencies, containers per function with their
pools, limits, timeouts and scale to zero, and nothing left behind after undeploy, close or a crash.

The shared runtime contract (test_runtime.py) runs against Docker too; these are the promises only
containers make. One image, built once for the module, serves every test.
"""
import asyncio
import functools
import http.server
import json
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
import zipfile
from pathlib import Path

import aiodocker
import pytest
import pytest_asyncio

from dispatch.drivers.docker import DockerRuntime
from dispatch.drivers.ports import BuildFailed, DeploymentSpec, ImageSpec, NotDeployed
from dispatch.schemas import source
from tests import docker_engine
from tests.contract import rendezvous
from tests.contract.rendezvous import Rendezvous

pytestmark = [pytest.mark.docker, pytest.mark.asyncio(loop_scope="module")]
FAAS_ID = "io.dispatchframework.faasId"
NAMESPACE = "io.dispatchframework.namespace"
JON = {"name": "Jon", "place": "Winterfell"}


@pytest.fixture(scope="module")
def wheel_url(tmp_path_factory):
    """A pure-Python wheel served over HTTP on 127.0.0.1, as a package index would serve it."""
    folder = tmp_path_factory.mktemp("wheels")
    dist_info = "winterfell_words-1.0.dist-info"
    files = {"winterfell_words/__init__.py": "def greet(p):\n    return f\"Hello, {p['name']} from {p['place']}\"\n",
             f"{dist_info}/METADATA": "Metadata-Version: 2.1\nName: winterfell-words\nVersion: 1.0\n",
             f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    with zipfile.ZipFile(folder / "winterfell_words-1.0-py3-none-any.whl", "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr(f"{dist_info}/RECORD", "".join(f"{name},,\n" for name in [*files, f"{dist_info}/RECORD"]))
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *args: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/winterfell_words-1.0-py3-none-any.whl"
    server.shutdown()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine():
    docker = aiodocker.Docker(url=docker_engine.url_for_tests())
    yield docker
    await docker.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def runtime(tmp_path_factory):
    runtime = docker_engine.runtime_for_tests(tmp_path_factory.mktemp("docker-runtime"))
    yield runtime
    await runtime.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def image(runtime, wheel_url):
    """The Python image of the module: the test base image plus a runtime dependency."""
    lines: list[str] = []
    spec = ImageSpec(id="words", name="words", language="python3", base_url=docker_engine.BASE_IMAGE,
                     manifest=f"winterfell-words @ {wheel_url}\n")
    location = await runtime.build_image(spec, lines.append)
    return location, lines


async def deploy(runtime, image_location: str, code: str, language: str = "python3", **scale) -> str:
    faas_id = f"fn-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("main.js" if language == "nodejs" else "main.py")
        path.write_text(textwrap.dedent(code))
        await runtime.deploy(DeploymentSpec(faas_id=faas_id, name=faas_id, organization="dispatch", language=language,
                                            image_location=image_location, source=source.pack(path), **scale))
    return faas_id


async def containers_of(engine, faas_id: str) -> list[dict]:
    listed = await engine.containers.list(all=True, filters=json.dumps({"label": [f"{FAAS_ID}={faas_id}"]}))
    return [container._container for container in listed]


async def eventually(predicate, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while True:
        value = await predicate()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


# Which container ran the call: its id, as the engine mounts its files (the hostname is the host's
# when containers share the host's network).
WHO = """
import re, time
def handle(context, payload):
    time.sleep(payload or 0)
    return re.search(r"/containers/([0-9a-f]{64})/", open("/proc/self/mountinfo").read()).group(1)[:12]
"""


# ---- images


async def test_an_image_installs_its_runtime_dependency_and_keeps_its_build_log(runtime, image):
    location, lines = image
    faas_id = await deploy(runtime, location, """
        import winterfell_words
        def handle(context, payload):
            return winterfell_words.greet(payload)
        """)

    result = await runtime.invoke(faas_id, {}, JON, 0)

    assert (result.output, result.error) == ("Hello, Jon from Winterfell", None)
    assert any("Successfully installed winterfell-words-1.0" in line for line in lines)
    kept = (runtime._logs_dir / "image-words.log").read_text()
    assert "Successfully installed winterfell-words-1.0" in kept


async def test_a_failing_dependency_fails_the_build_with_the_end_of_its_log(runtime, wheel_url):
    missing = wheel_url.replace("winterfell_words-1.0", "nothing_here-1.0")
    spec = ImageSpec(id="broken", name="broken", language="python3", base_url=docker_engine.BASE_IMAGE,
                     manifest=f"nothing-here @ {missing}\n")

    with pytest.raises(BuildFailed, match="404"):
        await runtime.build_image(spec)


async def test_a_system_package_without_a_version_fails_the_build(runtime):
    spec = ImageSpec(id="sys", name="sys", language="python3", base_url=docker_engine.BASE_IMAGE,
                     system_packages=(("curl", ""),))

    with pytest.raises(BuildFailed, match="invalid system package: empty name or version"):
        await runtime.build_image(spec)


async def test_a_local_base_image_passes_the_check_and_a_missing_one_fails_with_the_pull_error(runtime):
    await runtime.check_base_image("nodejs", docker_engine.BASE_IMAGE)
    await runtime.check_base_image("python3", docker_engine.BASE_IMAGE)

    with pytest.raises(BuildFailed, match="cannot pull 127.0.0.1:9/nowhere/python3-base:1"):
        await runtime.check_base_image("python3", "127.0.0.1:9/nowhere/python3-base:1")


async def test_a_java_base_image_needs_a_jdk(runtime):
    java_base = await asyncio.to_thread(docker_engine.java_base_image, docker_engine.url_for_tests())

    await runtime.check_base_image("java", java_base)

    with pytest.raises(BuildFailed, match=f"javac -version failed in {docker_engine.BASE_IMAGE} .*javac: not found"):
        await runtime.check_base_image("java", docker_engine.BASE_IMAGE)


async def test_a_java_pom_fails_the_image_clearly_when_the_base_image_has_no_maven(runtime):
    manifest = ('<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
                "<groupId>io.example</groupId><artifactId>image</artifactId><version>1.0</version></project>")
    spec = ImageSpec(id="java-pom", name="java-pom", language="java", base_url="", manifest=manifest)

    with pytest.raises(BuildFailed, match="mvn is not in the base image: add Maven to it"):
        await runtime.build_image(spec)


async def test_a_function_failing_its_handler_check_leaves_its_image_and_the_base_image(runtime, engine, image):
    with pytest.raises(BuildFailed, match="Invalid function file or handler"):
        await deploy(runtime, image[0], "def handle(payload):\n    return payload\n")

    await engine.images.inspect(image[0])
    await engine.images.inspect(docker_engine.BASE_IMAGE)


async def test_remove_image_removes_it_from_the_engine(runtime, engine):
    location = await runtime.build_image(ImageSpec(id="gone", name="gone", language="nodejs",
                                                   base_url=docker_engine.BASE_IMAGE))
    await engine.images.inspect(location)

    await runtime.remove_image(location)

    with pytest.raises(aiodocker.DockerError) as missing:
        await engine.images.inspect(location)
    assert missing.value.status == 404


# ---- containers


async def test_deploy_names_the_function_image_its_containers_run(runtime, engine, image):
    faas_id = f"fn-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "main.py").write_text("def handle(context, payload):\n    return 1\n")
        location = await runtime.deploy(DeploymentSpec(faas_id=faas_id, name="named", organization="dispatch",
                                                       language="python3", image_location=image[0],
                                                       source=source.pack(Path(folder) / "main.py")))

    running = await containers_of(engine, faas_id)

    assert faas_id in location and running
    assert (await engine.containers.container(running[0]["Id"]).show())["Config"]["Image"] == location
    await runtime.undeploy(faas_id)


async def test_each_function_runs_in_labelled_containers_with_its_limits(runtime, engine, image):
    faas_id = await deploy(runtime, image[0], WHO, min_replicas=2, memory_mb=64, cpus=0.5)

    running = await containers_of(engine, faas_id)

    assert len(running) == 2
    details = await engine.containers.container(running[0]["Id"]).show()
    assert details["Config"]["Labels"][NAMESPACE] == runtime.namespace
    assert (details["HostConfig"]["Memory"], details["HostConfig"]["NanoCpus"]) == (64 * 1024 * 1024, 500_000_000)
    await runtime.undeploy(faas_id)


async def test_a_run_over_its_memory_limit_fails_naming_the_limit_and_the_next_run_works(runtime, image):
    faas_id = await deploy(runtime, image[0], """
        def handle(context, payload):
            hog = bytearray(payload * 1024 * 1024)
            return len(hog)
        """, memory_mb=48)

    killed = await runtime.invoke(faas_id, {}, 400, 0)
    after = await runtime.invoke(faas_id, {}, 1, 0)

    assert killed.error["type"] == "FunctionError"
    assert killed.error["message"] == "Function exceeded its memory limit of 48 MB"
    assert (after.output, after.error) == (1024 * 1024, None)
    await runtime.undeploy(faas_id)


async def test_a_run_over_its_cpu_time_fails_naming_the_limit_and_the_next_run_works(runtime, image):
    faas_id = await deploy(runtime, image[0], """
        import time
        def handle(context, payload):
            until = time.monotonic() + payload
            while time.monotonic() < until:
                pass
            return payload
        """, cpu_seconds=1)

    killed = await runtime.invoke(faas_id, {}, 30, 0)
    after = await runtime.invoke(faas_id, {}, 0.1, 0)

    assert killed.error == {"type": "FunctionError", "message": "Function exceeded its CPU time limit of 1 s",
                            "stacktrace": []}
    assert (after.output, after.error) == (0.1, None)
    await runtime.undeploy(faas_id)


async def test_a_run_over_its_timeout_replaces_its_container(runtime, engine, image):
    faas_id = await deploy(runtime, image[0], WHO)
    first = await runtime.invoke(faas_id, {}, 0, 0)

    late = await runtime.invoke(faas_id, {}, 30, 300)
    after = await runtime.invoke(faas_id, {}, 0, 0)

    assert late.error == {"type": "FunctionError", "message": "Function execution exceeded the timeout",
                          "stacktrace": []}
    assert after.error is None and after.output != first.output
    ids = [c["Id"][:12] for c in await eventually(lambda: _only_one(engine, faas_id))]
    assert first.output not in ids
    await runtime.undeploy(faas_id)


async def _only_one(engine, faas_id: str) -> list[dict]:
    found = await containers_of(engine, faas_id)
    return found if len(found) == 1 else []


async def test_a_container_killed_between_runs_is_replaced_without_failing_a_run(runtime, engine, image):
    faas_id = await deploy(runtime, image[0], WHO)
    first = await runtime.invoke(faas_id, {}, 0, 0)
    await engine.containers.container(first.output).kill()

    second = await runtime.invoke(faas_id, {}, 0, 0)

    assert second.error is None and second.output != first.output
    await runtime.undeploy(faas_id)


async def test_runs_beyond_max_replicas_wait_for_a_free_container(runtime, image):
    faas_id = await deploy(runtime, image[0], rendezvous.source("python3", """
        import re
        def handle(context, payload):
            meet(payload, "run")
            return re.search(r"/containers/([0-9a-f]{64})/", open("/proc/self/mountinfo").read()).group(1)[:12]
        """), min_replicas=1, max_replicas=2)

    async with Rendezvous() as held:
        runs = [asyncio.ensure_future(runtime.invoke(faas_id, {}, held.address, 0)) for _ in range(4)]
        assert await held.arrived(2, seconds=60)
        unfinished = [not run.done() for run in runs]
        held.open()
        results = await asyncio.gather(*runs)

    assert unfinished == [True] * 4  # the two beyond max_replicas waited, they were not refused
    assert [r.error for r in results] == [None] * 4
    assert len({r.output for r in results}) == 2
    assert held.most_at_once == 2
    await runtime.undeploy(faas_id)


async def test_an_idle_function_scales_to_zero_and_back(runtime, engine, image):
    faas_id = await deploy(runtime, image[0], WHO, min_replicas=0, idle_seconds=1)
    assert len(await containers_of(engine, faas_id)) == 1

    assert await eventually(lambda: _none_of(engine, faas_id), seconds=5)
    result = await runtime.invoke(faas_id, {}, 0, 0)

    assert result.error is None
    assert [c["Id"][:12] for c in await containers_of(engine, faas_id)] == [result.output]
    await runtime.undeploy(faas_id)


async def _none_of(engine, faas_id: str) -> bool:
    return not await containers_of(engine, faas_id)


async def test_undeploy_removes_the_containers_and_the_function_image(runtime, engine, image):
    faas_id = await deploy(runtime, image[0], WHO, min_replicas=2)
    function_image = (await containers_of(engine, faas_id))[0]["Image"]

    await runtime.undeploy(faas_id)

    assert await containers_of(engine, faas_id) == []
    with pytest.raises(aiodocker.DockerError):
        await engine.images.inspect(function_image)
    with pytest.raises(NotDeployed):
        await runtime.invoke(faas_id, {}, 0, 0)


async def test_close_leaves_no_container_of_the_runtime(engine, image, tmp_path):
    closing = docker_engine.runtime_for_tests(tmp_path)
    await deploy(closing, image[0], WHO, min_replicas=2)
    await deploy(closing, image[0], "module.exports = () => 'hi';", language="nodejs")

    await closing.close()

    namespace = {"label": [f"{NAMESPACE}={closing.namespace}"]}
    assert await engine.containers.list(all=True, filters=json.dumps(namespace)) == []
    assert await engine.images.list(filters=namespace) == []


# ---- restarts


CRASHING = """
import asyncio, sys
from pathlib import Path
from dispatch.drivers.docker import DockerRuntime
from dispatch.drivers.ports import DeploymentSpec
from dispatch.schemas import source

async def main(url, namespace, image, folder):
    runtime = DockerRuntime(Path(folder), namespace=namespace, url=url, network_mode="host")
    (Path(folder) / "who.py").write_text("def handle(c, p):\\n    return 1\\n")
    await runtime.deploy(DeploymentSpec(faas_id="crashes", name="crashes", organization="dispatch",
                                        language="python3", image_location=image, min_replicas=2,
                                        source=source.pack(Path(folder) / "who.py")))
    print("deployed", flush=True)
    await asyncio.sleep(600)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_containers_of_a_crashed_server_are_removed_when_the_next_one_starts(engine, image, tmp_path):
    namespace = f"{docker_engine.TEST_NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}"
    url = docker_engine.url_for_tests()
    crashing = subprocess.Popen([sys.executable, "-c", CRASHING, url, namespace, image[0], str(tmp_path)],
                                stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert "deployed\n" in await asyncio.to_thread(_lines_until, crashing.stdout, "deployed\n")
    finally:
        crashing.send_signal(signal.SIGKILL)
        crashing.wait()
    assert len(await containers_of(engine, "crashes")) == 2

    restarted = DockerRuntime(tmp_path, namespace=namespace, url=url)
    await restarted.start()

    assert await containers_of(engine, "crashes") == []
    assert await engine.images.list(filters={"label": [f"{NAMESPACE}={namespace}"]}) == []
    await restarted.close()


def _lines_until(stream, wanted: str) -> list[str]:
    lines = []
    while not lines or lines[-1] not in (wanted, ""):
        lines.append(stream.readline())
    return lines


async def test_an_installation_restarting_removes_what_it_ran_before(engine, image, tmp_path):
    before = docker_engine.runtime_for_tests(tmp_path, owner="installation-a")
    faas_id = await deploy(before, image[0], WHO)

    after = docker_engine.runtime_for_tests(tmp_path, owner="installation-a", namespace=before.namespace)
    await after.start()

    assert await containers_of(engine, faas_id) == []
    await before.close()
    await after.close()
