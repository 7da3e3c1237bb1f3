"""Identity as a team meets it, through the real CLI and plain HTTP: the administrator a first
start makes, service accounts and policies, organizations, refusals, in both modes."""
import base64
import json
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dispatch.iam.keys import new_key_pair, write_private

from .cluster import AMQP, DATABASE, seeded_cluster
from .conftest import PYTHON_IMAGE, Server

pytestmark = pytest.mark.e2e

HELLO = "def handle(ctx, payload):\n    return {'org': 'dispatch'}\n"
SEED = PYTHON_IMAGE + "---\nkind: Function\nname: hello\nimage: py\nsourcePath: hello.py\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("identity")
    (work / "hello.py").write_text(HELLO)
    (work / "seed.yaml").write_text(SEED)
    running = Server(work / "data", seed=work / "seed.yaml").start()
    yield running
    running.stop()


def key_files(folder, name: str) -> tuple[str, str]:
    pem, public = new_key_pair()
    write_private(folder / f"{name}.pem", pem)
    (folder / f"{name}.pub").write_bytes(base64.b64decode(public))
    return str(folder / f"{name}.pem"), str(folder / f"{name}.pub")


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_first_start_leaves_a_working_cli_context_readable_by_its_owner_only(server):
    config = json.loads(open(server.env["DISPATCH_CONFIG"]).read())
    context = config["contexts"][config["current"]]
    assert context["serviceaccount"] == "dispatch/admin" and context["port"] == server.port
    for path in (server.env["DISPATCH_CONFIG"], context["jwtprivatekey"]):
        assert stat.S_IMODE(open(path).fileno() and __import__("os").stat(path).st_mode) == 0o600
    assert "hello" in ok(server.cli("get", "functions"))


