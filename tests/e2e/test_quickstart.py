"""The README's quickstart, typed as a user types it, against a real server process."""
import json

import pytest

pytestmark = pytest.mark.e2e

FUNCTIONS = ["hello-py", "hello-js", "slow-hello-js", "http-echo", "secret-reader", "order-total", "sizes"]


def table_rows(output: str) -> dict[str, str]:
    rows = {}
    for line in output.splitlines()[2:]:
        cells = [c.strip() for c in line.split("|")]
        rows[cells[0]] = line
    return rows


def test_seeded_base_images_images_and_functions_become_ready(seeded):
    for function in FUNCTIONS:
        assert seeded.wait_status(f"/v1/function/{function}")["status"] == "READY", function
    base_images = table_rows(seeded.cli("get", "base-images").stdout)
    assert "READY" in base_images["python3-base"] and "READY" in base_images["nodejs-base"]
    images = table_rows(seeded.cli("get", "images").stdout)
    assert all("READY" in images[name] for name in ("python3", "python3-humanize", "nodejs"))
    functions = table_rows(seeded.cli("get", "functions").stdout)
    assert all("READY" in functions[name] for name in FUNCTIONS)


def test_exec_wait_prints_the_finished_run(seeded):
    seeded.wait_status("/v1/function/hello-py")
    done = seeded.cli("exec", "hello-py", "--input", '{"name": "Jon", "place": "Winterfell"}', "--wait")
    run = json.loads(done.stdout)
    assert done.returncode == 0
    assert run["output"] == {"myField": "Hello, Jon from Winterfell"}
    assert run["status"] == "READY" and run["logs"]["stdout"] == ["greeting Jon"]
    runs = seeded.cli("get", "runs", "hello-py")
    assert run["name"] in runs.stdout


def test_nodejs_functions_run_unchanged(seeded):
    seeded.wait_status("/v1/function/hello-js")
    run = json.loads(seeded.cli("exec", "hello-js", "--input", '{"name": "Arya"}', "--wait").stdout)
    assert run["output"] == {"myField": "Hello, Arya from Nowhere"}
    slow = json.loads(seeded.cli("exec", "slow-hello-js", "--input", '{"name": "Arya"}', "--wait").stdout)
    assert slow["output"] == {"myField": "Hello, Arya, eventually"}


def test_an_api_serves_the_function_over_http(seeded):
    seeded.wait_status("/v1/function/hello-py")
    created = seeded.cli("create", "api", "post-hello", "hello-py", "--method", "POST", "--path", "/hello")
    assert created.returncode == 0 and "Created api: post-hello" in created.stdout
    seeded.wait_status("/v1/api/post-hello")
    for path in ("/hello", "/dispatch/hello"):
        answer = seeded.http("POST", path, {"name": "Jon", "place": "Winterfell"}, api=True)
        assert answer.status == 200 and answer.json() == {"myField": "Hello, Jon from Winterfell"}
        assert answer.headers["X-Dispatch-Run"]


def test_the_rest_api_follows_the_contract(seeded):
    seeded.wait_status("/v1/function/hello-py")
    function = seeded.http("GET", "/v1/function/hello-py").json()
    assert function["kind"] == "Function" and "source" not in function
    assert isinstance(function["createdTime"], int) and function["createdTime"] > 1_600_000_000
    run = seeded.http("POST", "/v1/runs?functionName=hello-py", {"blocking": True, "input": {"name": "R"}})
    assert run.status == 200 and run.json()["output"]["myField"] == "Hello, R from Nowhere"
    accepted = seeded.http("POST", "/v1/runs?functionName=hello-py", {"input": {"name": "S"}})
    assert accepted.status == 202 and accepted.json()["status"] == "INITIALIZED"
    finished = seeded.wait_status(f"/v1/runs/{accepted.json()['name']}?functionName=hello-py")
    assert finished["output"]["myField"] == "Hello, S from Nowhere"
    missing = seeded.http("GET", "/v1/function/nope")
    assert missing.status == 404 and missing.json() == {"code": 404, "message": "function nope not found"}


def test_secrets_reach_functions_and_stay_hidden(seeded):
    seeded.wait_status("/v1/function/secret-reader")
    run = json.loads(seeded.cli("exec", "secret-reader", "--wait").stdout)
    assert run["output"] == {"message": "The password has 10 characters", "keys": ["password"]}
    listed = seeded.http("GET", "/v1/secret").json()
    assert listed[0]["secrets"] == {"password": "********"}
    table = seeded.cli("get", "secrets").stdout
    assert "OpenSesame" not in table
    log = (seeded.data_dir / "dispatch.db").read_bytes()
    assert b"OpenSesame" not in log


def test_schemas_and_runtime_dependencies_work(seeded):
    seeded.wait_status("/v1/function/order-total")
    good = json.loads(seeded.cli("exec", "order-total", "--input", '{"items": [{"price": 2.5, "quantity": 2}]}',
                                 "--wait").stdout)
    assert good["output"] == {"total": 5.0}
    bad = json.loads(seeded.cli("exec", "order-total", "--input", '{"items": [{"quantity": 2}]}', "--wait").stdout)
    assert bad["status"] == "ERROR" and bad["error"]["type"] == "InputError"
    assert seeded.wait_status("/v1/function/sizes")["status"] == "READY"
    sized = json.loads(seeded.cli("exec", "sizes", "--input", '{"bytes": 123456789}', "--wait").stdout)
    assert sized["output"] == {"size": "123.5 MB"}
