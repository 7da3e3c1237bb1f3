"""The CLI in scripts: exit statuses that tell what happened, JSON input from standard input or a
file, YAML wherever JSON is printed, one clear line for a wrong value, and the version."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dispatch import release
from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401  (fixtures)

FAILED_RUN = {"name": "r1", "functionName": "hello", "status": "ERROR", "output": None, "executedTime": 1_700_000_100,
              "error": {"type": "FunctionError", "message": "the dragon\nwoke up", "stacktrace": []}}


def with_function(fake: FakeDispatch, name: str = "hello") -> None:
    fake.store.setdefault("/v1/function", {})[name] = {"name": name, "status": "READY", "createdTime": 1_700_000_000}


def test_exec_wait_of_a_failed_run_prints_the_run_and_exits_1(cli: Cli, fake: FakeDispatch) -> None:
    with_function(fake)
    fake.overrides[("POST", "/v1/runs")] = (200, FAILED_RUN)

    result = cli("exec", "hello", "--wait")

    assert result.exit_code == 1
    assert json.loads(result.stdout) == FAILED_RUN
    assert result.stderr == "run r1 of function hello failed: FunctionError: the dragon woke up\n"


def test_exec_wait_of_a_successful_run_exits_0(cli: Cli, fake: FakeDispatch) -> None:
    with_function(fake)

    result = cli("exec", "hello", "--wait", "--input", '{"name": "Jon"}')

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "READY" and result.stderr == ""


def test_exec_without_wait_exits_0_whatever_the_run_becomes(cli: Cli, fake: FakeDispatch) -> None:
    with_function(fake)
    fake.overrides[("POST", "/v1/runs")] = (202, {**FAILED_RUN, "status": "INITIALIZED", "error": None})

    result = cli("exec", "hello")

    assert result.exit_code == 0, result.output


def test_exec_wait_answered_before_the_run_ended_waits_for_its_outcome(cli: Cli, fake: FakeDispatch) -> None:
    with_function(fake)
    fake.overrides[("POST", "/v1/runs")] = (202, {**FAILED_RUN, "status": "CREATING", "error": None})
    fake.runs.append(FAILED_RUN)  # what the run became

    result = cli("exec", "hello", "--wait")

    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "ERROR"
    assert fake.sent("GET")[-1].path == "/v1/runs/r1" and fake.sent("GET")[-1].query == {"functionName": ["hello"]}


def test_exec_reads_its_input_from_standard_input(cli: Cli, fake: FakeDispatch) -> None:
    with_function(fake)

    result = cli("exec", "hello", "--input", "-", "--wait", input='{"name": "Jon"}\n')

    assert result.exit_code == 0, result.output
    assert fake.sent("POST")[0].body["input"] == {"name": "Jon"}


def test_exec_reads_its_input_from_the_file_after_an_at_sign(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    with_function(fake)
    (tmp_path / "in.json").write_text('[1, "two"]')

    result = cli("exec", "hello", "--input", f"@{tmp_path / 'in.json'}")

    assert result.exit_code == 0, result.output
    assert fake.sent("POST")[0].body["input"] == [1, "two"]


@pytest.mark.parametrize("given, stdin, expected", [
    ("-", "{not json", "invalid --input (standard input), it must be JSON: Expecting property name enclosed in "
                       "double quotes: line 1 column 2 (char 1)"),
    ("@missing.json", None, "cannot read --input file missing.json: No such file or directory"),
    ("{'a': 1}", None, "invalid --input, it must be JSON: Expecting property name enclosed in double quotes: "
                       "line 1 column 2 (char 1)"),
])
def test_exec_input_that_is_not_json_is_one_line_and_sends_nothing(
        cli: Cli, fake: FakeDispatch, given: str, stdin: str | None, expected: str) -> None:
    result = cli("exec", "hello", "--input", given, "--wait", input=stdin)

    assert result.exit_code == 1
    assert result.stderr == expected + "\n"
    assert fake.requests == []


def test_emit_reads_its_data_from_standard_input_or_a_file(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    fake.overrides[("POST", "/v1/event/")] = (200, {})
    (tmp_path / "data.json").write_text('{"n": 2}')

    piped = cli("emit", "user.created", "--payload", "-", input='{"n": 1}')
    from_file = cli("emit", "user.created", "--data", f"@{tmp_path / 'data.json'}")
    broken = cli("emit", "user.created", "--data", "-", input="nope")

    assert piped.exit_code == 0 and from_file.exit_code == 0, piped.output + from_file.output
    assert [r.body["data"] for r in fake.sent("POST")] == [{"n": 1}, {"n": 2}]
    assert broken.exit_code == 1
    assert broken.stderr.startswith("invalid --data (standard input), it must be JSON: Expecting value")
    assert len(fake.sent("POST")) == 2


def test_create_secret_reads_its_values_from_standard_input(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("create", "secret", "db", "-", input='{"password": "open"}')

    assert result.exit_code == 0, result.output
    assert fake.sent("POST")[0].body["secrets"] == {"password": "open"}


def _one_of_each(fake: FakeDispatch, tmp_path: Path) -> None:
    """Fixed answers, so that two invocations print the same data."""
    with_function(fake)
    fake.store["/v1/baseimage"] = {"b": {"name": "b", "dockerUrl": "x/b:1", "status": "READY"}}
    fake.store["/v1/secret"] = {"s": {"name": "s", "secrets": {"k": "v"}}}
    fake.store["/v1/api"] = {"a": {"name": "a", "function": "hello", "methods": ["GET"]}}
    fake.store["/v1/event/subscriptions"] = {"sub": {"name": "sub", "function": "hello", "eventType": "t"}}
    fake.store["/v1/event/drivers"] = {"d": {"name": "d", "type": "cron", "status": "READY"}}
    fake.store["/v1/iam/organization"] = {"o": {"name": "o", "createdTime": 1}}
    fake.store["/v1/iam/policy"] = {"p": {"name": "p", "rules": [{"subjects": ["*"]}]}}
    fake.store["/v1/iam/serviceaccount"] = {"ci": {"name": "ci"}}
    fake.runs.append({**FAILED_RUN, "status": "READY", "error": None, "output": {"ok": True}})
    fake.audit = [{"position": 1, "subject": "dispatch/admin", "action": "create", "outcome": "allowed"}]
    for path, answer in (("/v1/baseimage", {"name": "nb", "status": "INITIALIZED"}),
                         ("/v1/event/subscriptions", {"name": "ns", "status": "CREATING"}),
                         ("/v1/iam/organization", {"name": "no"}),
                         ("/v1/runs", {**FAILED_RUN, "status": "READY", "error": None})):
        fake.overrides[("POST", path)] = (201, answer)
    (tmp_path / "f.yaml").write_text("kind: BaseImage\nname: nb\ndockerUrl: x/b:1\nlanguage: python3\n")


@pytest.mark.parametrize("command", [
    "get base-images", "get base-image b", "get functions", "get function hello", "get secrets", "get secret s",
    "get secret s --all", "get apis", "get api a", "get subscriptions", "get eventdrivers", "get runs",
    "get runs hello", "get run hello r1", "get runs hello --last", "version", "audit", "context",
    "iam get organization", "iam get organization o", "iam get policy", "iam get policy p",
    "iam get serviceaccount", "iam get serviceaccount ci",
    "exec hello", "exec hello --wait", "create base-image nb x/b:1 --language python3",
    "create subscription hello --event-type t --name ns", "iam create organization no", "create -f f.yaml -w {tmp}",
    "delete base-image b", "delete subscription sub", "iam delete organization o",
])
def test_yaml_output_holds_what_json_output_holds(cli: Cli, fake: FakeDispatch, tmp_path: Path, command: str) -> None:
    printed = {}
    for output in ("json", "yaml"):
        fake.store.clear()
        fake.runs.clear()
        _one_of_each(fake, tmp_path)
        result = cli("-o", output, *command.format(tmp=tmp_path).split())
        assert result.exit_code == 0, result.output
        printed[output] = result.stdout

    assert not printed["yaml"].lstrip().startswith(("{", "["))
    assert yaml.safe_load(printed["yaml"]) == json.loads(printed["json"])


def test_exec_prints_yaml_when_asked(cli: Cli, fake: FakeDispatch) -> None:
    with_function(fake)

    result = cli("exec", "hello", "--wait", "-o", "yaml")

    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["functionName"] == "hello"
    assert "functionName: hello" in result.stdout.splitlines()


@pytest.mark.parametrize("command, path", [
    ("create base-image b x/b:1 --language python3", "/v1/baseimage/b"),
    ("create image i b", "/v1/image/i"),
    ("create function f {tmp}/f.py --image i", "/v1/function/f"),
    ("update function hello {tmp}/f.py --image i", "/v1/function/hello"),
    ("create api a hello", "/v1/api/a"),
    ("create subscription hello --event-type t --name s", "/v1/event/subscriptions/s"),
    ("create eventdriver cron --name d -s schedule=@hourly", "/v1/event/drivers/d"),
    ("create -f f.yaml -w {tmp}", "/v1/function/f"),
])
def test_create_wait_of_a_resource_ending_in_error_exits_1_with_its_reason(
        cli: Cli, fake: FakeDispatch, tmp_path: Path, command: str, path: str) -> None:
    with_function(fake)
    (tmp_path / "f.py").write_text("def handle(c, p):\n    return p\n")
    (tmp_path / "f.yaml").write_text("kind: Function\nname: f\nimage: i\nsourcePath: f.py\n")
    fake.statuses[path] = ["ERROR"]
    fake.reasons[path] = ["it went wrong"]

    result = cli(*command.format(tmp=tmp_path).split(), "--wait")

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].endswith(" failed: it went wrong")


def test_create_wait_of_a_resource_becoming_ready_exits_0(cli: Cli, fake: FakeDispatch) -> None:
    with_function(fake)
    fake.statuses["/v1/api/a"] = ["CREATING", "READY"]

    result = cli("create", "api", "a", "hello", "--wait")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["Created api: a", "Api a is READY"]


def test_a_subscription_to_a_missing_function_is_refused_and_nothing_is_created(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("create", "subscription", "NOPE", "--event-type", "x")

    assert result.exit_code == 1
    assert result.stderr == "[Code: 404] function NOPE not found\n"
    assert fake.sent("POST") == []


def test_a_subscription_is_created_when_the_caller_may_not_read_the_function(cli: Cli, fake: FakeDispatch) -> None:
    fake.overrides[("GET", "/v1/function/hello")] = (403, {"code": 403, "message": "not allowed"})

    result = cli("create", "subscription", "hello", "--event-type", "x", "--name", "s")

    assert result.exit_code == 0, result.output
    assert result.stdout == "created subscription: s\n"


def test_an_unknown_language_is_one_line_naming_the_choices_and_sends_nothing(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("create", "base-image", "b", "x/b:1", "--language", "cobol")

    assert result.exit_code == 1
    assert result.stderr == ("Error: Invalid value for '--language': 'cobol' is not one of 'python3', 'nodejs', "
                             "'java', 'powershell'.\n")
    assert fake.requests == []
    assert "--language <python3|nodejs|java|powershell>" in cli("create", "base-image", "--help").stdout


def test_version_flag_prints_this_clients_version_and_asks_no_server(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("--version")

    assert result.exit_code == 0
    assert result.stdout == f"dispatch {release()}\n"
    assert fake.requests == []


def test_python_m_dispatch_is_the_dispatch_command(fake: FakeDispatch, tmp_path: Path) -> None:
    with_function(fake)
    base = [sys.executable, "-m", "dispatch", "--config", str(tmp_path / "config.json"), "--port", str(fake.port)]

    version = subprocess.run([*base, "--version"], capture_output=True, text=True, timeout=60)
    listed = subprocess.run([*base, "get", "functions", "-o", "json"], capture_output=True, text=True, timeout=60)

    assert version.returncode == 0 and version.stdout == f"dispatch {release()}\n"
    assert listed.returncode == 0, listed.stderr
    assert [f["name"] for f in json.loads(listed.stdout)] == ["hello"]
