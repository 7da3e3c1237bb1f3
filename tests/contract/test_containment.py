"""What a hostile function gets from inside: escape attempts written as function code, run against
the local runtime (in its sandbox) and the Docker runtime. Each asserts what the attacker gets
(nothing) and that the other function, and the runtime, keep answering."""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from dispatch.drivers.ports import DeploymentSpec, FunctionRuntime, ImageSpec, output_message, processes_message
from dispatch.handlers.adapters import runtime_from
from dispatch.schemas import source
from dispatch.settings import Settings
from tests import bubblewrap, docker_engine
from tests.contract import processes

ATTACKER = (Path(__file__).parent / "attacker.py").read_text()
ATTACKER_JS = (Path(__file__).parent / "attacker.js").read_text()
SECRETS = {"secret.key": "the sealing key", "admin.pem": "-----BEGIN PRIVATE KEY-----", "dispatch.db": "the log"}
# The Docker runtime's missing pieces, by test: its cases are expected to fail until they are in.


class Platform:
    """A runtime with a data directory holding the server's secrets, and a function to attack."""

    def __init__(self, runtime: FunctionRuntime, kind: str, data: Path, home: Path, tmp_path: Path):
        self.runtime, self.kind, self.data, self.home, self._tmp = runtime, kind, data, home, tmp_path
        self.marker = uuid.uuid4().hex
        """Written by the victim into its /tmp, /dev/shm and the server's environment."""
        self.specs: dict[str, DeploymentSpec] = {}

    async def deploy(self, name: str, code: str, language: str = "python3", **spec) -> str:
        folder = self._tmp / f"src-{name}"
        folder.mkdir()
        file = folder / (f"{name}.js" if language == "nodejs" else f"{name}.py")
        file.write_text(code)
        image = await self.runtime.build_image(ImageSpec(id=f"image-{name}", name=name, language=language,
                                                         base_url=""))
        faas_id = f"fn-{name}"
        self.specs[faas_id] = DeploymentSpec(faas_id=faas_id, name=name, organization="dispatch", language=language,
                                             image_location=image, source=source.pack(file), **spec)
        await self.runtime.deploy(self.specs[faas_id])
        return faas_id

    async def victim(self) -> str:
        return await self.deploy("victim", textwrap.dedent(f"""
            import os
            def handle(context, payload):
                for folder in ("/tmp", "/dev/shm"):
                    with open(os.path.join(folder, "victim.txt"), "w") as note:
                        note.write("{self.marker}")
                return {{"identity": {processes.PYTHON}, "source": os.path.abspath(__file__)}}
            """))

    async def attack(self, faas_id: str, attack: str, timeout_ms: int = 30_000, **payload):
        return await self.runtime.invoke(faas_id, {}, {"attack": attack, **payload}, timeout_ms)

    async def answers(self, victim: str) -> dict:
        result = await self.runtime.invoke(victim, {}, None, 30_000)
        assert result.error is None, result.error
        return result.output


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
async def platform(request, tmp_path, monkeypatch):
    data = Path(f"/tmp/dispatch-containment-{uuid.uuid4().hex[:8]}")  # as reachable as a data dir can be
    data.mkdir(mode=0o755)
    for name, text in SECRETS.items():
        (data / name).write_text(text)
    home = data / "home"
    (home / ".dispatch").mkdir(parents=True)
    (home / ".dispatch" / "config.json").write_text('{"token": "the admin token"}')
    monkeypatch.setenv("HOME", str(home))
    if request.param == "local":
        bubblewrap.required()
        runtime = runtime_from(Settings(data_dir=data, sandbox="on"))
    else:
        runtime = docker_engine.runtime_for_tests(data / "docker")
    made = Platform(runtime, request.param, data, home, tmp_path)
    monkeypatch.setenv("DISPATCH_TEST_SERVER_SECRET", made.marker)
    yield made
    await runtime.close()
    await asyncio.to_thread(shutil.rmtree, data, True)


# ---- reading


async def test_a_function_cannot_read_the_servers_secrets_or_its_cli_config(platform):
    attacker = await platform.deploy("attacker", ATTACKER)
    paths = [str(platform.data / name) for name in SECRETS] + [str(platform.home / ".dispatch" / "config.json")]

    got = await platform.attack(attacker, "read", paths=paths, folders=[str(platform.data), str(platform.home)])

    assert got.error is None, got.error
    assert got.output["files"] == {path: None for path in paths}
    assert not {*SECRETS, ".dispatch"} & {name for names in got.output["folders"].values() for name in names or ()}


