"""What goes over the wire: headers, error bodies, unreachable servers, the target's precedence."""
import json
import socket

from typer.testing import CliRunner

from dispatch.cli.main import app
from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401  (fixtures)


def test_requests_carry_empty_organization_and_unset_cookie_by_default(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("get", "functions")

    assert result.exit_code == 0, result.output
    request = fake.sent("GET")[0]
    assert request.headers["X-Dispatch-Org"] == ""
    assert request.headers["Cookie"] == "unset"
    assert request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in request.headers


def test_organization_flag_is_sent_as_header_even_after_the_command(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("get", "functions", "--organization", "stark")

    assert result.exit_code == 0, result.output
    assert fake.sent("GET")[0].headers["X-Dispatch-Org"] == "stark"


def test_token_is_sent_as_bearer_instead_of_cookie(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("--token", "abc.def.ghi", "get", "images")

    assert result.exit_code == 0, result.output
    headers = fake.sent("GET")[0].headers
    assert headers["Authorization"] == "Bearer abc.def.ghi"
    assert "Cookie" not in headers


def test_error_body_is_printed_with_its_code_and_exits_1(cli: Cli) -> None:
    result = cli("get", "function", "x")

    assert result.exit_code == 1
    assert result.stderr.strip() == "[Code: 404] function x not found"


def test_error_code_is_taken_from_the_body_not_the_http_status(cli: Cli, fake: FakeDispatch) -> None:
    fake.overrides[("GET", "/v1/image")] = (422, {"code": 422, "message": "a; b"})
    fake.overrides[("GET", "/v1/function")] = (400, {"code": 602, "message": "legacy"})

    assert cli("get", "images").stderr.strip() == "[Code: 422] a; b"
    assert cli("get", "functions").stderr.strip() == "[Code: 602] legacy"


def test_connection_refused_names_the_url_and_suggests_dispatch_server(tmp_path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    result = CliRunner().invoke(app, ["--config", str(tmp_path / "c.json"), "--port", str(free_port),
                                      "get", "functions"])

    assert result.exit_code == 1
    assert f"http://127.0.0.1:{free_port}" in result.stderr
    assert "dispatch server" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_version_prints_client_and_server_and_sends_no_organization(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("version")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("Client: ")
    assert result.stdout.splitlines()[1] == "Server: 0.2.0-test"
    assert "X-Dispatch-Org" not in fake.sent("GET")[0].headers
    assert "Cookie" not in fake.sent("GET")[0].headers


def test_version_json_is_an_object_of_client_and_server(cli: Cli) -> None:
    result = cli("version", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["server"] == "0.2.0-test"
    assert set(json.loads(result.stdout)) == {"client", "server"}
