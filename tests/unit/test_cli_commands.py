"""Single-resource commands: create, get, delete, exec; output formats and waiting."""
import base64
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401  (fixtures)


def test_create_base_image_posts_body_and_prints_name(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("create", "base-image", "python3-base", "dispatchframework/python3-base:0.0.13",
                 "--language", "python3")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Created base image: python3-base"
    assert fake.sent("POST")[0].body == {
        "name": "python3-base", "dockerUrl": "dispatchframework/python3-base:0.0.13", "language": "python3", "tags": [],
    }


def test_create_function_packs_the_file_and_sends_options(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text("def handle(c, p):\n    return p\n")
    (tmp_path / "in.json").write_text('{"type": "object"}')

    result = cli("create", "function", "hello", str(tmp_path / "hello.py"), "--image", "python3",
                 "--handler", "hello.handle", "--schema-in", str(tmp_path / "in.json"),
                 "--secret", "a", "--secret", "b", "--timeout", "5000", "-a", "demo")

    assert result.exit_code == 0, result.output
    body = fake.sent("POST")[0].body
    assert body["schema"] == {"in": {"type": "object"}}
    assert (body["secrets"], body["timeout"], body["handler"]) == (["a", "b"], 5000, "hello.handle")
    assert body["tags"] == [{"key": "Application", "value": "demo"}]
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(body["source"])), mode="r:gz") as tar:
        assert tar.getnames() == ["hello.py"]


