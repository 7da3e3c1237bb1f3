"""The local runtime beyond the port's contract: zygote-forked workers, pools (replicas, concurrency,
idle keep-alive, a bounded queue), limits enforced by the OS, and the isolation of function processes."""
import asyncio
import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest

from dispatch.drivers.local import LocalRuntime
from dispatch.drivers.ports import BuildFailed, DeploymentSpec, ImageSpec
from dispatch.handlers.adapters import runtime_from
from dispatch.schemas import source
from dispatch.settings import Settings
from tests.contract import processes, rendezvous
from tests.contract.rendezvous import Rendezvous

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="workers change user only when the server runs as root")


async def deploy(runtime: LocalRuntime, tmp_path: Path, language: str, name: str, code: str, **fields) -> str:
    """Deploy the one-file function `name` with the DeploymentSpec `fields` (scale, limits); return its id."""
    folder = tmp_path / f"src-{name}"
    folder.mkdir()
    (folder / name).write_text(textwrap.dedent(code))
    image = await runtime.build_image(ImageSpec(id=f"image-{name}", name="img", language=language, base_url=""))
    faas_id = f"fn-{name.replace('.', '-')}"
    await runtime.deploy(DeploymentSpec(faas_id=faas_id, name=faas_id, organization="dispatch", language=language,
                                        image_location=image, source=source.pack(folder / name), **fields))
    return faas_id


@pytest.fixture
async def runtime(tmp_path):
    runtime = LocalRuntime(tmp_path / "runtime-data", max_workers=4, idle_seconds=300, max_queued_runs=1000)
    yield runtime
    await runtime.close()


PID_PY = f"def handle(context, payload):\n    return {processes.PYTHON}\n"


def java(code: str) -> str:
    """A Java function's source: `code`, the body of its class `Handler`, with its imports."""
    return ("import java.util.*;\nimport java.util.function.BiFunction;\n\npublic class Handler"
            " implements BiFunction<Map<String, Object>, Object, Object> {\n" + textwrap.dedent(code) + "}\n")


# ---- cold start and scaling


