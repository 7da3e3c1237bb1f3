"""The Helm chart of the distributed mode (charts/dispatch), linted and rendered by Helm v4's own
engine (helm-python-sdk) with each values file of charts/dispatch/ci: every object it renders is
valid for Kubernetes 1.30 and the newest schemas kubernetes-validate ships (strict: an unknown
field is an error), every pod meets the Pod Security Standards' restricted profile, and values
that cannot work are refused saying what to set.

No cluster runs here: nothing below shows the objects accepted by a real API server's admission,
the images starting, or the NetworkPolicies enforced by a network plugin.
"""
import base64
import json
import tomllib

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.contract import pod_security
from tests.unit.chart import (
    CHART,
    VALUES_FILES,
    helm,
    objects,
    of_kind,
    pod_specs,
    render,
    rendered,
    values_of,
)

NAMES = [path.name.removesuffix("-values.yaml") for path in VALUES_FILES]
KUBERNETES = ("1.30.0", latest_version())
METRICS = ("dispatch_runs_total", "dispatch_run_duration_seconds", "dispatch_http_requests_total",
           "dispatch_bus_messages_total", "dispatch_event_log_appends_total", "dispatch_event_log_append_seconds",
           "dispatch_projection_lag_events", "dispatch_warm_workers", "dispatch_cold_starts_total",
           "dispatch_build_duration_seconds")


@pytest.mark.parametrize("name", NAMES)
def test_helm_lint_finds_nothing_to_warn_about_with_each_values_file(name):
    report = helm.lint(CHART, values_of(name), strict=True, kube_version="v1.30.0", namespace="dispatch")

    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("name", NAMES)
def test_every_rendered_object_is_valid_kubernetes_from_1_30_on_in_strict_mode(name):
    problems = []
    for obj in rendered(name):
        for release in KUBERNETES:
            try:
                kubernetes_validate.validate(obj, release, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = ".".join(map(str, error.path)) or "(root)"
                problems.append(f"{release} {obj['kind']} {obj['metadata']['name']} {where}: {error.message}")

    assert problems == []


def test_the_strict_validation_refuses_a_field_kubernetes_does_not_have():
    deployment = of_kind(rendered("default"), "Deployment")["dispatch-gateway"]
    deployment["spec"]["template"]["spec"]["containers"][0]["runAsRoot"] = True

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES[0], strict=True)


@pytest.mark.parametrize("name", NAMES)
def test_every_pod_meets_the_restricted_pod_security_standard(name):
    pods = pod_specs(rendered(name))

    assert pods
    assert {workload: pod_security.violations(pod["spec"], pod["metadata"].get("annotations"))
            for workload, pod in pods.items()} == {workload: [] for workload in pods}