def test_plain_http_needs_the_token_dispatch_token_prints(server):
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/v1/secret",
                                     headers={"X-Dispatch-Org": "dispatch"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401 and json.loads(refused.value.read())["code"] == 401
    request.add_header("Authorization", f"Bearer {ok(server.cli('token', '--ttl', '10m')).strip()}")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def test_a_ci_account_gets_exactly_what_its_policy_grants_until_it_is_deleted(server, tmp_path):
    pem, pub = key_files(tmp_path, "ci")
    assert "Created service account: ci" in ok(server.cli("iam", "create", "serviceaccount", "ci", "--public-key", pub))
    ok(server.cli("iam", "create", "policy", "ci-read", "--subject", "ci", "--action", "get", "--resource", "function"))
    as_ci = ("--service-account", "ci", "--jwt-private-key", pem)
    assert "hello" in ok(server.cli(*as_ci, "get", "functions"))
    (tmp_path / "s.json").write_text('{"password": "x"}')
    refused = server.cli(*as_ci, "create", "secret", "s", str(tmp_path / "s.json"))
    assert refused.returncode == 1
    assert refused.stderr.strip() == "[Code: 403] dispatch/ci may not create secret in organization dispatch"
    ok(server.cli("iam", "delete", "serviceaccount", "ci"))
    gone = server.cli(*as_ci, "get", "functions")
    assert gone.returncode == 1 and "[Code: 401]" in gone.stderr


def test_a_second_organization_is_a_tenant_of_its_own(server, tmp_path):
    assert "Created organization: acme" in ok(server.cli("iam", "create", "organization", "acme"))
    assert "acme" in ok(server.cli("iam", "get", "organization"))
    pem, pub = key_files(tmp_path, "owner")
    ok(server.cli("--organization", "acme", "iam", "create", "serviceaccount", "owner", "--public-key", pub))
    ok(server.cli("--organization", "acme", "iam", "create", "policy", "owner-all",
                  "-s", "owner", "-a", "*", "-r", "*"))
    as_owner = ("--service-account", "acme/owner", "--jwt-private-key", pem)
    assert json.loads(ok(server.cli(*as_owner, "get", "functions", "-o", "json"))) == []
    peek = server.cli(*as_owner, "--organization", "dispatch", "get", "functions")
    assert peek.returncode == 1 and "[Code: 403]" in peek.stderr
    # the default organization's route answers /dispatch/hello and /hello; acme can claim neither
    ok(server.cli("create", "api", "hello", "hello", "--path", "/hello"))
    server.wait_status("/v1/api/hello")
    token = ok(server.cli(*as_owner, "token")).strip()
    as_acme = {"Authorization": f"Bearer {token}", "X-Dispatch-Org": ""}
    for path, status, why in (("/hello", 409, "another organization"),
                              ("/dispatch/hello", 400, "belong to organization dispatch")):
        body = {"name": "thief", "function": "nope", "hosts": ["127.0.0.1"], "uris": [path], "methods": ["GET"]}
        taken = server.http("POST", "/v1/api", body, headers=as_acme)
        assert taken.status == status and why in taken.json()["message"], taken.body
    reached = server.http("GET", "/hello", api=True)
    assert reached.status == 200 and reached.json() == {"org": "dispatch"}


def test_skip_auth_refuses_to_serve_beyond_loopback(tmp_path):
    exposed = Server(tmp_path / "data", extra=("--skip-auth", "--host", "0.0.0.0"))
    with pytest.raises(RuntimeError, match="--skip-auth serves the management API to anyone"):
        exposed.start(timeout=30)


def test_skip_auth_on_loopback_warns_and_asks_nobody(tmp_path):
    running = Server(tmp_path / "data", extra=("--skip-auth",)).start()
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{running.port}/v1/secret", headers={"X-Dispatch-Org": ""})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
        assert "authentication is off (--skip-auth)" in running.log.read_text()
    finally:
        running.stop()


def test_a_server_given_a_bootstrap_key_leaves_the_first_start_to_its_holder(tmp_path):
    pem, pub = key_files(tmp_path, "bootstrap")
    running = Server(tmp_path / "data", extra=("--bootstrap-public-key", pub)).start()
    try:
        assert not (tmp_path / "data" / "admin.pem").exists()
        assert not Path(running.env["DISPATCH_CONFIG"]).exists()
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(f"http://127.0.0.1:{running.port}/v1/function", timeout=30)
        assert anonymous.value.code == 401
        ok(running.cli("manage", "bootstrap", "--bootstrap-key", pem, "--key-file", str(tmp_path / "admin.pem")))
        assert json.loads(ok(running.cli("get", "functions", "-o", "json"))) == []
    finally:
        running.stop()


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_a_distributed_installation_is_bootstrapped_and_shared_the_same_way(tmp_path):
    (tmp_path / "hello.py").write_text(HELLO)
    with seeded_cluster(tmp_path, {"hello.py": HELLO}, SEED, ("/v1/function/hello",)) as cluster:
        gateway = cluster.gateway
        again = gateway.cli("manage", "bootstrap", "--bootstrap-key", str(cluster.bootstrap_key),
                            "--key-file", str(tmp_path / "second.pem"))
        assert again.returncode == 1 and "[Code: 401]" in again.stderr  # spent once an organization exists
        assert not (tmp_path / "second.pem").exists()
        pem, pub = key_files(tmp_path, "ci")
        ok(gateway.cli("iam", "create", "serviceaccount", "ci", "--public-key", pub))
        ok(gateway.cli("iam", "create", "policy", "ci-run", "-s", "ci", "-a", "create", "-r", "runs"))
        as_ci = ("--service-account", "ci", "--jwt-private-key", pem)
        run = json.loads(ok(gateway.cli(*as_ci, "exec", "hello", "--wait")))
        assert run["output"] == {"org": "dispatch"}
        assert gateway.cli(*as_ci, "get", "functions").returncode == 1
        anonymous = gateway.http("GET", "/v1/function", headers={"Authorization": ""})
        assert anonymous.status == 401
        # a second gateway: an account deleted through one stops working on the other too
        other = Server(tmp_path / "other", extra=("--role", "gateway", "--bus", AMQP, "--store", DATABASE,
                                                  "--namespace", cluster.namespace)).start()
        try:
            token = ok(gateway.cli(*as_ci, "token")).strip()
            as_ci_http = {"Authorization": f"Bearer {token}"}
            assert other.http("POST", "/v1/runs?functionName=hello", {"blocking": True},
                              headers=as_ci_http).status == 200
            ok(gateway.cli("iam", "delete", "serviceaccount", "ci"))
            deadline = time.monotonic() + 5
            while other.http("GET", "/v1/runs", headers=as_ci_http).status != 401:
                assert time.monotonic() < deadline, "the other gateway still takes the deleted account's token"
                time.sleep(0.05)
        finally:
            other.stop()