async def test_workers_are_forked_by_a_zygote_not_started_by_the_server(runtime, tmp_path):
    faas_id = await deploy(runtime, tmp_path, "python3", "pid.py", PID_PY)

    result = await runtime.invoke(faas_id, {}, None, 0)

    parent = int(Path(f"/proc/{processes.host_pid(result.output)}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent != os.getpid()
    assert b"dispatch.runtimes.python3.forkserver" in Path(f"/proc/{parent}/cmdline").read_bytes()


async def test_after_a_crash_the_folders_of_gone_functions_are_removed_and_deployed_ones_kept(tmp_path):
    data = tmp_path / "runtime-data"
    leftover = data / "functions" / "deleted-while-down"
    leftover.mkdir(parents=True)
    (leftover / "f.py").write_text("def handle(c, p):\n    return 1\n")
    runtime = LocalRuntime(data, max_workers=1)
    try:
        faas_id = await deploy(runtime, tmp_path, "python3", "pid.py", PID_PY)
        await runtime.reconcile({"still-stored-but-not-deployed"})
        assert not leftover.exists()
        assert (await runtime.invoke(faas_id, {}, None, 0)).error is None  # a deployed function is kept
    finally:
        await runtime.close()


@pytest.mark.parametrize("language, name, code", [
    ("python3", "pid.py", PID_PY),
    ("nodejs", "pid.js", f"module.exports = () => {processes.NODEJS};\n"),
    ("java", "Handler.java", java(processes.JAVA_METHOD + f"""
        public Object apply(Map<String, Object> context, Object payload) {{
            return {processes.JAVA};
        }}
        """)),
])
async def test_an_idle_function_scales_to_zero_and_its_next_run_starts_a_worker(runtime, tmp_path, language, name,
                                                                                 code):
    faas_id = await deploy(runtime, tmp_path, language, name, code, min_replicas=0, idle_seconds=0)
    first = await runtime.invoke(faas_id, {}, None, 0)
    for _ in range(100):
        if not processes.alive(first.output):
            break
        await asyncio.sleep(0.05)
    assert not processes.alive(first.output)

    second = await runtime.invoke(faas_id, {}, None, 0)

    assert second.error is None
    assert second.output != first.output


async def test_min_replicas_stay_warm_past_the_idle_time(runtime, tmp_path):
    faas_id = await deploy(runtime, tmp_path, "python3", "slow.py", f"""
        import time
        def handle(context, payload):
            time.sleep(0.3)
            return {processes.PYTHON}
        """, min_replicas=2, idle_seconds=0)
    await asyncio.sleep(0.3)

    results = await asyncio.gather(*(runtime.invoke(faas_id, {}, None, 0) for _ in range(2)))
    await asyncio.sleep(0.3)

    assert len({tuple(result.output) for result in results}) == 2
    assert all(processes.alive(result.output) for result in results)


async def test_runs_queue_while_workers_start_and_beyond_max_replicas(runtime, tmp_path):
    faas_id = await deploy(runtime, tmp_path, "python3", "slow.py", """
        import os, time
        def handle(context, payload):
            time.sleep(0.2)
            return os.getpid()
        """, max_replicas=2)

    results = await asyncio.gather(*(runtime.invoke(faas_id, {}, None, 0) for _ in range(6)))

    assert [result.error for result in results] == [None] * 6
    assert len({result.output for result in results}) == 2


# ---- several runs per worker


@pytest.mark.parametrize("language, name, code", [
    ("python3", "a.py", """
        import os
        async def handle(context, payload):
            print(f"start {payload['who']}")
            seen = await meet_async(payload["at"], payload["who"])
            print(f"end {payload['who']}")
            return [os.getpid(), seen]
        """),
    ("python3", "s.py", """
        import os
        def handle(context, payload):
            print(f"start {payload['who']}")
            seen = meet(payload["at"], payload["who"])
            print(f"end {payload['who']}")
            return [os.getpid(), seen]
        """),
    ("nodejs", "a.js", """
        module.exports = async (context, payload) => {
          console.log(`start ${payload.who}`);
          const seen = await meet(payload.at, payload.who);
          console.log(`end ${payload.who}`);
          return [process.pid, seen];
        };
        """),
    ("java", "Handler.java", java("""
        public Object apply(Map<String, Object> context, Object payload) {
            Map<?, ?> given = (Map<?, ?>) payload;
            System.out.println("start " + given.get("who"));
            int seen = Rendezvous.meet(given.get("at"), (String) given.get("who"));
            System.out.println("end " + given.get("who"));
            return List.of(ProcessHandle.current().pid(), seen);
        }
        """)),
])
async def test_one_worker_serves_concurrent_runs_each_with_its_own_logs(runtime, tmp_path, language, name, code):
    faas_id = await deploy(runtime, tmp_path, language, name, rendezvous.source(language, code), max_replicas=1,
                           concurrency=4)

    async with Rendezvous(quorum=4) as together:  # each run goes on only once all four have started
        results = await asyncio.gather(*(runtime.invoke(faas_id, {}, {"who": who, "at": together.address}, 0)
                                         for who in "abcd"))

    assert [result.error for result in results] == [None] * 4
    assert len({result.output[0] for result in results}) == 1
    assert [result.output[1] for result in results] == [4] * 4  # one after the other, the first would see 1
    assert [result.stdout for result in results] == [[f"start {who}", f"end {who}"] for who in "abcd"]


async def test_a_python_async_function_runs_with_concurrency_one(runtime, tmp_path):
    faas_id = await deploy(runtime, tmp_path, "python3", "a.py", """
        import asyncio
        async def handle(context, payload):
            await asyncio.sleep(0)
            return {"hello": payload}
        """)

    result = await runtime.invoke(faas_id, {}, "Jon", 0)

    assert (result.output, result.error) == ({"hello": "Jon"}, None)


# ---- limits


@pytest.mark.parametrize("language, name, code", [
    ("python3", "hog.py", """
        import os
        def handle(context, payload):
            if payload == "hog":
                hoard = [bytearray(1 << 20) for _ in range(512)]
            return os.getpid()
        """),
    ("nodejs", "hog.js", """
        module.exports = (context, payload) => {
          const hoard = [];
          if (payload === 'hog') for (let i = 0; i < 512; i++) hoard.push(new Array(1 << 17).fill(i));
          return process.pid;
        };
        """),
    ("java", "Handler.java", java("""
        public Object apply(Map<String, Object> context, Object payload) {
            List<byte[]> hoard = new ArrayList<>();
            for (int i = 0; "hog".equals(payload) && i < 512; i++) {
                hoard.add(new byte[1 << 20]);
            }
            return ProcessHandle.current().pid();
        }
        """)),
])
async def test_a_run_over_the_memory_limit_fails_naming_it_and_the_worker_is_replaced(runtime, tmp_path, language,
                                                                                      name, code):
    faas_id = await deploy(runtime, tmp_path, language, name, code, memory_mb=160)
    before = await runtime.invoke(faas_id, {}, None, 0)

    hog = await runtime.invoke(faas_id, {}, "hog", 0)
    after = await runtime.invoke(faas_id, {}, None, 0)

    assert hog.error["type"] == "FunctionError"
    assert hog.error["message"] == "Function exceeded its memory limit of 160 MB"
    assert after.error is None
    assert after.output != before.output


@pytest.mark.parametrize("language, name, code", [
    ("python3", "spin.py", """
        import os
        def handle(context, payload):
            while payload == "spin":
                pass
            return os.getpid()
        """),
    ("nodejs", "spin.js", """
        module.exports = (context, payload) => {
          while (payload === 'spin');
          return process.pid;
        };
        """),
    ("java", "Handler.java", java("""
        public Object apply(Map<String, Object> context, Object payload) {
            while ("spin".equals(payload)) {
                Thread.onSpinWait();
            }
            return ProcessHandle.current().pid();
        }
        """)),
])
async def test_a_run_over_the_cpu_limit_fails_naming_it_and_the_worker_is_replaced(runtime, tmp_path, language,
                                                                                   name, code):
    faas_id = await deploy(runtime, tmp_path, language, name, code, cpu_seconds=1)
    before = await runtime.invoke(faas_id, {}, None, 0)

    spin = await runtime.invoke(faas_id, {}, "spin", 0)
    after = await runtime.invoke(faas_id, {}, None, 0)

    assert spin.error == {"type": "FunctionError", "message": "Function exceeded its CPU time limit of 1 s",
                          "stacktrace": []}
    assert after.error is None
    assert after.output != before.output


async def test_the_cpu_limit_bounds_each_run_not_the_life_of_the_worker(runtime, tmp_path):
    faas_id = await deploy(runtime, tmp_path, "python3", "busy.py", """
        import os, time
        def handle(context, payload):
            end = time.process_time() + 0.6
            while time.process_time() < end:
                pass
            return os.getpid()
        """, cpu_seconds=1)

    results = [await runtime.invoke(faas_id, {}, None, 0) for _ in range(3)]

    assert [result.error for result in results] == [None] * 3
    assert len({result.output for result in results}) == 1


# ---- tools


async def test_java_without_a_jdk_on_path_fails_the_base_image_saying_what_to_install(runtime, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(BuildFailed, match=r"javac? was not found on PATH; install a JDK 17 or later "
                                          r"\(Debian: openjdk-17-jdk-headless\)"):
        await runtime.check_base_image("java", "dispatchframework/java-base:0.0.13")


async def test_a_pom_without_maven_on_path_fails_the_image_saying_what_to_install(runtime, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    spec = ImageSpec(id="needs-maven", name="needs-maven", language="java", base_url="",
                     manifest="<project><modelVersion>4.0.0</modelVersion></project>")

    with pytest.raises(BuildFailed, match=r"mvn was not found on PATH; install Maven .*\(Debian: maven\)"):
        await runtime.build_image(spec)


# ---- isolation


@pytest.fixture
def platform_dir():
    """A data directory another user could reach, were it not for the runtime: under /tmp, not tmp_path."""
    folder = Path(tempfile.mkdtemp(prefix="dispatch-isolation-"))
    folder.chmod(0o755)
    (folder / "dispatch.db").write_text("the event log")
    fd = os.open(folder / "secret.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"the key")
    os.close(fd)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


PROBE = """
import os

def attempt(action):
    try:
        action()
        return "allowed"
    except PermissionError:
        return "denied"

def handle(context, payload):
    return {
        "uid": os.getuid(),
        "list data dir": attempt(lambda: os.listdir(payload["data"])),
        "read event log": attempt(lambda: open(os.path.join(payload["data"], "dispatch.db")).read()),
        "read secret key": attempt(lambda: open(os.path.join(payload["data"], "secret.key")).read()),
        "list runtime": attempt(lambda: os.listdir(os.path.join(payload["data"], "runtime"))),
        "read other function": attempt(lambda: os.listdir(f"/proc/{payload['other']}/cwd")),
        "signal other function": attempt(lambda: os.kill(payload["other"], 0)),
        "server variable": os.environ.get("DISPATCH_TEST_SERVER_SECRET"),
        "own source": open(__file__).read().startswith("\\nimport os"),
    }
"""


@needs_root
async def test_without_the_sandbox_a_function_cannot_read_the_data_dir_other_functions_or_the_servers_environment(
        platform_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DISPATCH_TEST_SERVER_SECRET", "hunter2")
    runtime = runtime_from(Settings(data_dir=platform_dir, sandbox="off"))  # the users alone (test_containment.py)
    try:
        other = await deploy(runtime, tmp_path, "python3", "other.py", PID_PY)
        other_pid = (await runtime.invoke(other, {}, None, 0)).output[0]
        probe = await deploy(runtime, tmp_path, "python3", "probe.py", PROBE)

        result = await runtime.invoke(probe, {"secrets": {}}, {"data": str(platform_dir), "other": other_pid}, 0)
    finally:
        await runtime.close()

    assert result.error is None
    assert result.output.pop("uid") != 0
    assert result.output == {
        "list data dir": "denied", "read event log": "denied", "read secret key": "denied", "list runtime": "denied",
        "read other function": "denied", "signal other function": "denied", "server variable": None,
        "own source": True,
    }


@needs_root
async def test_without_the_sandbox_a_nodejs_function_cannot_read_the_data_dir(platform_dir, tmp_path):
    runtime = runtime_from(Settings(data_dir=platform_dir, sandbox="off"))
    try:
        probe = await deploy(runtime, tmp_path, "nodejs", "probe.js", """
            const fs = require('fs');
            const attempt = (action) => { try { action(); return 'allowed'; } catch (err) { return err.code; } };
            module.exports = (context, data) => [process.getuid(), attempt(() => fs.readdirSync(data)),
                                                 attempt(() => fs.readFileSync(`${data}/secret.key`))];
            """)

        result = await runtime.invoke(probe, {}, str(platform_dir), 0)
    finally:
        await runtime.close()

    assert result.error is None
    uid, listing, key = result.output
    assert uid != 0 and (listing, key) == ("EACCES", "EACCES")


@needs_root
async def test_without_the_sandbox_a_java_function_cannot_read_the_data_dir(platform_dir, tmp_path):
    runtime = runtime_from(Settings(data_dir=platform_dir, sandbox="off"))
    try:
        probe = await deploy(runtime, tmp_path, "java", "Handler.java", java("""
            static Object attempt(java.util.concurrent.Callable<?> action) {
                try {
                    Object found = action.call();
                    return found instanceof String ? found : "allowed";
                } catch (Exception denied) {
                    return denied.getClass().getSimpleName();
                }
            }

            public Object apply(Map<String, Object> context, Object data) {
                java.nio.file.Path folder = java.nio.file.Path.of((String) data);
                return List.of(attempt(() -> java.nio.file.Files.readAllLines(java.nio.file.Path.of(
                                   "/proc/self/status")).stream().filter(line -> line.startsWith("Uid:")).findFirst()
                                   .orElseThrow().split("\\\\s+")[1]),
                               attempt(() -> java.nio.file.Files.list(folder).count()),
                               attempt(() -> java.nio.file.Files.readString(folder.resolve("secret.key"))));
            }
            """))

        result = await runtime.invoke(probe, {}, str(platform_dir), 0)
    finally:
        await runtime.close()

    assert result.error is None
    uid, listing, key = result.output
    assert uid != "0" and (listing, key) == ("AccessDeniedException", "AccessDeniedException")


@needs_root
async def test_without_separate_users_workers_run_as_the_server(tmp_path):
    runtime = LocalRuntime(tmp_path / "runtime-data", separate_users=False)
    try:
        faas_id = await deploy(runtime, tmp_path, "python3", "uid.py",
                               "import os\ndef handle(c, p):\n    return os.getuid()\n")
        result = await runtime.invoke(faas_id, {}, None, 0)
    finally:
        await runtime.close()

    assert result.output == 0