async def test_a_nodejs_function_cannot_read_the_servers_secrets(platform):
    attacker = await platform.deploy("attacker", ATTACKER_JS, language="nodejs")
    paths = [str(platform.data / name) for name in SECRETS] + [str(platform.home / ".dispatch" / "config.json")]

    got = await platform.attack(attacker, "read", paths=paths)

    assert got.error is None, got.error
    assert got.output == {path: None for path in paths}


async def test_a_function_cannot_read_another_functions_source_tmp_or_shm(platform):
    victim = await platform.victim()
    seen = await platform.answers(victim)
    attacker = await platform.deploy("attacker", ATTACKER)

    got = await platform.attack(attacker, "peek", marker=platform.marker, source=seen["source"])

    assert got.error is None, got.error
    assert got.output == {"source": None, "found": []}
    assert await platform.answers(victim)


# ---- other processes


async def test_a_function_sees_and_signals_no_process_of_the_server_or_another_function(platform):
    victim = await platform.victim()
    seen = await platform.answers(victim)
    victim_pid = processes.host_pid(seen["identity"])
    attacker = await platform.deploy("attacker", ATTACKER)

    got = await platform.attack(attacker, "neighbours", marker=platform.marker, server=os.getpid(),
                                victim=victim_pid)

    assert got.error is None, got.error
    found = got.output
    assert found["environ"] == [] and found["server environ"] is None
    assert not any("pytest" in line for line in found["cmdlines"])
    assert found["init"] != Path("/proc/1/cmdline").read_bytes().decode(errors="replace")
    assert (found["signal server"], found["signal victim"]) == ("refused", "refused")
    assert processes.alive(seen["identity"])
    assert await platform.answers(victim)


async def test_a_function_killing_every_process_it_can_leaves_the_server_and_other_functions_running(platform):
    victim = await platform.victim()
    attacker = await platform.deploy("attacker", ATTACKER)

    await platform.attack(attacker, "kill everything")

    assert await platform.answers(victim)
    after = await platform.attack(attacker, "who")
    assert after.error is None


# ---- leftovers


async def test_a_setsid_or_double_forked_child_does_not_outlive_scale_to_zero_redeploy_or_deletion(platform):
    lingering = f"3600.{uuid.uuid4().int % 10 ** 9}"
    # Idle long enough for the children to be counted before the function scales to zero.
    attacker = await platform.deploy("attacker", ATTACKER, min_replicas=0, idle_seconds=2)

    for ending in ("scale to zero", "redeploy", "deletion"):
        started = await platform.attack(attacker, "linger", seconds=lingering)
        assert started.error is None, started.error
        assert len(await processes.counted_with_marker(lingering, 2)) == 2, ending
        if ending == "redeploy":
            await platform.runtime.deploy(platform.specs[attacker])
        elif ending == "deletion":
            await platform.runtime.undeploy(attacker)
        assert await _gone(lingering), f"a child of the function outlived its {ending}"


async def _gone(marker: str, seconds: float = 10) -> bool:
    for _ in range(int(seconds * 20)):
        if not processes.with_marker(marker):
            return True
        await asyncio.sleep(0.05)
    return False


# ---- limits


async def test_a_fork_bomb_fails_naming_the_process_limit_and_others_keep_answering(platform):
    victim = await platform.victim()
    attacker = await platform.deploy("attacker", ATTACKER, processes=16, max_replicas=2)

    bombing = asyncio.ensure_future(platform.attack(attacker, "fork bomb", timeout_ms=60_000))
    while not bombing.done():
        assert await platform.answers(victim)
        await asyncio.sleep(0.05)
    bombed = bombing.result()
    after = await platform.attack(attacker, "who")

    assert bombed.error["type"] == "FunctionError"
    assert bombed.error["message"] == processes_message(16)
    assert after.error is None
    assert await _settled(after.output["identity"], most=3)  # its zygote and two workers at most


async def _settled(identity: list[int], most: int) -> bool:
    for _ in range(100):
        if len(_in_namespace(identity[1])) <= most:
            return True
        await asyncio.sleep(0.05)
    return False


def _in_namespace(namespace: int) -> list[Path]:
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            if Path(folder, "ns", "pid").stat().st_ino == namespace and processes.running(int(folder.name)):
                found.append(folder)
        except OSError:
            continue
    return found


async def test_a_memory_hog_and_a_cpu_burner_fail_naming_their_limits_and_others_keep_answering(platform):
    victim = await platform.victim()
    attacker = await platform.deploy("attacker", ATTACKER, memory_mb=96, cpu_seconds=1)

    burning = asyncio.ensure_future(platform.attack(attacker, "burn"))
    while not burning.done():
        assert await platform.answers(victim)
        await asyncio.sleep(0.05)
    hog = await platform.attack(attacker, "hog")

    assert burning.result().error["message"] == "Function exceeded its CPU time limit of 1 s"
    assert hog.error["message"] == "Function exceeded its memory limit of 96 MB"
    assert (await platform.attack(attacker, "who")).error is None


