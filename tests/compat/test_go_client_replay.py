"""The requests VMware Dispatch's Go CLI sent (fixtures/, recorded with record.py), replayed in order
against a real gateway: each answer must be one the Go client takes, in the flow the CLI followed."""
import base64
import gzip
import io
import json
import tarfile

import pytest

from .go_models import violations
from .go_operations import OPERATIONS, operation_of
from .replay import Replayer, fixtures, request_body

pytestmark = pytest.mark.e2e
FIXTURES = fixtures()


def described(recorded: dict, fixture: dict) -> str:
    command = fixture["commands"][recorded["command"]]["command"]
    return f"{command!r}: {recorded['method']} {recorded['path']}"


def go_client_problems(recorded: dict, target: str, body: bytes, answer) -> list[str]:
    """Why the Go CLI would fail, print wrongly or take another path on this answer."""
    operation = operation_of(recorded["method"], target.split("?")[0])
    text = answer.body[:500].decode(errors="replace")
    if answer.status != recorded["status"]:
        return [f"answered {answer.status} where the CLI's flow saw {recorded['status']}: {text}"]
    if answer.status >= 400:
        error = _json(answer.body)
        found = violations(error, "Error!")
        if isinstance(error, dict) and error.get("code") != answer.status:
            found.append(f"$.code: {error.get('code')!r}; the CLI prints it as the status, {answer.status}")
        return found
    if answer.status != operation.success(body):
        return [f"answered {answer.status}; the Go client takes only {operation.success(body)} (else it panics)"]
    if operation.model is None:
        return [] if not answer.body else [f"a body where the Go client expects none: {text}"]
    return violations(_json(answer.body), operation.model)


def _json(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return f"<not JSON: {body[:200]!r}>"


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f["scenario"] for f in FIXTURES])
def test_the_go_cli_traffic_is_answered_as_its_client_requires(gateway, fixture):
    replayer = Replayer(gateway.port, gateway.token())
    for recorded in fixture["requests"]:
        target, body, answer = replayer.replay(recorded)
        problems = go_client_problems(recorded, target, body, answer)
        assert not problems, f"{described(recorded, fixture)}: " + "; ".join(problems)


def test_the_recordings_exercise_every_call_of_the_go_client_table():
    made = {(r["method"], r["path"]) for f in FIXTURES for r in f["requests"]}
    unused = [f"{o.method} {o.path}" for o in OPERATIONS if not any(o.matches(*call) for call in made)]
    assert not unused, f"no recorded CLI command makes these calls: {unused}"


@pytest.mark.parametrize("body, model", [
    ({"code": "404", "message": "x"}, "Error!"),
    ({"code": 404}, "Error!"),
    ({"id": None, "name": "f", "image": "py"}, "Function!"),
    ({"name": "f", "image": "py", "createdTime": 1.5}, "Function!"),
    ({"name": "f", "image": "py", "tags": [None]}, "Function!"),
    ({"name": "f", "image": "py", "secrets": {}}, "Function!"),
    ({"eventType": "t", "eventTime": "yesterday"}, "Emission!"),
    ([{"name": "r", "blocking": "yes"}], "[Run]"),
    (None, "Run!"),
])
def test_the_go_model_table_refuses_what_the_go_decoder_or_cli_refuses(body, model):
    assert violations(body, model)


def test_the_go_model_table_takes_nulls_where_go_takes_them():
    run = {"name": "01a24249-2519-74a3-874c-bd3f6e7ee544", "reason": None, "tags": None, "error": None,
           "input": None, "output": [1, "two"], "executedTime": 1796408419, "status": None}
    assert violations(run, "Run!") == [] and violations(None, "[Run]") == []


def test_the_replayed_function_sources_are_unterminated_archives_with_dot_slash_slash_names():
    sources = [json.loads(request_body(r))["source"] for f in FIXTURES for r in f["requests"]
               if r["path"].startswith("/v1/function") and r["method"] in ("POST", "PUT")]
    raw = [gzip.decompress(base64.b64decode(s)) for s in sources]
    assert raw and all(len(data) % 512 for data in raw), "the archives end with their last member's unpadded data"
    assert any(data.startswith(b".//") for data in raw)
    with pytest.raises(tarfile.ReadError):
        tarfile.open(fileobj=io.BytesIO(raw[0])).getnames()
