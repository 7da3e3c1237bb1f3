"""Config file contexts and the precedence flag > DISPATCH_* environment > current context > default."""
import json
from pathlib import Path

from dispatch.cli.main import hoist_global_options
from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401  (fixtures)


def write_config(cli: Cli, fake: FakeDispatch, **local: object) -> None:
    config = {
        "current": "local",
        "contexts": {
            "local": {"host": "127.0.0.1", "port": fake.port, "scheme": "http", "organization": "ctx-org",
                      "cookie": "session=secret", **local},
            "prod": {"host": "dispatch.example.com", "port": 443, "scheme": "https"},
        },
    }
    cli.config.write_text(json.dumps(config))


def test_current_context_supplies_target_organization_and_cookie(cli: Cli, fake: FakeDispatch) -> None:
    write_config(cli, fake)

    result = cli("get", "functions", target=False)

    assert result.exit_code == 0, result.output
    headers = fake.sent("GET")[0].headers
    assert headers["X-Dispatch-Org"] == "ctx-org"
    assert headers["Cookie"] == "session=secret"


def test_environment_beats_context_and_flag_beats_environment(cli: Cli, fake: FakeDispatch) -> None:
    write_config(cli, fake)

    cli("get", "functions", target=False, env={"DISPATCH_ORGANIZATION": "env-org"})
    cli("get", "functions", "--organization", "flag-org", target=False, env={"DISPATCH_ORGANIZATION": "env-org"})

    assert [r.headers["X-Dispatch-Org"] for r in fake.sent("GET")] == ["env-org", "flag-org"]


def test_environment_port_is_used_without_a_config_file(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("get", "functions", target=False, env={"DISPATCH_PORT": str(fake.port)})

    assert result.exit_code == 0, result.output
    assert len(fake.requests) == 1


def test_context_lists_contexts_marking_the_current_and_hiding_cookies(cli: Cli, fake: FakeDispatch) -> None:
    write_config(cli, fake)

    result = cli("context")

    assert result.exit_code == 0, result.output
    assert "* local" in result.stdout.splitlines()
    assert "  prod" in result.stdout.splitlines()
    assert "session=secret" not in result.stdout


def test_context_set_switches_and_saves_with_four_space_indent(cli: Cli, fake: FakeDispatch) -> None:
    write_config(cli, fake)

    result = cli("context", "set", "prod")

    assert result.stdout.strip() == "Set context to prod"
    saved = cli.config.read_text()
    assert json.loads(saved)["current"] == "prod"
    assert saved.splitlines()[1].startswith('    "current"')
    assert cli("context", "current").stdout.strip() == "prod"


def test_context_delete_removes_it_and_unknown_names_fail(cli: Cli, fake: FakeDispatch) -> None:
    write_config(cli, fake)

    deleted = cli("context", "delete", "prod")
    unknown = cli("context", "set", "prod")

    assert deleted.stdout.strip() == "Deleted context prod"
    assert "prod" not in json.loads(cli.config.read_text())["contexts"]
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == "No such context prod"


def test_invalid_config_file_is_reported_in_one_line(cli: Cli, tmp_path: Path) -> None:
    cli.config.write_text("{not json")

    result = cli("get", "functions")

    assert result.exit_code == 1
    assert "is not valid JSON" in result.stderr


def test_global_options_after_the_command_move_in_front_except_server_own() -> None:
    assert hoist_global_options(["get", "functions", "-o", "json", "--json"]) == [
        "-o", "json", "--json", "get", "functions"]
    assert hoist_global_options(["--host", "h", "exec", "f", "--organization=o"]) == [
        "--host", "h", "--organization=o", "exec", "f"]
    assert hoist_global_options(["server", "--port", "9", "-oyaml"]) == ["-oyaml", "server", "--port", "9"]
