"""`dispatch server` and `dispatch admin`, against a stand-in for `dispatch.server`."""
import sys
import types
from pathlib import Path

import pytest

import dispatch
from dispatch.settings import Settings
from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401  (fixtures)


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Records what the CLI hands to the embedded server; `serve` calls back as once listening."""
    seen = types.SimpleNamespace(settings=None, serves=0)
    module = types.ModuleType("dispatch.server")

    async def serve(settings: Settings, on_ready=None) -> None:  # type: ignore[no-untyped-def]
        seen.settings = settings
        seen.serves += 1
        if on_ready is not None:
            await on_ready(None)

    async def rebuild_views(settings: Settings) -> dict:
        seen.settings = settings
        return {"functions": 3, "runs": 12}

    module.serve = serve  # type: ignore[attr-defined]
    module.rebuild_views = rebuild_views  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dispatch.server", module)
    monkeypatch.setattr(dispatch, "server", module, raising=False)
    return seen


def test_server_builds_settings_from_its_options(cli: Cli, embedded: types.SimpleNamespace, tmp_path: Path) -> None:
    result = cli("server", "--port", "9123", "--api-port", "9124", "--data-dir", str(tmp_path),
                 "--organization", "stark", target=False)

    assert result.exit_code == 0, result.output
    settings = embedded.settings
    assert (settings.host, settings.port, settings.api_port) == ("127.0.0.1", 9123, 9124)
    assert (settings.data_dir, settings.default_organization) == (tmp_path, "stark")
    assert "export DISPATCH_HOST=127.0.0.1 DISPATCH_PORT=9123" in result.stdout
    assert "curl -X POST 127.0.0.1:9124/stark/hello" in result.stdout


def test_server_seeds_documents_through_its_own_api_and_keeps_existing_ones(
    cli: Cli, fake: FakeDispatch, embedded: types.SimpleNamespace, tmp_path: Path
) -> None:
    fake.store["/v1/secret"] = {"open-sesame": {"name": "open-sesame"}}
    (tmp_path / "hello.py").write_text("def handle(c, p):\n    return p\n")
    (tmp_path / "seed.yaml").write_text(
        "kind: Secret\nname: open-sesame\nsecrets: {}\n---\n"
        "kind: Function\nname: hello-py\nimage: python3\nsourcePath: hello.py\n"
    )

    result = cli("server", "--port", str(fake.port), "--skip-auth", "--seed", str(tmp_path / "seed.yaml"), target=False)

    assert result.exit_code == 0, result.output
    assert "Secret open-sesame already exists" in result.stdout
    assert "Created Function: hello-py" in result.stdout
    assert "dispatch get functions" in result.stdout
    assert all(r.headers["X-Dispatch-Org"] == "dispatch" for r in fake.requests)
    assert "hello-py" in fake.store["/v1/function"]


def test_server_refuses_a_broken_seed_file_before_starting(
    cli: Cli, embedded: types.SimpleNamespace, tmp_path: Path
) -> None:
    (tmp_path / "seed.yaml").write_text("kind: Function\nname: f\nimage: i\nsourcePath: gone.py\n")

    result = cli("server", "--seed", str(tmp_path / "seed.yaml"), target=False)

    assert result.exit_code == 1
    assert "document 1 (Function f)" in result.stderr
    assert embedded.serves == 0


def test_server_refuses_an_unknown_runtime_in_one_line_before_starting(
    cli: Cli, embedded: types.SimpleNamespace, tmp_path: Path
) -> None:
    result = cli("server", "--runtime", "dokcer", "--data-dir", str(tmp_path), target=False)

    assert result.exit_code == 1
    assert result.stderr == ("Error: Invalid value for '--runtime': 'dokcer' is not one of 'local', 'docker', "
                             "'kubernetes'.\n")
    assert embedded.serves == 0


@pytest.mark.parametrize("variable, value, choices", [
    ("DISPATCH_RUNTIME", "dokcer", "local, docker, kubernetes"),
    ("DISPATCH_ROLE", "gateways", "all, gateway, handlers"),
    ("DISPATCH_API_GATEWAY", "nginx", "builtin, kong"),
    ("DISPATCH_SANDBOX", "yes", "auto, on, off"),
])
def test_server_refuses_an_unknown_choice_from_the_environment_before_starting(
    cli: Cli, embedded: types.SimpleNamespace, tmp_path: Path, variable: str, value: str, choices: str
) -> None:
    result = cli("server", "--data-dir", str(tmp_path), target=False, env={variable: value})

    assert result.exit_code == 1
    option = variable.removeprefix("DISPATCH_").lower().replace("_", "-")
    assert result.stderr == (f"invalid server settings: unknown {option} '{value}' (from --{option}, {variable} or "
                             f"the config file): choose one of {choices}\n")
    assert embedded.serves == 0


def test_server_help_lists_the_choices(cli: Cli) -> None:
    shown = cli("server", "--help", target=False).stdout

    for choices in ("<local|docker|kubernetes>", "<all|gateway|handlers>", "<builtin|kong>", "<auto|on|off>"):
        assert choices in shown


def test_admin_rebuild_views_prints_counts(cli: Cli, embedded: types.SimpleNamespace, tmp_path: Path) -> None:
    result = cli("admin", "rebuild-views", "--data-dir", str(tmp_path))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["Rebuilt functions: 3", "Rebuilt runs: 12"]
    assert embedded.settings.data_dir == tmp_path
