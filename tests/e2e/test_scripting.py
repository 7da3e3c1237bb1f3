"""The CLI in shell scripts, against a real server: exit statuses, input from standard input or a
file, YAML output, one clear line for a mistake, and the commands the repository tells of."""
import json
import re
import subprocess
import sys

import pytest
import yaml

from .conftest import DISPATCH, PYTHON_IMAGE, ROOT, Server

pytestmark = pytest.mark.e2e

SEED = PYTHON_IMAGE + """---
kind: Function
name: echo
image: py
sourcePath: echo.py
---
kind: Function
name: raises
image: py
sourcePath: raises.py
---
kind: Secret
name: scripted
secrets: {password: open}
"""
FUNCTIONS = {
    "echo.py": "def handle(ctx, payload):\n    return payload\n",
    "raises.py": "def handle(ctx, payload):\n    raise RuntimeError('the dragon woke up')\n",
    "bad_handler.py": "def handle(only_one):\n    return 1\n",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("scripting")
    for name, code in FUNCTIONS.items():
        (work / name).write_text(code)
    (work / "seed.yaml").write_text(SEED)
    running = Server(work / "data").start()
    created = running.cli("create", "-f", "seed.yaml", "-w", str(work), "--wait", timeout=300)
    assert created.returncode == 0, created.stderr
    running.work = work
    yield running
    running.stop()


def test_exec_wait_exits_1_when_the_run_fails_and_still_prints_it(server):
    done = server.cli("exec", "raises", "--wait")

    assert done.returncode == 1
    run = json.loads(done.stdout)
    assert run["status"] == "ERROR" and run["error"]["type"] == "FunctionError"
    assert done.stderr.strip().splitlines() == [
        f"run {run['name']} of function raises failed: FunctionError: the dragon woke up"]


def test_exec_wait_exits_0_when_the_run_succeeds(server):
    done = server.cli("exec", "echo", "--input", '{"a": 1}', "--wait")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"a": 1}


def test_exec_takes_its_input_from_standard_input_or_a_file(server):
    (server.work / "input.json").write_text('{"from": "file"}')

    piped = server.cli("exec", "echo", "--input", "-", "--wait", input_text='{"from": "stdin"}')
    from_file = server.cli("exec", "echo", "--input", f"@{server.work / 'input.json'}", "--wait")

    assert piped.returncode == 0 and from_file.returncode == 0, piped.stderr + from_file.stderr
    assert json.loads(piped.stdout)["output"] == {"from": "stdin"}
    assert json.loads(from_file.stdout)["output"] == {"from": "file"}


def test_exec_input_that_is_not_json_is_one_line_and_runs_nothing(server):
    before = server.http("GET", "/v1/runs?functionName=echo").json()

    done = server.cli("exec", "echo", "--input", "-", "--wait", input_text="{oops")

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "invalid --input (standard input), it must be JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"]
    assert server.http("GET", "/v1/runs?functionName=echo").json() == before


def test_emit_takes_its_payload_from_standard_input(server):
    done = server.cli("emit", "scripted.event", "--payload", "-", input_text='{"n": 1}')

    assert done.returncode == 0, done.stderr
    assert done.stdout == "event emitted\n"


def test_create_wait_exits_1_with_the_reason_when_a_function_ends_in_error(server):
    done = server.cli("create", "function", "bad-handler", str(server.work / "bad_handler.py"), "--image", "py",
                      "--wait", timeout=300)

    assert done.returncode == 1
    assert "Created function: bad-handler" in done.stdout
    assert done.stderr.startswith("function bad-handler failed: Invalid function file or handler")


def test_create_file_wait_exits_1_with_the_reason_when_a_base_image_ends_in_error(server):
    (server.work / "ps.yaml").write_text(
        "kind: BaseImage\nname: ps-base\ndockerUrl: dispatchframework/powershell-base:0.0.13\nlanguage: powershell\n")

    done = server.cli("create", "-f", str(server.work / "ps.yaml"), "--wait", timeout=300)

    assert done.returncode == 1
    assert done.stderr.startswith("base image ps-base failed: PowerShell is not available on this host")


