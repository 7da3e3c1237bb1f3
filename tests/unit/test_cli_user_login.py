"""The CLI's side of a person's login: which identity a command carries, and what stays private.
The browser flow itself runs end to end in tests/e2e/test_oidc_login.py."""
import json
from pathlib import Path

from dispatch.cli.config import resolve_target
from tests.unit.cli_double import Cli, FakeDispatch, cli, fake  # noqa: F401  (fixtures)

USER_CONTEXT = {"host": "127.0.0.1", "token": "user-id-token", "refreshToken": "user-refresh-token"}


def config_of(**context: object) -> dict:
    return {"current": "here", "contexts": {"here": context}}


def test_a_logged_in_persons_token_is_what_commands_carry() -> None:
    target = resolve_target(config_of(**USER_CONTEXT))

    assert (target.bearer(), target.refresh_token) == ("user-id-token", "user-refresh-token")


def test_a_token_or_service_account_given_as_flag_wins_over_the_persons_login() -> None:
    config = config_of(**USER_CONTEXT)

    assert resolve_target(config, token="flag-token").bearer() == "flag-token"
    by_account = resolve_target(config, service_account="ci", private_key=Path("ci.pem"))
    assert (by_account.user_token, by_account.service_account) == (None, "ci")


def test_in_a_context_the_persons_login_wins_over_a_service_account() -> None:
    target = resolve_target(config_of(**USER_CONTEXT, serviceaccount="dispatch/admin", jwtprivatekey="admin.pem"))

    assert (target.service_account, target.private_key, target.bearer()) == (None, None, "user-id-token")


def test_login_without_credentials_asks_a_server_without_an_issuer_and_says_so(cli: Cli, fake: FakeDispatch) -> None:
    cli.config.write_text(json.dumps(config_of(**USER_CONTEXT, port=fake.port)))

    result = cli("login")

    assert result.exit_code == 1
    assert "logs no users in through a browser (it has no --oidc-issuer)" in result.output
    assert [r.path for r in fake.requests] == ["/v1/iam/oidc"]


def test_context_listing_hides_the_persons_tokens(cli: Cli, fake: FakeDispatch) -> None:
    cli.config.write_text(json.dumps(config_of(**USER_CONTEXT)))

    result = cli("context")

    assert result.exit_code == 0, result.output
    assert "user-id-token" not in result.output and "user-refresh-token" not in result.output
