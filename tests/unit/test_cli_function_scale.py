"""`create function` and `update function`: a function's scale and limits from the command line."""
from pathlib import Path

from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401  (fixtures)

FLAGS = ("--min-replicas", "1", "--max-replicas", "3", "--concurrency", "8", "--idle-seconds", "60",
         "--memory-mb", "128", "--cpu-seconds", "5", "--cpus", "0.5")
SENT = ({"minReplicas": 1, "maxReplicas": 3, "concurrency": 8, "idleSeconds": 60},
        {"memoryMB": 128, "cpuSeconds": 5, "cpus": 0.5})


def _source(tmp_path: Path) -> str:
    (tmp_path / "hello.py").write_text("def handle(c, p):\n    return p\n")
    return str(tmp_path / "hello.py")


def test_create_function_sends_scale_and_limits(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    result = cli("create", "function", "hello", _source(tmp_path), "--image", "python3", *FLAGS)

    assert result.exit_code == 0, result.output
    body = fake.sent("POST")[0].body
    assert (body["scale"], body["limits"]) == SENT


def test_create_function_without_flags_leaves_scale_and_limits_to_the_server(cli: Cli, fake: FakeDispatch,
                                                                              tmp_path: Path) -> None:
    result = cli("create", "function", "hello", _source(tmp_path), "--image", "python3", "--concurrency", "2")

    assert result.exit_code == 0, result.output
    body = fake.sent("POST")[0].body
    assert (body["scale"], body["limits"]) == ({"concurrency": 2}, {})


def test_a_memory_limit_below_16_mb_is_refused_before_sending(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    result = cli("create", "function", "hello", _source(tmp_path), "--image", "python3", "--memory-mb", "8")

    assert result.exit_code != 0
    assert "--memory-mb" in result.output
    assert fake.requests == []


def test_update_function_puts_the_function_with_its_new_scale_and_limits(cli: Cli, fake: FakeDispatch,
                                                                         tmp_path: Path) -> None:
    source = _source(tmp_path)
    assert cli("create", "function", "hello", source, "--image", "python3").exit_code == 0

    result = cli("update", "function", "hello", source, "--image", "python3", *FLAGS)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Updated function: hello"
    put = fake.sent("PUT")[0]
    assert put.path == "/v1/function/hello"
    assert (put.body["scale"], put.body["limits"], put.body["image"]) == (*SENT, "python3")


def test_update_with_a_file_still_puts_each_document(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("kind: Secret\nname: s\nsecrets: {a: b}\n")
    assert cli("create", "-f", str(tmp_path / "f.yaml")).exit_code == 0

    result = cli("update", "-f", str(tmp_path / "f.yaml"))

    assert result.exit_code == 0, result.output
    assert [request.path for request in fake.sent("PUT")] == ["/v1/secret/s"]
