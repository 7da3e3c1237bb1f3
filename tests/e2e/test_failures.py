"""Bad input and failing functions: clear errors, no lost runs, a server that keeps serving."""
import json
import textwrap

import pytest

from .conftest import PYTHON_IMAGE, Server

pytestmark = pytest.mark.e2e

FUNCTIONS = {
    "raises.py": "def handle(ctx, payload):\n    raise RuntimeError('the dragon woke up')\n",
    "forever.py": "import time\n\ndef handle(ctx, payload):\n    time.sleep(3600)\n",
    "chatty.py": "def handle(ctx, payload):\n    print('x' * 5_000_000)\n    return 'done'\n",
    "quits.py": "import os\n\ndef handle(ctx, payload):\n    os._exit(3)\n",
    "bad_handler.py": "def handle(only_one):\n    return 1\n",
    "hello.py": "def handle(ctx, payload):\n    return {'hello': payload.get('name')}\n",
}
SEED = PYTHON_IMAGE + """---
kind: Function
name: raises
image: py
sourcePath: raises.py
---
kind: Function
name: forever
image: py
sourcePath: forever.py
timeout: 1000
---
kind: Function
name: chatty
image: py
sourcePath: chatty.py
---
kind: Function
name: quits
image: py
sourcePath: quits.py
---
kind: Function
name: bad-handler
image: py
sourcePath: bad_handler.py
---
kind: Function
name: hello
image: py
sourcePath: hello.py
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("failures")
    for name, code in FUNCTIONS.items():
        (work / name).write_text(code)
    (work / "seed.yaml").write_text(SEED)
    running = Server(work / "data").start()
    created = running.cli("create", "-f", "seed.yaml", "-w", str(work))
    assert created.returncode == 0, created.stderr
    running.work = work
    yield running
    running.stop()


def exec_json(server, function: str, payload: str = "{}", failed: bool = False) -> dict:
    """The run `exec --wait` prints; it exits 1 when the run failed, 0 when it succeeded."""
    done = server.cli("exec", function, "--input", payload, "--wait", timeout=120)
    assert done.returncode == (1 if failed else 0), done.stderr
    run = json.loads(done.stdout)
    if failed:
        assert done.stderr.startswith(f"run {run['name']} of function {function} failed: ")
    return run


def test_malformed_yaml_names_the_document_and_line(server):
    bad = server.work / "bad.yaml"
    bad.write_text("kind: Secret\nname: ok\n---\nkind: Secret\nname: [unclosed\n")
    done = server.cli("create", "-f", str(bad))
    assert done.returncode == 1
    assert "document 2" in done.stderr and "line" in done.stderr
    assert server.http("GET", "/v1/secret/ok").status == 404  # nothing half-applied


def test_an_unknown_kind_is_refused_and_nothing_is_created(server):
    odd = server.work / "odd.yaml"
    odd.write_text("kind: Secret\nname: before-spaceship\nsecrets: {a: b}\n---\nkind: Spaceship\nname: x\n")
    done = server.cli("create", "-f", str(odd))
    assert done.returncode == 1
    assert done.stderr.startswith("document 2: unknown kind 'Spaceship'; the kinds are API, Application, BaseImage")
    assert server.http("GET", "/v1/secret/before-spaceship").status == 404


def test_a_missing_source_path_is_a_clear_error(server):
    missing = server.work / "missing.yaml"
    missing.write_text("kind: Function\nname: ghost\nimage: py\nsourcePath: nowhere.py\n")
    done = server.cli("create", "-f", str(missing), "-w", str(server.work))
    assert done.returncode == 1 and "nowhere.py" in done.stderr


def test_invalid_json_input_is_refused_before_sending(server):
    done = server.cli("exec", "hello", "--input", "{not json", "--wait")
    assert done.returncode == 1 and "JSON" in done.stderr


def test_a_duplicate_name_is_a_409(server):
    done = server.cli("create", "-f", "seed.yaml", "-w", str(server.work))
    assert done.returncode == 1 and "[Code: 409] base image py-base already exists" in done.stderr


def test_exec_of_unknown_and_not_ready_functions(server):
    unknown = server.cli("exec", "nope", "--wait")
    assert unknown.returncode == 1 and "[Code: 404] function nope not found" in unknown.stderr
    server.wait_status("/v1/function/bad-handler")
    broken = server.cli("exec", "bad-handler", "--wait")
    assert broken.returncode == 1
    assert ("[Code: 409] function bad-handler is not READY (status ERROR: Invalid function file or handler"
            in broken.stderr)


@pytest.mark.parametrize("function, kind, words", [
    ("raises", "FunctionError", "the dragon woke up"),
    ("forever", "FunctionError", "exceeded the timeout"),
    ("quits", "SystemError", "exited with code 3"),
])
def test_a_failing_function_is_a_recorded_run_and_the_server_keeps_serving(server, function, kind, words):
    server.wait_status(f"/v1/function/{function}")
    run = exec_json(server, function, failed=True)
    assert run["status"] == "ERROR" and run["error"]["type"] == kind and words in run["error"]["message"]
    assert run["finishedTime"] > 0
    recorded = server.http("GET", f"/v1/runs/{run['name']}?functionName={function}").json()
    assert recorded["status"] == "ERROR"
    assert exec_json(server, "hello", '{"name": "after"}')["output"] == {"hello": "after"}
    assert exec_json(server, function, failed=True)["error"]["type"] == kind  # a fresh worker took over


def test_megabytes_of_output_are_capped_not_fatal(server):
    server.wait_status("/v1/function/chatty")
    run = exec_json(server, "chatty")
    assert run["status"] == "READY" and run["output"] == "done"
    assert sum(len(line) for line in run["logs"]["stdout"]) < 2_000_000
    assert "truncated" in run["logs"]["stdout"][-1]


def test_everything_survives_a_restart(tmp_path):
    (tmp_path / "hello.py").write_text(FUNCTIONS["hello.py"])
    (tmp_path / "seed.yaml").write_text(PYTHON_IMAGE + textwrap.dedent("""
        ---
        kind: Function
        name: hello
        image: py
        sourcePath: hello.py
        ---
        kind: Secret
        name: keep
        secrets: {k: v}
        """))
    server = Server(tmp_path / "data")
    server.start()
    try:
        assert server.cli("create", "-f", "seed.yaml", "-w", str(tmp_path)).returncode == 0
        server.wait_status("/v1/function/hello")
        before = exec_json(server, "hello", '{"name": "before"}')
    finally:
        server.stop()
    server.start()
    try:
        function = server.http("GET", "/v1/function/hello").json()
        assert function["status"] == "READY"
        after = exec_json(server, "hello", '{"name": "after"}')
        assert after["output"] == {"hello": "after"} and after["faasId"] == before["faasId"]
        names = {r["name"] for r in server.http("GET", "/v1/runs?functionName=hello").json()}
        assert names == {before["name"], after["name"]}
        assert server.http("GET", "/v1/secret/keep").json()["secrets"] == {"k": "v"}
    finally:
        server.stop()


def test_a_second_server_on_the_same_data_directory_is_refused(server):
    other = Server(server.data_dir)
    with pytest.raises(RuntimeError, match="is in use by a running dispatch server"):
        other.start(timeout=30)
    rebuild = server.cli("admin", "rebuild-views", "--data-dir", str(server.data_dir))
    assert rebuild.returncode == 1 and "stop it first" in rebuild.stderr
    assert server.http("GET", "/healthz").status == 200
