"""The audit trail through the real CLI: who did what, when, allowed or denied."""
import base64
import json
import time

import pytest

from dispatch.iam.keys import new_key_pair, write_private

from .conftest import Server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("audit") / "data").start()
    yield running
    running.stop()


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def entries(server: Server, *args: str, count: int = 0) -> list[dict]:
    """`dispatch audit -o json`, again until it lists `count` entries (a read or a refusal is
    recorded just after its answer)."""
    deadline = time.monotonic() + 10
    while True:
        found = json.loads(ok(server.cli("audit", "--all", "-o", "json", *args)))
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_team_reads_who_changed_and_read_a_secret_and_who_was_refused(server, tmp_path):
    (tmp_path / "db.json").write_text('{"password": "plain-text-password"}')
    ok(server.cli("create", "secret", "db", str(tmp_path / "db.json")))
    assert "plain-text-password" in ok(server.cli("get", "secret", "db", "--all"))
    pem, public = new_key_pair()
    write_private(tmp_path / "ci.pem", pem)
    (tmp_path / "ci.pub").write_bytes(base64.b64decode(public))
    ok(server.cli("iam", "create", "serviceaccount", "ci", "--public-key", str(tmp_path / "ci.pub")))
    as_ci = ("--service-account", "ci", "--jwt-private-key", str(tmp_path / "ci.pem"))
    assert server.cli(*as_ci, "delete", "secret", "db").returncode == 1

    trail = entries(server, "--resource", "secret", count=3)
    assert [(e["subject"], e["action"], e["name"], e["outcome"]) for e in trail] == [
        ("dispatch/admin", "create", "db", "allowed"), ("dispatch/admin", "get", "db", "allowed"),
        ("dispatch/ci", "delete", "db", "denied")]
    assert trail[2]["reason"] == "dispatch/ci may not delete secret in organization dispatch"

    table = ok(server.cli("audit", "--subject", "dispatch/ci", "--since", "10m"))
    header, _, row = table.strip().splitlines()
    assert [cell.strip() for cell in header.split("|")] == [
        "TIME", "SUBJECT", "ORGANIZATION", "ACTION", "RESOURCE", "NAME", "OUTCOME"]
    assert [cell.strip() for cell in row.split("|")][1:] == ["dispatch/ci", "dispatch", "delete", "secret", "db",
                                                             "denied"]
    assert "plain-text-password" not in json.dumps(entries(server))
    refused = server.cli(*as_ci, "audit")
    assert refused.returncode == 1 and "[Code: 403] dispatch/ci may not get audit" in refused.stderr
