"""`dispatch install` as a user types it: --dry-run prints the chart's manifests rendered by the
embedded Helm with the values given as files, --set and --set-file; without it, the manifests are
applied to the kubeconfig's cluster (here a stand-in API server) with server-side apply, or the
command says in one line that there is no cluster to install into."""
import base64
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dispatch.cli.install import CHART, FIELD_MANAGER, KINDS
from dispatch.cli.main import app
from tests.unit import apply_double
from tests.unit.chart import VALUES_FILES, objects

TRIAL = ["--set", "rabbitmq.enabled=true,postgresql.enabled=true"]


@pytest.fixture
def public_key(tmp_path) -> Path:
    path = tmp_path / "bootstrap.pub"
    path.write_text(yaml.safe_load((CHART / "ci" / "default-values.yaml").read_text())["bootstrap"]["publicKey"])
    return path


@pytest.fixture
def cluster():
    yield from apply_double.serve()


def dispatch(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env={"DISPATCH_CONFIG": "/nonexistent/config.json", **(env or {})})


def printed_objects(stdout: str) -> list[dict]:
    return [document for document in yaml.safe_load_all(stdout) if document]


def test_dry_run_prints_every_object_of_the_chart_for_the_values_given(public_key):
    result = dispatch("install", "--dry-run", *TRIAL, "--set-file", f"bootstrap.publicKey={public_key}",
                      "--namespace", "trial", "--name", "acme")

    assert result.exit_code == 0, result.output
    found = printed_objects(result.stdout)
    assert {(o["kind"], o["metadata"]["name"]) for o in found} >= {
        ("Deployment", "acme-dispatch-gateway"), ("Deployment", "acme-dispatch-handlers-all"),
        ("StatefulSet", "acme-dispatch-rabbitmq"), ("StatefulSet", "acme-dispatch-postgresql"),
        ("Service", "acme-dispatch-gateway"), ("Role", "acme-dispatch-functions")}
    assert {o["metadata"]["namespace"] for o in found} == {"trial"}
    assert "# Source: dispatch/templates/gateway.yaml" in result.stdout
    assert "Log in:" not in result.stdout  # the notes are for an installation, not for a listing


def test_values_files_merge_in_order_and_set_wins_over_them(tmp_path):
    first, second = VALUES_FILES[0], tmp_path / "more.yaml"
    second.write_text("gateway:\n  replicas: 5\nlogLevel: debug\n")

    result = dispatch("install", "--dry-run", "-f", str(first), "--values", str(second), "--set", "gateway.replicas=7")

    found = printed_objects(result.stdout)
    gateway = next(o for o in found if o["metadata"]["name"] == "dispatch-gateway" and o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (gateway["spec"]["replicas"], env["DISPATCH_LOG_LEVEL"]) == (7, "debug")


def test_what_helm_renders_is_what_dry_run_prints(public_key):
    from tests.unit.chart import render

    result = dispatch("install", "--dry-run", *TRIAL, "--set-file", f"bootstrap.publicKey={public_key}",
                      "--set", "secretKey.value=fixed,rabbitmq.password=p1,postgresql.password=p2")
    values = {"rabbitmq": {"enabled": True, "password": "p1"}, "postgresql": {"enabled": True, "password": "p2"},
              "bootstrap": {"publicKey": public_key.read_text()}, "secretKey": {"value": "fixed"}}

    assert sorted(map(str, printed_objects(result.stdout))) == sorted(map(str, objects(render(values))))


@pytest.mark.parametrize("args, says", [
    ((), "the bus is missing: set bus.url"),
    ((*TRIAL, "--set", "gateway.replicas=0"), "invalid values: at '/gateway/replicas'"),
    ((*TRIAL, "--set-file", "bootstrap.publicKey=/nonexistent/bootstrap.pub"), "no such file or directory"),
    (("-f", "/nonexistent/values.yaml"), "cannot read /nonexistent/values.yaml"),
])
def test_values_that_cannot_be_rendered_fail_in_one_line_with_exit_1(args, says):
    result = dispatch("install", "--dry-run", *args)

    assert result.exit_code == 1
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_without_a_kubeconfig_or_a_cluster_install_says_so_in_one_line(public_key, tmp_path):
    values = ["install", *TRIAL, "--set-file", f"bootstrap.publicKey={public_key}"]

    missing = dispatch(*values, env={"KUBECONFIG": str(tmp_path / "none"), "KUBERNETES_SERVICE_HOST": ""})
    unreachable = dispatch(*values, "--kubeconfig", str(_unreachable(tmp_path)))

    assert missing.exit_code == unreachable.exit_code == 1
    assert missing.stderr.strip() == (f"no Kubernetes cluster to install into: no kubeconfig at {tmp_path / 'none'}, "
                                      "and this is not a pod (--dry-run prints the manifests without one)")
    assert unreachable.stderr.startswith("cannot reach the Kubernetes API at http://127.0.0.1:1: ")
    assert len(unreachable.stderr.strip().splitlines()) == 1
    assert missing.stdout == unreachable.stdout == ""


def test_install_applies_every_object_server_side_network_policies_before_pods_into_a_new_restricted_namespace(
        cluster, public_key, tmp_path):
    result = dispatch("install", *TRIAL, "--set-file", f"bootstrap.publicKey={public_key}", "--namespace", "trial",
                      "--kubeconfig", str(cluster.kubeconfig(tmp_path / "kubeconfig")))

    assert result.exit_code == 0, result.output
    applied = cluster.applied()
    kinds = [request.body["kind"] for request in applied]
    assert kinds == sorted(kinds, key=list(KINDS).index)
    assert kinds.index("NetworkPolicy") < kinds.index("StatefulSet") < kinds.index("Deployment")
    assert {(r.query["fieldManager"][0], r.query["force"][0]) for r in applied} == {(FIELD_MANAGER, "true")}
    assert all(r.body["metadata"]["annotations"]["meta.helm.sh/release-name"] == "dispatch" for r in applied)
    namespace = cluster.stored["/api/v1/namespaces/trial"]
    assert namespace["metadata"]["labels"] == {"pod-security.kubernetes.io/enforce": "restricted"}
    assert "deployment/dispatch-gateway serverside-applied" in result.stdout
    assert "kubectl --namespace trial port-forward service/dispatch-gateway 8080 8081" in result.stdout


def test_installing_again_keeps_the_generated_secret_key_and_passwords(cluster, public_key, tmp_path):
    args = ["install", *TRIAL, "--set-file", f"bootstrap.publicKey={public_key}",
            "--kubeconfig", str(cluster.kubeconfig(tmp_path / "kubeconfig"))]
    secret = "/api/v1/namespaces/dispatch/secrets/dispatch"

    first = dispatch(*args)
    generated = dict(cluster.stored[secret]["data"])
    second = dispatch(*args)

    assert first.exit_code == second.exit_code == 0, second.output
    assert cluster.stored[secret]["data"] == generated
    assert len(base64.b64decode(generated["secret-key"])) == 44  # a Fernet key: 32 bytes, url-safe base64
    assert "namespace/dispatch created" in first.stdout and "namespace/dispatch created" not in second.stdout


def _unreachable(tmp_path: Path) -> Path:
    cluster = apply_double.Cluster(url="http://127.0.0.1:1")
    return cluster.kubeconfig(tmp_path / "unreachable")