def test_create_function_from_directory_requires_handler(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    result = cli("create", "function", "hello", str(tmp_path), "--image", "python3")

    assert result.exit_code == 1
    assert f"handler is required, source path {tmp_path} is a directory" in result.stderr
    assert fake.requests == []


def test_create_api_applies_contract_defaults(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("create", "api", "post-hello", "hello-py", "--method", "post", "--path", "/hello")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Created api: post-hello"
    body = fake.sent("POST")[0].body
    assert body["methods"] == ["POST"] and body["uris"] == ["/hello"]
    assert body["protocols"] == ["http", "https"] and body["enabled"] is True
    assert body["authentication"] == "public" and body["hosts"] == []


def test_create_secret_reads_the_json_file(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"password": "open"}')

    result = cli("create", "secret", "open-sesame", str(tmp_path / "s.json"))

    assert result.exit_code == 0, result.output
    assert fake.sent("POST")[0].body["secrets"] == {"password": "open"}


def test_create_with_wait_reports_error_reason_and_exits_1(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    fake.statuses["/v1/function/hello"] = ["CREATING", "ERROR"]
    fake.reasons["/v1/function/hello"] = ["Invalid function file or handler"]
    (tmp_path / "hello.py").write_text("x")

    result = cli("create", "function", "hello", str(tmp_path / "hello.py"), "--image", "python3", "--wait")

    assert result.exit_code == 1
    assert "Created function: hello" in result.stdout
    assert "function hello failed: Invalid function file or handler" in result.stderr


def test_get_functions_prints_a_table_with_the_contract_columns(cli: Cli, fake: FakeDispatch) -> None:
    fake.store["/v1/function"] = {"hello": {"name": "hello", "functionImageURL": "img:1", "status": "READY",
                                            "createdTime": 1_700_000_000}}

    result = cli("get", "functions")

    assert result.exit_code == 0, result.output
    header, rule, row = result.stdout.splitlines()[:3]
    assert [c.strip() for c in header.split("|")] == ["NAME", "FUNCTIONIMAGE", "STATUS", "CREATED DATE"]
    assert set(rule.strip()) == {"-"}
    assert [c.strip() for c in row.split("|")][:3] == ["hello", "img:1", "READY"]
    assert "2023" in row


def test_get_one_as_json_prints_the_object_indented_by_four(cli: Cli, fake: FakeDispatch) -> None:
    fake.store["/v1/image"] = {"python3": {"name": "python3", "status": "READY"}}

    result = cli("get", "image", "python3", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "python3", "status": "READY"}
    assert result.stdout.splitlines()[1].startswith('    "name"')


def test_get_list_as_yaml_prints_an_array(cli: Cli, fake: FakeDispatch) -> None:
    fake.store["/v1/image"] = {"python3": {"name": "python3"}}

    result = cli("-o", "yaml", "get", "images")

    assert yaml.safe_load(result.stdout) == [{"name": "python3"}]


def test_invalid_output_format_is_refused_before_any_request(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("get", "images", "-o", "xml")

    assert result.exit_code == 1
    assert result.stderr.strip() == "invalid format option [yaml|json]"
    assert fake.requests == []


def test_get_secrets_hides_values_unless_all(cli: Cli, fake: FakeDispatch) -> None:
    fake.store["/v1/secret"] = {"s": {"id": "1", "name": "s", "secrets": {"password": "open"}}}

    hidden = cli("get", "secrets")
    shown = cli("get", "secret", "s", "--all")

    assert "<hidden>" in hidden.stdout and "open" not in hidden.stdout
    assert json.loads(shown.stdout)["secrets"] == {"password": "open"}


def test_get_with_application_filters_by_tag(cli: Cli, fake: FakeDispatch) -> None:
    cli("get", "functions", "-a", "demo")

    assert fake.sent("GET")[0].query == {"tags": ["Application=demo"]}


def test_get_apis_shows_lists_joined(cli: Cli, fake: FakeDispatch) -> None:
    fake.store["/v1/api"] = {"a": {"name": "a", "function": "f", "protocols": ["http", "https"], "methods": ["GET"],
                                   "hosts": [], "uris": ["/dispatch/hello"], "authentication": "public",
                                   "status": "READY", "enabled": True}}

    row = cli("get", "apis").stdout.splitlines()[2]

    assert [c.strip() for c in row.split("|")] == ["a", "f", "http, https", "GET", "", "/dispatch/hello",
                                                   "public", "READY", "true"]


def test_delete_kind_name_sends_delete(cli: Cli, fake: FakeDispatch) -> None:
    fake.store["/v1/secret"] = {"s": {"name": "s"}}

    result = cli("delete", "secrets", "s")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Deleted secret: s"
    assert fake.store["/v1/secret"] == {}


def test_exec_with_invalid_input_sends_nothing(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("exec", "hello", "--input", "{name: Jon}")

    assert result.exit_code == 1
    assert "invalid --input" in result.stderr
    assert fake.requests == []


def test_exec_posts_a_blocking_run_and_prints_it_as_json(cli: Cli, fake: FakeDispatch) -> None:
    fake.store["/v1/function"] = {"hello": {"name": "hello"}}

    result = cli("exec", "hello", "--input", '{"name": "Jon"}', "--wait", "--secret", "s")

    assert result.exit_code == 0, result.output
    request = fake.sent("POST")[0]
    assert request.query == {"functionName": ["hello"]}
    assert request.body == {"blocking": True, "input": {"name": "Jon"}, "secrets": ["s"]}
    assert json.loads(result.stdout)["status"] == "READY"
    assert result.stdout.splitlines()[1].startswith("    ")


def test_exec_defaults_to_an_async_run_with_empty_object_input(cli: Cli, fake: FakeDispatch) -> None:
    fake.store["/v1/function"] = {"hello": {"name": "hello"}}

    cli("exec", "hello")

    assert fake.sent("POST")[0].body == {"blocking": False, "input": {}, "secrets": []}


def test_exec_of_missing_function_prints_404(cli: Cli) -> None:
    result = cli("exec", "x")

    assert result.exit_code == 1
    assert result.stderr.strip() == "[Code: 404] function x not found"


def test_get_runs_last_shows_only_the_latest_run(cli: Cli, fake: FakeDispatch) -> None:
    fake.runs += [{"name": "r1", "functionName": "f", "status": "READY", "executedTime": 10},
                  {"name": "r2", "functionName": "f", "status": "ERROR", "executedTime": 20}]

    result = cli("get", "runs", "f", "--last", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "r2"
    assert fake.sent("GET")[0].query == {"functionName": ["f"]}


def test_get_runs_table_shows_each_runs_output_or_error(cli: Cli, fake: FakeDispatch) -> None:
    fake.runs += [{"name": "r1", "functionName": "f", "status": "READY", "executedTime": 10,
                   "output": {"myField": "Hello, Jon"}},
                  {"name": "r2", "functionName": "f", "status": "ERROR", "executedTime": 20,
                   "error": {"type": "FunctionError", "message": "boom " * 20}}]

    result = cli("get", "runs", "f")

    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()
    assert "OUTPUT" in rows[0]
    assert '{"myField": "Hello, Jon"}' in rows[2]
    assert "FunctionError: boom boom" in rows[3] and rows[3].rstrip().endswith("…")


def test_get_run_by_id_asks_for_that_run_of_the_function(cli: Cli, fake: FakeDispatch) -> None:
    fake.runs.append({"name": "r1", "functionName": "f", "status": "READY", "executedTime": 10})

    result = cli("get", "run", "f", "r1")

    assert result.exit_code == 0, result.output
    assert fake.sent("GET")[0].path == "/v1/runs/r1"
    assert "r1" in result.stdout.splitlines()[2]


def test_get_runs_follow_polls_with_since_and_prints_new_runs(
    cli: Cli, fake: FakeDispatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.runs.append({"name": "r1", "functionName": "f", "status": "READY", "executedTime": 10, "modifiedTime": 10})
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            fake.runs.append({"name": "r2", "functionName": "f", "status": "READY", "executedTime": 30,
                              "modifiedTime": 30})
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr("dispatch.cli.exec.time.sleep", sleep)
    result = cli("get", "runs", "f", "--follow")

    assert result.exit_code == 0, result.output
    rows = [line.split("|")[0].strip() for line in result.stdout.splitlines()[2:]]
    assert rows == ["r1", "r2"]
    assert fake.sent("GET")[1].query["since"] == ["9"]


def test_logs_image_prints_the_build_lines(cli: Cli, fake: FakeDispatch) -> None:
    fake.overrides[("GET", "/v1/image/py/logs")] = (200, {"name": "py", "status": "ERROR",
                                                          "lines": ["Collecting nope", "ERROR: no such package"]})

    result = cli("logs", "image", "py")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["Collecting nope", "ERROR: no such package"]


def test_logs_of_an_unknown_image_is_one_clear_line(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("logs", "image", "nope")

    assert result.exit_code == 1 and "no route /v1/image/nope/logs" in result.stderr


def test_create_seed_images_creates_dispatchs_four_base_images_then_their_images(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("create", "seed-images")

    assert result.exit_code == 0, result.output
    sent = [(r.path, r.body["name"]) for r in fake.sent("POST")]
    assert sent == [("/v1/baseimage", "nodejs-base"), ("/v1/baseimage", "python3-base"),
                    ("/v1/baseimage", "powershell-base"), ("/v1/baseimage", "java-base"),
                    ("/v1/image", "nodejs"), ("/v1/image", "python3"), ("/v1/image", "powershell"),
                    ("/v1/image", "java")]
    python3 = next(r.body for r in fake.sent("POST") if r.body["name"] == "python3")
    assert python3["runtimeDependencies"] == {"manifest": "requests"}
    assert "Created Image: java" in result.stdout


def test_create_seed_images_with_an_output_file_writes_the_yaml_and_sends_nothing(cli: Cli, fake: FakeDispatch,
                                                                                  tmp_path: Path) -> None:
    result = cli("create", "seed-images", "-O", str(tmp_path / "images.yaml"))

    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all((tmp_path / "images.yaml").read_text()))
    assert [(d["kind"], d["name"]) for d in documents][:4] == [
        ("BaseImage", "nodejs-base"), ("BaseImage", "python3-base"), ("BaseImage", "powershell-base"),
        ("BaseImage", "java-base")]
    assert fake.requests == []
