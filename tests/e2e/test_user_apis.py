"""User APIs as a user sets them up with the CLI: a path with a parameter, basic authentication
from a secret, https-only, served by `dispatch server --tls-cert --tls-key` over real TLS."""
import base64
import json
import ssl
import urllib.error
import urllib.request

import pytest

from tests.unit.test_user_api_tls import self_signed

from .conftest import PYTHON_IMAGE, Answer, Server, free_port

pytestmark = pytest.mark.e2e

WHO = "def handle(ctx, payload):\n    http = ctx['httpContext']\n    return {'id': http['params']['id'], " \
      "'user': http.get('x-consumer-username'), 'scheme': http['scheme'], 'sawAuth': 'authorization' in http}\n"
SEED = PYTHON_IMAGE + """---
kind: Function
name: who
image: py
sourcePath: who.py
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("apis")
    (folder / "who.py").write_text(WHO)
    (folder / "seed.yaml").write_text(SEED)
    cert, key = self_signed("localhost")
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    (folder / "users.json").write_text(json.dumps({"alice": "s3cret"}))
    https_port = free_port()
    running = Server(folder / "data", seed=folder / "seed.yaml", extra=(
        "--tls-cert", str(folder / "cert.pem"), "--tls-key", str(folder / "key.pem"),
        "--api-https-port", str(https_port))).start()
    running.https_port, running.cert, running.folder = https_port, cert, folder
    yield running
    running.stop()


def https(server, path: str, headers: dict | None = None) -> Answer:
    context = ssl.create_default_context(cadata=server.cert.decode())
    request = urllib.request.Request(f"https://localhost:{server.https_port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as answer:
            return Answer(answer.status, answer.read(), dict(answer.headers))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read(), dict(error.headers))


def test_an_https_only_api_with_basic_auth_and_a_path_parameter(server):
    assert server.wait_status("/v1/function/who")["status"] == "READY"
    assert server.cli("create", "secret", "users", str(server.folder / "users.json")).returncode == 0
    created = server.cli("create", "api", "who", "who", "--path", "/users/{id}", "--https-only",
                         "--auth", "basic", "--auth-secret", "users")
    assert created.returncode == 0, created.stderr
    server.wait_status("/v1/api/who")
    assert server.http("GET", "/dispatch/users/7", api=True).status == 426
    refused = https(server, "/dispatch/users/7")
    assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Basic ")
    login = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    answer = https(server, "/dispatch/users/7", {"Authorization": login})
    assert answer.status == 200, answer.body
    assert answer.json() == {"id": "7", "user": "alice", "scheme": "https", "sawAuth": False}


def test_an_authentication_the_gateway_cannot_enforce_is_refused(server):
    refused = server.cli("create", "api", "sso", "who", "--path", "/sso", "--auth", "oidc")
    assert refused.returncode == 1 and "authentication 'oidc' is not supported" in refused.stderr