@pytest.mark.parametrize("language", ["python3", "nodejs"])
async def test_a_200_mb_output_is_refused_naming_the_limit_and_the_server_does_not_grow(platform, language):
    attacker = await platform.deploy("attacker", ATTACKER_JS if language == "nodejs" else ATTACKER,
                                     language=language, memory_mb=1024, max_output_bytes=1 << 20)
    before = _rss_mb()

    huge = await platform.attack(attacker, "huge", megabytes=200)

    assert huge.error == {"type": "FunctionError", "message": output_message(1 << 20), "stacktrace": []}
    assert _rss_mb() - before < 64
    assert (await platform.attack(attacker, "who")).error is None


async def test_an_answer_written_past_the_function_server_is_cut_at_the_bound(platform):
    if platform.kind != "local":
        pytest.skip("writes on the local runtime's response pipe")
    attacker = await platform.deploy("attacker", ATTACKER, memory_mb=1024, max_output_bytes=1 << 20)
    before = _rss_mb()

    raw = await platform.attack(attacker, "raw answer", megabytes=200)

    assert raw.error["type"] == "FunctionError"
    assert raw.error["message"] == output_message(1 << 20)
    assert _rss_mb() - before < 64
    assert (await platform.attack(attacker, "who")).error is None


async def test_a_tight_print_loop_keeps_its_logs_to_the_limit(platform):
    attacker = await platform.deploy("attacker", ATTACKER)
    before = _rss_mb()

    loud = await platform.attack(attacker, "chatter", seconds=1.5)

    assert loud.error is None and loud.output > 20_000
    assert loud.stdout[-1].startswith("... log truncated: ")
    assert sum(len(line) + 1 for line in loud.stdout[:-1]) <= (1 << 20) + 1  # the cut line has no newline
    assert _rss_mb() - before < 64


def _rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


# ---- writing


async def test_a_function_writes_nowhere_but_its_tmp_and_shm(platform):
    attacker = await platform.deploy("attacker", ATTACKER)

    got = await platform.attack(attacker, "write", paths=[str(platform.data / "x"), str(platform.home / "x")])

    assert got.error is None, got.error
    written = {path for path, outcome in got.output.items() if outcome == "written"}
    assert written == {"/tmp/x", "/dev/shm/x"}


# ---- a server that is not root


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="starts the server as another user, which needs root")
async def test_with_a_server_that_is_not_root_the_sandbox_keeps_its_secrets_and_limits_its_processes(tmp_path):
    """Without root there are no users of its own per function: only the sandbox keeps the data dir."""
    bubblewrap.required()
    data = Path(f"/tmp/dispatch-unprivileged-{uuid.uuid4().hex[:8]}")
    (data / "home" / ".dispatch").mkdir(parents=True)
    (data / "home" / ".dispatch" / "config.json").write_text('{"token": "the admin token"}')
    for name, text in SECRETS.items():
        (data / name).write_text(text)
    for path in [data, *data.rglob("*")]:
        os.chown(path, NOBODY, NOBODY)
    root = Path(__file__).resolve().parents[2]
    reach = subprocess.run([*_as_nobody(), sys.executable, "-c", "import tests.contract.unprivileged"], cwd=root,
                           capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    if reach.returncode != 0:  # a checkout or virtual environment in a folder only root may enter
        shutil.rmtree(data, ignore_errors=True)
        pytest.skip(f"user {NOBODY} cannot reach this checkout and its Python: {reach.stderr.strip()[-200:]}")
    try:
        done = await asyncio.to_thread(
            subprocess.run, [*_as_nobody(), sys.executable, "-m", "tests.contract.unprivileged", str(data), "on"],
            cwd=root, capture_output=True, text=True, timeout=120,
            env={"PATH": os.environ["PATH"], "HOME": str(data / "home")})
    finally:
        shutil.rmtree(data, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])

    assert set(got["read"]["files"].values()) == {None}
    assert not set(SECRETS) & set(got["read"]["folders"][str(data)] or ())
    assert got["bomb"]["message"] == processes_message(16)
    assert got["after"] is None


def _as_nobody() -> list[str]:
    """The command prefix running a program as NOBODY, with this Python reachable though it may live
    under root's home: a mount namespace where root's home shows only the folder holding it."""
    prefix: list[str] = []
    home = Path("/root")
    if home in Path(sys.base_prefix).resolve().parents:
        inside = Path(sys.base_prefix).resolve().relative_to(home).parts[0]
        prefix = ["bwrap", "--dev-bind", "/", "/", "--perms", "0755", "--tmpfs", str(home),
                  "--ro-bind", str(home / inside), str(home / inside), "--"]
    return [*prefix, "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
