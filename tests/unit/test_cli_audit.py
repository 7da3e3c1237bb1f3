"""`dispatch audit`: the trail as a table or JSON/YAML, its filters and its pages."""
import json
import time

import pytest
import yaml

from dispatch.cli.audit import since_seconds
from dispatch.cli.output import local_time
from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401  (fixtures)


def entry(position: int, **fields) -> dict:
    return {"time": 1_700_000_000.25 + position, "subject": "dispatch/admin", "organization": "dispatch",
            "action": "create", "resource": "function", "kind": "Function", "name": f"f{position}",
            "outcome": "allowed", "reason": None, "requestId": f"r{position}", "position": position, **fields}


def test_audit_prints_who_did_what_when_and_the_outcome(cli: Cli, fake: FakeDispatch) -> None:
    fake.audit = [entry(3), entry(8, subject="dispatch/ci", action="delete", resource="secret", name="db",
                                  outcome="denied", reason="dispatch/ci may not delete secret")]

    result = cli("audit")

    assert result.exit_code == 0, result.output
    header, rule, *rows = result.stdout.strip().splitlines()
    assert [cell.strip() for cell in header.split("|")] == [
        "TIME", "SUBJECT", "ORGANIZATION", "ACTION", "RESOURCE", "NAME", "OUTCOME"]
    assert [cell.strip() for cell in rows[1].split("|")] == [
        local_time(1_700_000_008.25), "dispatch/ci", "dispatch", "delete", "secret", "db", "denied"]
    assert ":" in local_time(1_700_000_008.25).split()[3]  # a local time with seconds
    assert len(rows) == 2 and result.stderr == ""


def test_audit_sends_its_filters_and_turns_a_duration_into_a_time(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("audit", "--subject", "dispatch/ci", "--resource", "secret", "--name", "db", "--since", "2h",
                 "--limit", "10", "--organization", "acme")

    assert result.exit_code == 0, result.output
    [sent] = fake.sent("GET")
    assert {key: values[0] for key, values in sent.query.items() if key != "since"} == {
        "subject": "dispatch/ci", "resource": "secret", "name": "db", "limit": "10"}
    assert abs(float(sent.query["since"][0]) - (time.time() - 7200)) < 60
    assert sent.headers["X-Dispatch-Org"] == "acme"


def test_audit_all_follows_the_pages_to_the_end(cli: Cli, fake: FakeDispatch) -> None:
    fake.audit = [entry(position) for position in (2, 4, 5, 9, 12)]

    result = cli("audit", "--limit", "2", "--all", "-o", "json")

    assert result.exit_code == 0, result.output
    assert [e["position"] for e in json.loads(result.stdout)] == [2, 4, 5, 9, 12]
    assert [r.query.get("after") for r in fake.sent("GET")] == [None, ["4"], ["9"]]


def test_audit_without_all_shows_one_page_and_says_more_follow(cli: Cli, fake: FakeDispatch) -> None:
    fake.audit = [entry(position) for position in (1, 2, 3)]

    result = cli("audit", "--limit", "2", "-o", "yaml")

    assert result.exit_code == 0, result.output
    assert [e["name"] for e in yaml.safe_load(result.stdout)] == ["f1", "f2"]
    assert "--all" in result.stderr and len(fake.sent("GET")) == 1


def test_audit_of_every_organization_asks_for_star_from_the_callers_own(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("audit", "--organization", "*")

    assert result.exit_code == 0, result.output
    [sent] = fake.sent("GET")
    assert sent.query["organization"] == ["*"] and sent.headers["X-Dispatch-Org"] == ""


def test_audit_refuses_a_since_it_cannot_read(cli: Cli, fake: FakeDispatch) -> None:
    result = cli("audit", "--since", "last tuesday")

    assert result.exit_code == 1
    assert "invalid --since 'last tuesday'" in result.stderr and fake.requests == []


@pytest.mark.parametrize("given, expected", [("1700000000", 1_700_000_000.0), ("90s", 910.0), ("10m", 400.0),
                                             ("2h", -6200.0), ("7d", 1000.0 - 7 * 86400)])
def test_since_is_a_unix_time_or_a_duration_back_from_now(given: str, expected: float) -> None:
    assert since_seconds(given, now=1000.0) == expected
