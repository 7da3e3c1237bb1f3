"""People log in with OpenID Connect: a real `dispatch server --oidc-issuer …`, the test provider
(tests/oidc_provider.py), and `dispatch login` with a browser — a script that acts as one, or a
real headless Chromium where Debian's chromium and Playwright are installed."""
import json
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import browser
from tests.debian import Unavailable
from tests.oidc_provider import CLIENT_ID, TEST_USER, Provider

from .conftest import DISPATCH, ROOT, Server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def provider():
    started = Provider().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, provider):
    running = Server(tmp_path_factory.mktemp("oidc") / "data",
                     extra=("--oidc-issuer", provider.issuer, "--oidc-client-id", CLIENT_ID)).start()
    granted = running.cli("iam", "create", "policy", "jon-reads-functions", "--subject", TEST_USER,
                          "--action", "get", "--resource", "function")
    assert granted.returncode == 0, granted.stderr
    yield running
    running.stop()


@dataclass
class Person:
    """Someone at another terminal: their own CLI config, and a browser."""

    server: Server
    folder: Path

    @property
    def config_file(self) -> Path:
        return self.folder / "user-config.json"

    def dispatch(self, *args: str, browser: str = "login", timeout: float = 120) -> subprocess.CompletedProcess:
        wrapper = self.folder / "browser"
        # $BROWSER names one program, without arguments
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "script_browser.py"}" "$@"\n')
        wrapper.chmod(0o755)
        env = {**self.server.env, "DISPATCH_CONFIG": str(self.config_file), "SCRIPT_BROWSER": browser,
               "BROWSER": "/bin/true" if browser == "none" else str(wrapper),
               "SCRIPT_BROWSER_LOG": str(self.folder / "browser.log")}
        return subprocess.run([DISPATCH, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)

    def context(self) -> dict:
        config = json.loads(self.config_file.read_text())
        return config["contexts"][config["current"]]

    def change_context(self, **changes) -> None:
        config = json.loads(self.config_file.read_text())
        context = config["contexts"][config["current"]]
        context.update(changes)
        for key in [key for key, value in changes.items() if value is None]:
            del context[key]
        self.config_file.write_text(json.dumps(config))


@pytest.fixture
def person(server, tmp_path) -> Person:
    return Person(server, tmp_path)


def logs_in_and_acts_as_the_policies_allow(person: Person, browser: str) -> None:
    logged_in = person.dispatch("login", browser=browser)
    assert logged_in.returncode == 0, logged_in.stderr
    assert f"You are logged in as {TEST_USER}" in logged_in.stdout
    assert "/authorize?" in logged_in.stderr  # the URL is printed, for a browser elsewhere
    assert "Dispatch received your login" in (person.folder / "browser.log").read_text()
    assert stat.S_IMODE(person.config_file.stat().st_mode) == 0o600
    context = person.context()
    assert context["token"] and context["refreshToken"] and "serviceaccount" not in context

    listed = person.dispatch("get", "functions")
    assert listed.returncode == 0, listed.stderr
    (person.folder / "s.json").write_text('{"k": "v"}')
    refused = person.dispatch("create", "secret", "s", str(person.folder / "s.json"))
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"[Code: 403] {TEST_USER} may not create secret in organization dispatch"


def test_a_person_logs_in_through_the_browser_and_acts_as_their_policies_allow(person):
    logs_in_and_acts_as_the_policies_allow(person, "login")


def test_a_person_logs_in_through_a_real_headless_chromium(person):
    try:
        browser.ensure()
    except Unavailable as missing:
        pytest.skip(f"no real browser here: {missing}")
    logs_in_and_acts_as_the_policies_allow(person, "chromium")


def test_an_expired_login_is_renewed_with_the_refresh_token_before_the_command(person, provider):
    assert person.dispatch("login").returncode == 0
    refresh_token = person.context()["refreshToken"]
    expired = provider.id_token(exp=int(time.time()) - 3600)
    person.change_context(token=expired)

    listed = person.dispatch("get", "functions")

    assert listed.returncode == 0, listed.stderr
    renewed = person.context()
    assert renewed["token"] != expired and renewed["refreshToken"] != refresh_token
    assert person.dispatch("get", "functions").returncode == 0


def test_an_expired_login_without_a_refresh_token_asks_to_log_in_again(person, provider):
    assert person.dispatch("login").returncode == 0
    person.change_context(token=provider.id_token(exp=int(time.time()) - 3600), refreshToken=None)

    listed = person.dispatch("get", "functions")

    assert (listed.returncode, listed.stderr.strip()) == (1, "your login has expired: run dispatch login")


def test_logout_forgets_the_id_token_and_the_refresh_token(person):
    assert person.dispatch("login").returncode == 0

    assert person.dispatch("logout").returncode == 0

    assert not {"token", "refreshToken"} & set(person.context())
    assert person.dispatch("get", "functions").returncode == 1


def test_a_cancelled_login_ends_with_the_issuers_error(person, provider):
    cancelled = person.dispatch("login", browser="deny")

    assert cancelled.returncode == 1
    assert cancelled.stderr.strip().splitlines()[-1].startswith(f"login refused by {provider.issuer}: access_denied")
    assert not person.config_file.exists()


def test_an_answer_with_another_logins_state_is_refused(person):
    forged = person.dispatch("login", browser="forge-state")

    assert forged.returncode == 1
    assert "state mismatch" in forged.stderr.strip().splitlines()[-1]
    assert not person.config_file.exists()


def test_a_login_nobody_finishes_times_out(person):
    waited = person.dispatch("login", "--timeout", "1s", browser="none")

    assert waited.returncode == 1
    assert waited.stderr.strip().splitlines()[-1] == "login timed out: no answer from the browser within 1s"


def test_a_code_that_cannot_be_exchanged_fails_the_login(person, provider):
    provider.codes_expire = True
    try:
        failed = person.dispatch("login")
    finally:
        provider.codes_expire = False

    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("login failed: the code was not exchanged:") and "invalid_grant" in last
