"""Functions in Docker containers stay in their box, on a real engine: they run as a user of their
own, write nowhere but a capped /tmp, hold no capability, cannot gain privileges, run under the
engine's seccomp profile, stop at their process limit without harming the server or other
functions, see nothing of the host's files or credentials, and cannot make the platform read more
than their output cap. Event driver containers get what does not break third-party images.
"""
import asyncio
import json
import tracemalloc
import uuid

import aiodocker
import pytest
import pytest_asyncio

from dispatch.drivers.events.docker import DRIVER_ID, DockerDrivers
from dispatch.drivers.events.ports import DriverSpec
from dispatch.drivers.ports import ImageSpec, output_message, processes_message
from tests import docker_engine
from tests.contract.test_docker_event_driver import image_of, until
from tests.contract.test_docker_runtime import containers_of, deploy

pytestmark = [pytest.mark.docker, pytest.mark.asyncio(loop_scope="module")]
MIB = 1024 * 1024

# What a function sees of itself: who it is, what it may do, and where it may write.
SELF = """
import errno, os, subprocess

def attempt(path):
    try:
        with open(path, "w") as file:
            file.write("x")
        return "written"
    except OSError as error:
        return errno.errorcode[error.errno]

def handle(context, payload):
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    return {
        "id -u": subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip(),
        "status": {key: status[key].strip() for key in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp")},
        "writes": {path: attempt(path) for path in
                   ("/tmp/scratch", "/function/planted.py", "/opt/dispatch/planted.py", "/etc/passwd", "/planted",
                    "/dev/shm/scratch")},
        "mounts": open("/proc/self/mounts").read(),
        "environment": sorted(os.environ),
        "engine socket": os.path.exists("/var/run/docker.sock") or os.path.exists("/run/docker.sock"),
    }
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine():
    docker = aiodocker.Docker(url=docker_engine.url_for_tests())
    yield docker
    await docker.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def runtime(tmp_path_factory):
    runtime = docker_engine.runtime_for_tests(tmp_path_factory.mktemp("docker-hardening"))
    yield runtime
    await runtime.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def image(runtime):
    return await runtime.build_image(ImageSpec(id="plain", name="plain", language="python3",
                                               base_url=docker_engine.BASE_IMAGE))


async def test_a_function_is_not_root_and_can_write_only_to_its_tmp(runtime, image):
    faas_id = await deploy(runtime, image, SELF)

    seen = (await runtime.invoke(faas_id, {}, None, 0)).output

    assert seen["id -u"] == "65532"
    assert seen["writes"] == {"/tmp/scratch": "written", "/function/planted.py": "EROFS",
                              "/opt/dispatch/planted.py": "EROFS", "/etc/passwd": "EROFS", "/planted": "EROFS",
                              "/dev/shm/scratch": "written"}
    await runtime.undeploy(faas_id)


async def test_a_nodejs_function_is_not_root_either(runtime, image):
    faas_id = await deploy(runtime, image, """
        const fs = require('fs');
        const attempt = (path) => {
            try { fs.writeFileSync(path, 'x'); return 'written'; } catch (e) { return e.code; }
        };
        module.exports = () => ({uid: process.getuid(), tmp: attempt('/tmp/x'), source: attempt('/function/x')});
        """, language="nodejs")

    seen = (await runtime.invoke(faas_id, {}, None, 0)).output

    assert seen == {"uid": 65532, "tmp": "written", "source": "EROFS"}
    await runtime.undeploy(faas_id)


async def test_a_function_holds_no_capability_cannot_gain_privileges_and_runs_under_seccomp(runtime, image):
    faas_id = await deploy(runtime, image, SELF)

    status = (await runtime.invoke(faas_id, {}, None, 0)).output["status"]

    assert status == {"CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapBnd": "0000000000000000",
                      "NoNewPrivs": "1", "Seccomp": "2"}  # 2: a seccomp filter is applied
    await runtime.undeploy(faas_id)


async def test_tmp_is_a_private_tmpfs_that_fills_up_at_its_cap(runtime, image):
    faas_id = await deploy(runtime, image, """
        import errno
        def handle(context, payload):
            written = 0
            try:
                with open("/tmp/big", "wb") as file:
                    while written < 200 * 1024 * 1024:
                        file.write(b"x" * 1024 * 1024)
                        file.flush()
                        written += 1024 * 1024
            except OSError as error:
                return {"written MiB": written // (1024 * 1024), "error": errno.errorcode[error.errno]}
            return {"written MiB": written // (1024 * 1024)}
        """)

    filled = await runtime.invoke(faas_id, {}, None, 0)

    assert filled.output == {"written MiB": 64, "error": "ENOSPC"}
    await runtime.undeploy(faas_id)


async def test_the_container_has_nothing_of_the_host_and_no_credentials(runtime, engine, image, monkeypatch):
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "not-for-functions")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-functions")
    faas_id = await deploy(runtime, image, SELF, memory_mb=96, cpus=0.5, processes=40)

    seen = (await runtime.invoke(faas_id, {}, None, 0)).output
    details = await engine.containers.container((await containers_of(engine, faas_id))[0]["Id"]).show()

    host = details["HostConfig"]
    assert details["Config"]["User"] == "65532:65532"
    assert details["Mounts"] == [] and not host.get("Binds") and not seen["engine socket"]
    assert (host["Privileged"], host["ReadonlyRootfs"], host["CapDrop"], host["CapAdd"]) == (False, True, ["ALL"], None)
    assert host["SecurityOpt"] == ["no-new-privileges"]  # and so no seccomp=unconfined: the default profile
    assert (host["PidMode"], host["IpcMode"], host["UTSMode"], host["CgroupnsMode"]) == ("", "private", "", "private")
    assert (host["PidsLimit"], host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (
        40, 96 * MIB, 96 * MIB, 500_000_000)
    assert "tmpfs /tmp tmpfs rw,nosuid,nodev,relatime,size=65536k" in seen["mounts"]
    assert set(seen["environment"]) <= {
        "PATH", "HOSTNAME", "HOME", "PORT", "HOST", "MAX_LOG_BYTES", "MAX_OUTPUT_BYTES", "CONCURRENCY", "HANDLER",
        "PROCESSES", "MEMORY_MB",
        "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE", "LANG", "LC_ALL", "PWD"}
    await runtime.undeploy(faas_id)


async def _ended(engine, container_id: str, seconds: float = 30) -> bool:
    for _ in range(int(seconds * 10)):
        try:
            if not (await engine.containers.container(container_id).show())["State"]["Running"]:
                return True
        except aiodocker.DockerError:
            return True  # removed
        await asyncio.sleep(0.1)
    return False


FORK_BOMB = """
import os, time

def bomb():
    while True:  # every child forks too, and keeps trying
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)

def handle(context, payload):
    forked = 0
    while True:
        try:
            pid = os.fork()
        except OSError as error:
            return {"forked": forked, "stopped by": error.strerror}
        if pid == 0:
            bomb()
        forked += 1
"""


async def test_a_fork_bomb_stops_at_the_process_limit_ends_its_container_and_others_answer(
        runtime, engine, image):
    bomb = await deploy(runtime, image, FORK_BOMB, processes=32, cpus=0.5)
    other = await deploy(runtime, image, "def handle(context, payload):\n    return payload\n")

    exploded = await runtime.invoke(bomb, {}, None, 10_000)
    bombed = [c["Id"] for c in await containers_of(engine, bomb)]  # the one that answered, unless gone already
    answers = [await runtime.invoke(other, {}, n, 5_000) for n in range(5)]
    host = await asyncio.create_subprocess_exec("true")

    assert exploded.error is None
    assert exploded.output["stopped by"] == processes_message(32)  # named by the function server
    assert exploded.output["forked"] < 32
    # its forks may still hold every slot: the container answers no further call, and goes
    assert all([await _ended(engine, container_id) for container_id in bombed])
    assert [(a.output, a.error) for a in answers] == [(n, None) for n in range(5)]
    assert await host.wait() == 0
    await runtime.undeploy(bomb)
    assert await containers_of(engine, bomb) == []
    await runtime.undeploy(other)


async def test_an_output_of_200_mb_is_refused_naming_the_limit_and_the_next_run_works(runtime, image):
    faas_id = await deploy(runtime, image, """
        def handle(context, payload):
            return "x" * payload
        """, memory_mb=2048)

    huge = await runtime.invoke(faas_id, {}, 200 * MIB, 60_000)
    after = await runtime.invoke(faas_id, {}, 5, 0)

    assert (huge.error["type"], huge.error["message"]) == ("FunctionError", output_message(6 * MIB))
    assert (after.output, after.error) == ("xxxxx", None)
    await runtime.undeploy(faas_id)


async def test_a_function_lifting_its_servers_output_cap_still_cannot_make_the_platform_read_200_mb(runtime, image):
    # The function runs in its server's process, so it can undo the server's own cap; the runtime's
    # bound on what it reads of an answer is what holds then.
    faas_id = await deploy(runtime, image, """
        import dispatch.runtimes.python3.invoke as server
        def handle(context, payload):
            server.max_output_bytes = 1 << 40
            return "x" * payload
        """, memory_mb=2048)

    tracemalloc.start()
    try:
        huge = await runtime.invoke(faas_id, {}, 200 * MIB, 60_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    after = await runtime.invoke(faas_id, {}, 5, 0)

    assert (huge.error["type"], huge.error["message"]) == ("FunctionError", output_message(6 * MIB))
    assert peak < 30 * MIB  # what the platform held while the run lasted: not the answer
    assert (after.output, after.error) == ("xxxxx", None)
    await runtime.undeploy(faas_id)


async def test_an_output_over_the_functions_own_cap_is_refused_with_its_logs(runtime, image):
    faas_id = await deploy(runtime, image, """
        def handle(context, payload):
            print("making", payload)
            return "x" * payload
        """, max_output_bytes=1000)

    within = await runtime.invoke(faas_id, {}, 990, 0)
    over = await runtime.invoke(faas_id, {}, 2000, 0)

    assert (len(within.output), within.error) == (990, None)
    assert over.error["message"] == output_message(1000)
    assert (over.output, over.stdout) == (None, ["making 2000"])
    await runtime.undeploy(faas_id)


# ---- event drivers

# A driver that reports what its container lets it be.
PROBE = """
import json, os, sys, time, urllib.request
flags = dict((a[2:].split("=", 1) + [""])[:2] for a in sys.argv[1:])
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
seen = {key: status[key].strip() for key in ("CapEff", "NoNewPrivs", "Seccomp")}
url = "http://%s/v1/event/ingest?authToken=%s" % (flags["dispatch-api-endpoint"], os.environ["AUTH_TOKEN"])
event = {"specversion": "1.0", "id": "probe", "source": "/probe", "type": "probe.seen", "data": seen}
urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(event).encode())).read()
time.sleep(60)
"""


async def test_an_event_drivers_container_holds_no_capability_and_cannot_gain_privileges(engine):
    drivers = DockerDrivers(docker_engine.url_for_tests(), namespace=f"dispatch-test-{uuid.uuid4().hex[:8]}")
    spec = DriverSpec(id=str(uuid.uuid4()), organization="o", name="probe", type="probe",
                      image=await image_of("probe", PROBE))
    events = []

    async def emit(event) -> None:
        events.append(event)

    async def report(reason, address=None) -> None:
        pass

    task = asyncio.ensure_future(drivers.run(spec, emit, report))
    try:
        await until(lambda: events)
        listed = await engine.containers.list(filters=json.dumps({"label": [f"{DRIVER_ID}={spec.id}"]}))
        host = (await listed[0].show())["HostConfig"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await drivers.close()

    assert events[0].payload == {"CapEff": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}
    assert (host["CapDrop"], host["SecurityOpt"], host["PidsLimit"], host["Privileged"]) == (
        ["ALL"], ["no-new-privileges"], 256, False)
