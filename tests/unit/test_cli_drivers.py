"""The event driver commands of the CLI, against the HTTP double: what they send and print."""
from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401  (fixtures)

DRIVERS, TYPES = "/v1/event/drivers", "/v1/event/drivertypes"


def test_create_eventdrivertype_sends_image_expose_and_config(cli: Cli, fake: FakeDispatch) -> None:
    fake.overrides[("POST", TYPES)] = (201, {"name": "ticker"})
    result = cli("create", "event-driver-type", "ticker", "example/ticker:1", "--expose", "-s", "seconds=5",
                 "-s", "verbose")
    assert result.exit_code == 0 and result.output == "Created event driver type: ticker\n"
    assert fake.sent("POST")[0].body == {"name": "ticker", "image": "example/ticker:1", "expose": True, "tags": [],
                                         "config": [{"key": "seconds", "value": "5"}, {"key": "verbose", "value": ""}]}


def test_create_eventdriver_prints_the_webhook_token_and_url_once(cli: Cli, fake: FakeDispatch) -> None:
    fake.overrides[("POST", DRIVERS)] = (201, {"name": "hook", "type": "webhook", "token": "t0k3n",
                                               "url": "http://dispatch/driver/o/1"})
    result = cli("create", "eventdriver", "webhook", "--name", "hook", "-s", "eventType=repo.pushed",
                 "--secret", "github")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["Created event driver: hook",
                                          "Token (shown only now; send it as Authorization: Bearer): t0k3n",
                                          "URL: http://dispatch/driver/o/1"]
    assert fake.sent("POST")[0].body == {"name": "hook", "type": "webhook", "secrets": ["github"], "tags": [],
                                         "config": [{"key": "eventType", "value": "repo.pushed"}]}


def test_create_eventdriver_without_a_name_gets_a_lower_case_random_one(cli: Cli, fake: FakeDispatch) -> None:
    fake.overrides[("POST", DRIVERS)] = (201, {})
    result = cli("create", "eventdriver", "cron", "-s", "schedule=*/5 * * * *")
    name = fake.sent("POST")[0].body["name"]
    assert result.output == f"Created event driver: {name}\n" and name == name.lower()
    assert fake.sent("POST")[0].body["config"] == [{"key": "schedule", "value": "*/5 * * * *"}]


def test_get_eventdrivers_and_types_print_the_contract_columns(cli: Cli, fake: FakeDispatch) -> None:
    fake.overrides[("GET", DRIVERS)] = (200, [{"name": "tick", "type": "cron", "status": "ERROR", "secrets": ["s"],
                                               "config": [{"key": "schedule", "value": "* * * * *"}], "url": "",
                                               "reason": ["bus down"]}])
    fake.overrides[("GET", TYPES)] = (200, [{"name": "cron", "builtin": True, "image": "", "expose": False},
                                            {"name": "ticker", "image": "example/ticker:1", "expose": True}])
    drivers = cli("get", "eventdrivers").output.splitlines()
    assert drivers[0].split() == ["NAME", "|", "TYPE", "|", "STATUS", "|", "SECRETS", "|", "CONFIG", "|", "URL", "|",
                                  "REASON"]
    assert "tick" in drivers[2] and "schedule=* * * * *" in drivers[2] and "bus down" in drivers[2]
    types = cli("get", "eventdrivertypes").output.splitlines()
    assert [[cell.strip() for cell in line.split("|")] for line in types[2:]] == [
        ["cron", "(built in)", "false"], ["ticker", "example/ticker:1", "true"]]


def test_delete_eventdriver_sends_delete(cli: Cli, fake: FakeDispatch) -> None:
    fake.overrides[("DELETE", f"{DRIVERS}/tick")] = (200, {"name": "tick", "status": "DELETING"})
    result = cli("delete", "event-driver", "tick")
    assert result.exit_code == 0 and result.output == "Deleted event driver: tick\n"
    assert fake.sent("DELETE")[0].path == f"{DRIVERS}/tick"
