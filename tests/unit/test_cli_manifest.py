"""`create|update|apply|delete -f`: multi-document YAML sent in file order."""
import base64
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401  (fixtures)

SEED = """\
kind: BaseImage
name: python3-base
dockerUrl: dispatchframework/python3-base:0.0.13
language: python3
---
kind: Image
name: python3
baseImageName: python3-base
runtimeDependencies: {manifest: '@requirements.txt'}
---
kind: Function
name: hello-py
image: python3
sourcePath: python3/hello.py
secrets: [open-sesame]
timeout: 5000
---
kind: Secret
name: open-sesame
secrets: {password: "--- not a separator ---"}
---
kind: API
name: post-hello
function: hello-py
methods: [POST]
uris: [/hello]
"""


def write_seed(directory: Path, text: str = SEED) -> Path:
    (directory / "python3").mkdir()
    (directory / "python3" / "hello.py").write_text("def handle(ctx, payload):\n    return payload\n")
    (directory / "requirements.txt").write_text("requests\n")
    (directory / "seed.yaml").write_text(text)
    return directory


def test_create_file_posts_every_document_in_file_order(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    write_seed(tmp_path)

    result = cli("create", "-f", "seed.yaml", "-w", str(tmp_path))

    assert result.exit_code == 0, result.output
    assert [(r.method, r.path) for r in fake.requests] == [
        ("POST", "/v1/baseimage"), ("POST", "/v1/image"), ("POST", "/v1/function"),
        ("POST", "/v1/secret"), ("POST", "/v1/api"),
    ]
    assert result.stdout.splitlines() == [
        "Created BaseImage: python3-base", "Created Image: python3", "Created Function: hello-py",
        "Created Secret: open-sesame", "Created API: post-hello",
    ]


def test_create_file_inlines_source_and_runtime_manifest(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    write_seed(tmp_path)

    cli("create", "-f", "seed.yaml", "-w", str(tmp_path))

    image, function, secret = (r.body for r in fake.requests[1:4])
    assert image["runtimeDependencies"] == {"manifest": "requests\n"}
    assert "sourcePath" not in function
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(function["source"])), mode="r:gz") as tar:
        assert tar.extractfile("hello.py").read().startswith(b"def handle")
    assert secret["secrets"] == {"password": "--- not a separator ---"}