@pytest.mark.parametrize("name", NAMES)
def test_every_container_has_a_read_only_root_and_writes_only_to_its_empty_dirs_and_volumes(name):
    for workload, pod in pod_specs(rendered(name)).items():
        volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes") or []}
        for container in pod["spec"]["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, workload
            for mount in container["volumeMounts"]:
                volume = volumes.get(mount["name"], {"persistentVolumeClaim": "from the claim template"})
                assert "emptyDir" in volume or "persistentVolumeClaim" in volume or mount.get("readOnly"), \
                    (workload, mount)


def test_the_restricted_check_notices_a_pod_that_runs_as_root():
    pod = pod_specs(rendered("default"))["dispatch-gateway"]["spec"]
    pod["securityContext"]["runAsUser"] = 0

    assert "Running as Non-root user" in pod_security.violations(pod)


def test_the_image_is_the_server_at_the_charts_app_version_which_is_this_packages_version():
    chart = helm.Chart.load(CHART)
    pods = pod_specs(rendered("default"))

    images = {pod["spec"]["containers"][0]["image"] for pod in pods.values()}
    assert images == {f"dispatch-server:{chart.metadata['appVersion']}"}
    project = tomllib.loads((CHART.parents[1] / "pyproject.toml").read_text())["project"]
    assert chart.metadata["appVersion"] == project["version"]


def test_image_values_choose_the_repository_tag_and_pull_policy():
    values = {**values_of("default"), "image": {"repository": "registry.example.com/dispatch-server",
                                                "tag": "1.2.3", "pullPolicy": "Always"}}
    containers = [pod["spec"]["containers"][0] for pod in pod_specs(objects_of(values)).values()]

    assert {(c["image"], c["imagePullPolicy"]) for c in containers} == {
        ("registry.example.com/dispatch-server:1.2.3", "Always")}


@pytest.mark.parametrize("values, says", [
    ({"store": {"url": "postgresql://db/dispatch"}, "bootstrap": {"existingSecret": "b"}},
     "the bus is missing: set bus.url"),
    ({"bus": {"url": "amqp://mq/"}, "bootstrap": {"existingSecret": "b"}}, "the store is missing: set store.url"),
    ({"bus": {"url": "amqp://mq/"}, "store": {"url": "postgresql://db/d"}}, "nobody could log in"),
    ({"bus": {"url": "redis://mq/"}, "store": {"url": "postgresql://db/d"}, "bootstrap": {"existingSecret": "b"}},
     "bus.url must be an amqp:// or amqps:// URL"),
    ({"rabbitmq": {"enabled": True}, "postgresql": {"enabled": True}, "bootstrap": {"publicKey": "ssh-rsa AAAA"}},
     "bootstrap.publicKey must be a PEM public key"),
    ({"rabbitmq": {"enabled": True}, "postgresql": {"enabled": True}, "oidc": {"issuer": "https://id.example.com"}},
     "oidc.issuer and oidc.clientId go together"),
    ({"rabbitmq": {"enabled": True}, "postgresql": {"enabled": True}, "bootstrap": {"existingSecret": "b"},
      "health": {"port": 8080}}, "health.port 8080 is also a port of the gateway"),
])
def test_values_that_cannot_work_are_refused_saying_what_to_set(values, says):
    with pytest.raises(helm.HelmRenderError, match=says):
        render(values)


@pytest.mark.parametrize("change, says", [
    ({"replicaCount": 3}, "additional properties 'replicaCount' not allowed"),
    ({"gateway": {"replicas": 0}}, "/gateway/replicas"),
    ({"handlers": {"deployments": [{"name": "runs", "groups": ["run"], "replicas": 1}]}}, "must be one of"),
    ({"runtime": {"type": "lambda"}}, "/runtime/type"),
    ({"settings": {"bus": "amqp://elsewhere/"}}, "invalid propertyName 'bus'"),
    ({"settings": {"health_port": 9100}}, "invalid propertyName 'health_port'"),
    ({"health": {"port": 0}}, "/health/port"),
    ({"metrics": {"handlersPort": 9090}}, "additional properties 'handlersPort' not allowed"),
])
def test_the_values_schema_refuses_unknown_keys_and_impossible_values(change, says):
    with pytest.raises(helm.HelmValuesError, match=says):
        render({**values_of("default"), **change})


def test_a_generated_secret_key_is_a_fernet_key_and_a_given_one_is_used_as_it_is():
    from cryptography.fernet import Fernet

    generated = _secret_data(render(values_of("default")))["secret-key"]
    given = Fernet.generate_key().decode()
    chosen = _secret_data(render({**values_of("default"), "secretKey": {"value": given}}))["secret-key"]

    Fernet(generated.encode())
    assert chosen == given


def test_the_in_chart_bus_and_store_urls_name_their_services_and_generated_passwords():
    data = _secret_data(render(values_of("in-chart-services")))

    assert data["bus-url"] == f"amqp://dispatch:{data['rabbitmq-password']}@dispatch-rabbitmq:5672/"
    assert data["store-url"] == f"postgresql://dispatch:{data['postgresql-password']}@dispatch-postgresql:5432/dispatch"
    assert len(data["rabbitmq-password"]) == len(data["postgresql-password"]) == 32
    statefulsets = of_kind(rendered("in-chart-services"), "StatefulSet")
    assert {name: s["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            for name, s in statefulsets.items()} == {"dispatch-rabbitmq": "rabbitmq",
                                                     "dispatch-postgresql": "postgresql"}


def test_the_grafana_dashboard_is_a_labelled_config_map_querying_every_metric_of_dispatch():
    [config_map] = of_kind(rendered("in-chart-services"), "ConfigMap").values()
    dashboard = json.loads(config_map["data"]["dispatch.json"])
    queries = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))

    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert [metric for metric in METRICS if metric not in queries] == []
    assert "ConfigMap" not in {obj["kind"] for obj in rendered("default")}


def test_the_notes_tell_how_to_reach_the_api_log_in_and_list_functions():
    notes = render(values_of("default"))["dispatch/templates/NOTES.txt"]

    assert "kubectl --namespace dispatch port-forward service/dispatch-gateway 8080 8081" in notes
    assert "dispatch --host 127.0.0.1 --port 8080 manage bootstrap --bootstrap-key bootstrap.pem" in notes
    assert "dispatch get functions" in notes
    assert "port 9090 of every gateway and handler pod: /healthz, /readyz and /metrics" in notes


def objects_of(values: dict) -> list[dict]:
    return objects(render(values))


def _secret_data(manifests: dict[str, str]) -> dict[str, str]:
    secret = of_kind(objects(manifests), "Secret")["dispatch"]
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}

