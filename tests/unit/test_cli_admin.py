"""`dispatch admin dead-letters`: the cases decided before any bus is reached."""
from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401  (fixtures)


def test_dead_letters_on_the_embedded_bus_ask_for_a_broker_url(cli: Cli) -> None:
    result = cli("admin", "dead-letters", target=False)

    assert result.exit_code == 1
    assert result.stderr.strip() == "dead letters live on the message bus; pass --bus amqp://…"


def test_dead_letters_refuse_a_bus_url_that_is_not_amqp(cli: Cli) -> None:
    result = cli("admin", "dead-letters", "--bus", "redis://127.0.0.1", "--replay", "m-1", target=False)

    assert result.exit_code == 1
    assert "unknown bus 'redis://127.0.0.1'" in result.stderr