def test_create_file_stops_at_the_first_error(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    write_seed(tmp_path)
    fake.overrides[("POST", "/v1/image")] = (400, {"code": 400, "message": "Error fetching base image python3-base"})

    result = cli("create", "-f", "seed.yaml", "-w", str(tmp_path))

    assert result.exit_code == 1
    assert [r.path for r in fake.requests] == ["/v1/baseimage", "/v1/image"]
    assert result.stdout.splitlines() == ["Created BaseImage: python3-base"]
    assert "[Code: 400] Error fetching base image python3-base" in result.stderr


def test_malformed_yaml_names_document_and_line_and_sends_nothing(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: Secret\nname: a\n---\nkind: Secret\nname: [b\nsecrets: {}\n")

    result = cli("create", "-f", str(tmp_path / "bad.yaml"))

    assert result.exit_code == 1
    assert "document 2" in result.stderr
    assert "line 6" in result.stderr
    assert fake.requests == []


@pytest.mark.parametrize("document, message", [
    ("kind: [Secret]\nname: s\n", "document 2: kind is a name such as Function, not list"),
    ("kind: Function\nname: f\nimage: i\nsourcePath: 5\n",
     "document 2 (Function f): sourcePath is a file or folder name, not int"),
    ("kind: Image\nname: i\nbaseImageName: b\nruntimeDependencies: [flask]\n",
     "document 2 (Image i): runtimeDependencies is a mapping, e.g. {manifest: '@requirements.txt'}"),
    ("kind: Secret\nname: s\nsecrets: {key: !!binary aGVsbG8=}\n",
     "f.yaml: invalid YAML in document 2, line 6: a binary value has no JSON form: write it as a string or a list"),
])
def test_a_document_of_the_wrong_shape_is_an_error_naming_it_and_sends_nothing(
        cli: Cli, fake: FakeDispatch, tmp_path: Path, document: str, message: str) -> None:
    (tmp_path / "f.yaml").write_text("kind: Secret\nname: first\n---\n" + document)

    result = cli("create", "-f", "f.yaml", "-w", str(tmp_path))

    assert result.exit_code == 1
    assert result.stderr.strip().endswith(message)
    assert fake.requests == []


def test_dates_are_sent_as_the_text_written_as_dispatchs_own_cli_sends_them(
        cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("kind: Secret\nname: s\nsecrets:\n  since: 2001-01-01\n"
                                     "  at: 2001-12-14t21:59:43.10-05:00\n  odd: 2001-13-01\n")

    result = cli("create", "-f", "f.yaml", "-w", str(tmp_path))

    assert result.exit_code == 0, result.output
    assert fake.requests[0].body["secrets"] == {
        "since": "2001-01-01", "at": "2001-12-14t21:59:43.10-05:00", "odd": "2001-13-01"}


def test_a_source_path_of_an_unknown_users_home_is_a_missing_file(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("kind: Function\nname: f\nimage: i\nsourcePath: ~nobody-here/f.py\n")

    result = cli("create", "-f", "f.yaml", "-w", str(tmp_path))

    assert result.exit_code == 1
    assert "document 1 (Function f): file ~nobody-here/f.py not found" in result.stderr
    assert fake.requests == []


def test_unsupported_kinds_are_skipped_with_a_warning(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("kind: ServicePlan\nname: plan\n---\nkind: Secret\nname: s\n")

    result = cli("create", "-f", str(tmp_path / "f.yaml"))

    assert result.exit_code == 0, result.output
    assert "skipping ServicePlan document 1: not supported yet" in result.stderr
    assert [r.body["name"] for r in fake.requests] == ["s"]


@pytest.mark.parametrize("verb", ["create", "apply", "update", "delete"])
def test_a_misspelt_kind_is_refused_naming_the_kinds_and_nothing_is_sent(
        cli: Cli, fake: FakeDispatch, tmp_path: Path, verb: str) -> None:
    (tmp_path / "f.yaml").write_text("kind: Secret\nname: s\nsecrets: {a: b}\n---\nkind: Functon\nname: f\n")

    result = cli(verb, "-f", str(tmp_path / "f.yaml"))

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "document 2: unknown kind 'Functon' (did you mean Function?); the kinds are API, Application, BaseImage, "
        "Driver, DriverType, Function, Image, Organization, Policy, Secret, ServiceAccount, ServiceInstance, "
        "Subscription"]
    assert fake.requests == []


def test_missing_source_path_is_an_error_naming_the_document(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("kind: Secret\nname: s\n"
                                     "---\nkind: Function\nname: hello\nimage: i\nsourcePath: gone.py\n")

    result = cli("create", "-f", "f.yaml", "-w", str(tmp_path))

    assert result.exit_code == 1
    assert "document 2 (Function hello)" in result.stderr
    assert "gone.py" in result.stderr
    assert fake.requests == []


def test_source_directory_without_handler_is_refused(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "f.yaml").write_text("kind: Function\nname: hello\nimage: i\nsourcePath: src\n")

    result = cli("create", "-f", "f.yaml", "-w", str(tmp_path))

    assert result.exit_code == 1
    assert "handler is required, source path src is a directory" in result.stderr
    assert fake.requests == []


def test_apply_puts_then_posts_after_a_404(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    fake.store["/v1/secret"] = {"old": {"name": "old", "secrets": {}}}
    (tmp_path / "f.yaml").write_text("kind: Secret\nname: old\nsecrets: {a: b}\n"
                                     "---\nkind: Secret\nname: new\nsecrets: {}\n")

    result = cli("apply", "-f", str(tmp_path / "f.yaml"))

    assert result.exit_code == 0, result.output
    assert [(r.method, r.path) for r in fake.requests] == [
        ("PUT", "/v1/secret/old"), ("PUT", "/v1/secret/new"), ("POST", "/v1/secret"),
    ]
    assert result.stdout.splitlines() == ["Applied Secret: old", "Applied Secret: new"]


def test_apply_stops_on_errors_other_than_404(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    fake.overrides[("PUT", "/v1/secret/s")] = (500, {"code": 500, "message": "internal error when processing secret s"})
    (tmp_path / "f.yaml").write_text("kind: Secret\nname: s\n")

    result = cli("apply", "-f", str(tmp_path / "f.yaml"))

    assert result.exit_code == 1
    assert [r.method for r in fake.requests] == ["PUT"]


def test_update_puts_each_document(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    fake.store["/v1/api"] = {"a": {"name": "a", "function": "f"}}
    (tmp_path / "f.yaml").write_text("kind: API\nname: a\nfunction: g\n")

    result = cli("update", "-f", str(tmp_path / "f.yaml"))

    assert result.exit_code == 0, result.output
    assert fake.store["/v1/api"]["a"]["function"] == "g"
    assert result.stdout.strip() == "Updated API: a"


def test_delete_file_deletes_last_document_first(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    fake.store["/v1/baseimage"] = {"b": {"name": "b"}}
    fake.store["/v1/image"] = {"i": {"name": "i"}}
    (tmp_path / "f.yaml").write_text("kind: BaseImage\nname: b\n---\nkind: Image\nname: i\n")

    result = cli("delete", "-f", str(tmp_path / "f.yaml"))

    assert result.exit_code == 0, result.output
    assert [r.path for r in fake.requests] == ["/v1/image/i", "/v1/baseimage/b"]


def test_delete_file_deletes_without_needing_sources(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    fake.store["/v1/function"] = {"hello": {"name": "hello"}}
    (tmp_path / "f.yaml").write_text("kind: Function\nname: hello\nimage: i\nsourcePath: gone.py\n")

    result = cli("delete", "-f", str(tmp_path / "f.yaml"))

    assert result.exit_code == 0, result.output
    assert [(r.method, r.path) for r in fake.requests] == [("DELETE", "/v1/function/hello")]
    assert result.stdout.strip() == "Deleted Function: hello"


def test_create_file_json_output_groups_results_by_kind(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("kind: Secret\nname: s\n---\nkind: API\nname: a\nfunction: f\n")

    result = cli("create", "-f", str(tmp_path / "f.yaml"), "--json")

    output = json.loads(result.stdout)
    assert [s["name"] for s in output["secrets"]] == ["s"]
    assert [a["name"] for a in output["api"]] == ["a"]
    assert output["functions"] == []


def test_create_file_with_wait_waits_for_each_resource(cli: Cli, fake: FakeDispatch, tmp_path: Path) -> None:
    fake.statuses["/v1/baseimage/b"] = ["INITIALIZED", "READY"]
    (tmp_path / "f.yaml").write_text("kind: BaseImage\nname: b\ndockerUrl: x\nlanguage: python3\n"
                                     "---\nkind: Secret\nname: s\n")

    result = cli("create", "-f", str(tmp_path / "f.yaml"), "--wait")

    assert result.exit_code == 0, result.output
    assert [(r.method, r.path) for r in fake.requests][-2:] == [("GET", "/v1/baseimage/b")] * 2
    assert result.stdout.splitlines()[-1] == "Base image b is READY"