def test_a_subscription_to_a_missing_function_is_refused_naming_it(server):
    done = server.cli("create", "subscription", "NOPE", "--event-type", "x", "--name", "to-nope")

    assert done.returncode == 1
    assert done.stderr == "[Code: 404] function NOPE not found\n"
    assert server.http("GET", "/v1/event/subscriptions/to-nope").status == 404


def test_a_subscription_to_an_existing_function_waits_until_ready(server):
    done = server.cli("create", "subscription", "echo", "--event-type", "x", "--name", "to-echo", "--wait")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["created subscription: to-echo", "Subscription to-echo is READY"]


def test_a_misspelt_kind_is_refused_before_anything_is_sent(server):
    (server.work / "typo.yaml").write_text(
        "kind: Secret\nname: typo-secret\nsecrets: {a: b}\n---\nkind: function\nname: typo\n")

    for verb in ("create", "apply", "update", "delete"):
        done = server.cli(verb, "-f", str(server.work / "typo.yaml"))
        assert done.returncode == 1, verb
        assert done.stderr.startswith("document 2: unknown kind 'function' (did you mean Function?); the kinds are ")
    assert server.http("GET", "/v1/secret/typo-secret").status == 404


@pytest.mark.parametrize("command", [
    "get functions", "get function echo", "get images", "get base-image py-base", "get runs echo", "get secrets",
    "iam get organization", "iam get policy", "iam get serviceaccount", "audit", "version",
])
def test_yaml_output_holds_what_json_output_holds(server, command):
    as_json = server.cli("-o", "json", *command.split())
    as_yaml = server.cli("-o", "yaml", *command.split())

    assert as_json.returncode == 0 and as_yaml.returncode == 0, as_json.stderr + as_yaml.stderr
    assert yaml.safe_load(as_yaml.stdout) == json.loads(as_json.stdout)
    assert not as_yaml.stdout.lstrip().startswith(("{", "["))


def test_exec_prints_the_run_as_yaml_when_asked(server):
    done = server.cli("exec", "echo", "--input", '{"a": 1}', "--wait", "-o", "yaml")

    assert done.returncode == 0, done.stderr
    run = yaml.safe_load(done.stdout)
    assert run["output"] == {"a": 1} and "status: READY" in done.stdout.splitlines()


def test_version_flag_and_python_m_dispatch(server):
    flag = server.cli("--version")
    module = subprocess.run([sys.executable, "-m", "dispatch", "version"], capture_output=True, text=True,
                            env=server.env, cwd=ROOT, timeout=60)

    assert flag.returncode == 0 and re.fullmatch(r"dispatch \d+\.\d+\.\d+\S*\n", flag.stdout)
    assert module.returncode == 0, module.stderr
    version = flag.stdout.split()[1]
    assert module.stdout.splitlines() == [f"Client: {version}", f"Server: {version}"]


def test_a_server_with_an_unknown_runtime_exits_1_in_one_line(tmp_path):
    done = subprocess.run([DISPATCH, "server", "--runtime", "dokcer", "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DISPATCH_CONFIG": str(tmp_path / "config.json")})

    assert done.returncode == 1
    assert done.stderr == ("Error: Invalid value for '--runtime':"
                           " 'dokcer' is not one of 'local', 'docker', 'kubernetes'.\n")
    assert not (tmp_path / "data").exists() and not (tmp_path / "config.json").exists()


def test_the_seed_files_header_names_the_command_that_loads_it(server):
    header = [line for line in (ROOT / "examples" / "seed.yaml").read_text().splitlines() if line.startswith("#")]
    commands = [line.lstrip("# ").split() for line in header if line.lstrip("# ").startswith("dispatch ")]
    assert len(commands) == 1, header

    done = server.cli(*commands[0][1:])  # run from the repository's root, as the header says

    assert done.returncode == 0, done.stderr
    assert "Created Function: hello-py" in done.stdout and "Created API: echo" in done.stdout
