"""What the chart's objects tell the server and the cluster, read back through the server's own
code: the DISPATCH_* variables parse into the server's Settings (a misspelt one would be ignored
there), the URLs and keys come from Secrets and never from a command line, the gateways and handler
groups are the server's real roles and groups, the Role holds what the Kubernetes runtime calls,
and the NetworkPolicies (the chart's, and the one the runtime writes for function pods from the
chart's settings) keep function pods from the management API, the bus and the store.

NetworkPolicies are evaluated here by the documented rules of selectors; no network plugin
enforces them.
"""
import base64
import os

import pytest
from cryptography.fernet import Fernet

from dispatch.drivers.kubernetes import manifests, options_from, policy
from dispatch.handlers.adapters import HANDLER_GROUPS, handler_groups
from dispatch.settings import Settings, load_settings
from dispatch.telemetry import tracing
from tests.unit.chart import (
    CHART,
    NAMESPACE,
    VALUES_FILES,
    env_of,
    helm,
    matches,
    objects,
    of_kind,
    pod_specs,
    render,
    rendered,
    values_of,
)

NAMES = [path.name.removesuffix("-values.yaml") for path in VALUES_FILES]
SECRETS = {"DISPATCH_BUS": "amqp://dispatch:bus-secret@mq:5672/",
           "DISPATCH_STORE": "postgresql://dispatch:db-secret@db/d",
           "DISPATCH_SECRET_KEY": Fernet.generate_key().decode()}
EVERY_VERB = ["get", "list", "create", "update", "patch", "delete"]
RUNTIME_RULES = [
    {"apiGroups": [""], "resources": ["secrets", "services"], "verbs": EVERY_VERB},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": EVERY_VERB},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": EVERY_VERB},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "create", "update"]},
]
FUNCTION_POD = {manifests.MANAGED_BY: "dispatch", **manifests.selector(manifests.Options(), "faas-1")}
INGRESS_CONTROLLER = {"app.kubernetes.io/name": "ingress-nginx"}
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}


def dispatch_containers(found: list[dict]) -> dict[str, dict]:
    return {name: pod["spec"]["containers"][0] for name, pod in pod_specs(found).items()
            if pod["metadata"]["labels"]["app.kubernetes.io/component"] in ("gateway", "handlers")}


def settings_of(container: dict, monkeypatch) -> Settings:
    """The Settings a `dispatch server` started in this container reads, Secrets filled in."""
    for name in [name for name in os.environ if name.startswith("DISPATCH_")]:
        monkeypatch.delenv(name)
    for name, item in env_of(container).items():
        if name.startswith("DISPATCH_"):
            monkeypatch.setenv(name, SECRETS[name] if "valueFrom" in item else item["value"])
    return load_settings()


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_the_chart_gives_is_one_the_server_reads(name):
    for workload, container in dispatch_containers(rendered(name)).items():
        given = {key.removeprefix("DISPATCH_").lower() for key in env_of(container) if key.startswith("DISPATCH_")}

        assert given - set(Settings.model_fields) == set(), workload


@pytest.mark.parametrize("name", NAMES)
def test_gateways_and_handlers_run_the_servers_roles_and_handler_groups(name, monkeypatch):
    found = rendered(name)
    groups = []
    for workload, container in dispatch_containers(found).items():
        settings = settings_of(container, monkeypatch)
        assert container["command"] == ["dispatch", "server"] and "args" not in container
        assert (settings.bus, settings.store) == (SECRETS["DISPATCH_BUS"], SECRETS["DISPATCH_STORE"])
        if workload.endswith("-gateway"):
            assert (settings.role, settings.host, handler_groups(settings)) == ("gateway", "0.0.0.0", set())
        else:
            assert settings.role == "handlers"
            groups += handler_groups(settings)
    assert sorted(groups) == sorted(HANDLER_GROUPS)  # each group run by exactly one Deployment


def test_the_gateway_answers_to_its_service_names_and_knows_the_bootstrap_key_it_mounts(monkeypatch):
    pod = pod_specs(rendered("default"))["dispatch-gateway"]["spec"]
    settings = settings_of(pod["containers"][0], monkeypatch)

    assert {"dispatch-gateway", "dispatch-gateway.dispatch.svc.cluster.local"} <= set(settings.public_names)
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volume = {v["name"]: v for v in pod["volumes"]}[mounts[str(settings.bootstrap_public_key.parent)]]
    assert volume["secret"]["items"] == [{"key": "bootstrap.pub", "path": settings.bootstrap_public_key.name}]
    secret = of_kind(rendered("default"), "Secret")[volume["secret"]["secretName"]]
    assert "-----BEGIN PUBLIC KEY-----" in base64.b64decode(secret["data"]["bootstrap.pub"]).decode()


@pytest.mark.parametrize("name", NAMES)
def test_no_url_password_or_key_is_on_a_command_line_and_each_comes_from_a_secret_that_holds_it(name):
    found = rendered(name)
    with helm.Chart.load(CHART) as chart:
        values = chart.merge_values(values_of(name))
    secrets = {secret_name: set(secret.get("data") or {}) for secret_name, secret in of_kind(found, "Secret").items()}
    for own in ("bus", "store", "secretKey", "bootstrap"):
        if values[own]["existingSecret"]:
            secrets.setdefault(values[own]["existingSecret"], set()).add(values[own]["existingSecretKey"])
    for extra in values["extraEnv"]:  # the user's own Secrets, named in their values
        if reference := extra.get("valueFrom", {}).get("secretKeyRef"):
            secrets.setdefault(reference["name"], set()).add(reference["key"])
    for workload, pod in pod_specs(found).items():
        for container in pod["spec"]["containers"]:
            line = " ".join(container.get("command", []) + container.get("args", []))
            assert "://" not in line and "password" not in line.lower(), workload
            for item in env_of(container).values():
                reference = item.get("valueFrom", {}).get("secretKeyRef")
                if reference is not None:
                    assert reference["key"] in secrets.get(reference["name"], set()), (workload, item["name"])
    for workload, container in dispatch_containers(found).items():
        assert {"DISPATCH_BUS", "DISPATCH_STORE", "DISPATCH_SECRET_KEY"} <= {
            key for key, item in env_of(container).items() if "valueFrom" in item}, workload


# ---- Kubernetes runtime: service accounts and the Role


def test_the_role_in_the_functions_namespace_holds_only_what_the_kubernetes_runtime_calls():
    found = rendered("default")
    [role] = of_kind(found, "Role").values()
    [binding] = of_kind(found, "RoleBinding").values()
    handlers = pod_specs(found)["dispatch-handlers-all"]["spec"]
    gateway = pod_specs(found)["dispatch-gateway"]["spec"]

    assert role["rules"] == RUNTIME_RULES
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": handlers["serviceAccountName"],
                                    "namespace": NAMESPACE}]
    assert handlers["automountServiceAccountToken"] is True
    assert (gateway["serviceAccountName"], gateway["automountServiceAccountToken"]) == ("dispatch-gateway", False)


def test_functions_in_a_namespace_of_their_own_get_the_role_there_and_know_where_dispatch_runs(monkeypatch):
    found = rendered("functions-namespace")
    [role] = of_kind(found, "Role").values()
    [binding] = of_kind(found, "RoleBinding").values()
    settings = settings_of(dispatch_containers(found)["dispatch-handlers-all"], monkeypatch)

    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "dispatch-functions"
    assert binding["subjects"][0]["namespace"] == NAMESPACE
    assert (settings.kubernetes_namespace, settings.kubernetes_dispatch_namespace) == ("dispatch-functions", NAMESPACE)
    assert (settings.namespace, settings.kubernetes_private_cidrs) == (
        "production", ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])


def test_without_the_function_network_policy_the_role_has_no_networkpolicies_verbs(monkeypatch):
    values = values_of("default")
    values["runtime"] = {"kubernetes": {"networkPolicy": False}}
    found = objects(render(values))
    [role] = of_kind(found, "Role").values()

    assert role["rules"] == RUNTIME_RULES[:-1]
    settings = settings_of(dispatch_containers(found)["dispatch-handlers-all"], monkeypatch)
    assert settings.kubernetes_network_policy is False


def test_rbac_off_writes_no_role_and_uses_the_service_account_given():
    found = rendered("no-rbac")
    handlers = pod_specs(found)["dispatch-handlers-all"]["spec"]

    assert {obj["kind"] for obj in found} & {"Role", "RoleBinding", "ServiceAccount", "NetworkPolicy"} == set()
    assert (handlers["serviceAccountName"], handlers["automountServiceAccountToken"]) == (
        "dispatch-functions-operator", True)


def test_the_local_runtime_gets_neither_a_role_nor_a_token(monkeypatch):
    found = rendered("local-runtime")
    handlers = pod_specs(found)["dispatch-handlers-all"]["spec"]

    assert {obj["kind"] for obj in found} & {"Role", "RoleBinding"} == set()
    assert handlers["automountServiceAccountToken"] is False
    assert settings_of(handlers["containers"][0], monkeypatch).runtime == "local"


# ---- NetworkPolicies


def allowed(found: list[dict], target: str, port: str, source: dict, source_namespace: str = NAMESPACE) -> bool:
    """Whether the chart's NetworkPolicies let a pod with `source` labels connect to workload
    `target` on its named `port` (the rules of networking.k8s.io/v1, ingress side)."""
    labels = pod_specs(found)[target]["metadata"]["labels"]
    selecting = [p for p in of_kind(found, "NetworkPolicy").values() if matches(p["spec"]["podSelector"], labels)]
    if not selecting:
        return True
    return any(_admits(rule, port, source, source_namespace)
               for found_policy in selecting for rule in found_policy["spec"].get("ingress", []))


def _admits(rule: dict, port: str, source: dict, source_namespace: str) -> bool:
    if rule.get("ports") and not any(p["port"] == port for p in rule["ports"]):
        return False
    if "from" not in rule:
        return True
    for peer in rule["from"]:
        if "ipBlock" in peer:
            continue
        in_namespace = source_namespace == NAMESPACE if "namespaceSelector" not in peer else True
        if in_namespace and matches(peer.get("podSelector", {}), source):
            return True
    return False


def test_function_pods_reach_the_user_apis_but_not_the_management_api_nor_the_handlers():
    found = rendered("default")
    gateway = pod_specs(found)["dispatch-gateway"]["metadata"]["labels"]

    assert not allowed(found, "dispatch-gateway", "http", FUNCTION_POD)
    assert allowed(found, "dispatch-gateway", "api", FUNCTION_POD)
    assert allowed(found, "dispatch-gateway", "http", INGRESS_CONTROLLER, "ingress-nginx")
    assert not allowed(found, "dispatch-handlers-all", "http", gateway)


def test_only_the_gateways_and_handlers_reach_the_in_chart_bus_and_store():
    found = rendered("in-chart-services")
    labels = {name: pod["metadata"]["labels"] for name, pod in pod_specs(found).items()}

    for target, port in (("dispatch-rabbitmq", 5672), ("dispatch-postgresql", 5432)):
        assert allowed(found, target, port, labels["dispatch-gateway"])
        assert allowed(found, target, port, labels["dispatch-handlers-all"])
        assert not allowed(found, target, port, FUNCTION_POD)
        assert not allowed(found, target, port, INGRESS_CONTROLLER)


@pytest.mark.parametrize("name", ["default", "ingress-autoscaling"])
def test_prometheus_reaches_the_health_port_of_every_gateway_and_handler_and_function_pods_do_not(name):
    found = rendered(name)
    workloads = list(dispatch_containers(found))

    assert len(workloads) >= 2
    for workload in workloads:
        assert allowed(found, workload, "health", PROMETHEUS, "monitoring"), workload
        assert not allowed(found, workload, "health", FUNCTION_POD), workload


def test_handlers_take_connections_on_their_health_port_alone():
    found = rendered("default")
    handlers = dispatch_containers(found)["dispatch-handlers-all"]

    assert [port["name"] for port in handlers["ports"]] == ["health"]
    for port in ("http", "api"):
        assert not allowed(found, "dispatch-handlers-all", port, PROMETHEUS, "monitoring")


@pytest.mark.parametrize("name", ["in-chart-services", "functions-namespace"])
def test_the_runtimes_function_policy_knows_the_charts_pods_as_callers_and_keeps_functions_from_them(
        name, monkeypatch):
    found = rendered(name)
    settings = settings_of(dispatch_containers(found)["dispatch-handlers-all"], monkeypatch)
    function_policy = policy.network_policy(options_from(settings))
    callers = [peer["podSelector"] for peer in function_policy["spec"]["ingress"][0]["from"]]
    # Egress to pods, DNS apart (the rule with ports): every pod but Dispatch's.
    reachable = [peer["podSelector"] for rule in function_policy["spec"]["egress"] if "ports" not in rule
                 for peer in rule["to"] if "podSelector" in peer]
    pods = {workload: pod["metadata"]["labels"] for workload, pod in pod_specs(found).items()}

    assert matches(function_policy["spec"]["podSelector"], {**FUNCTION_POD, manifests.INSTALLATION: settings.namespace})
    for workload, labels in pods.items():
        component = labels["app.kubernetes.io/component"]
        assert any(matches(c, labels) for c in callers) == (component in ("gateway", "handlers")), workload
        assert not any(matches(r, labels) for r in reachable), workload
    assert any(matches(r, INGRESS_CONTROLLER) for r in reachable)


# ---- probes, metrics, scaling, exposure


def named_port(container: dict, name: str) -> int:
    [number] = [port["containerPort"] for port in container.get("ports") or [] if port["name"] == name]
    return number


@pytest.mark.parametrize("name", NAMES)
def test_every_gateway_and_handler_serves_its_health_port_on_the_pods_address_and_is_probed_there(
        name, monkeypatch):
    for workload, container in dispatch_containers(rendered(name)).items():
        settings = settings_of(container, monkeypatch)
        probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}

        assert settings.health_port == named_port(container, "health") > 0, workload
        assert settings.host == "0.0.0.0", workload  # the kubelet comes from outside the pod
        assert probes == {"startupProbe": {"path": "/healthz", "port": "health"},
                          "livenessProbe": {"path": "/healthz", "port": "health"},
                          "readinessProbe": {"path": "/readyz", "port": "health"}}, workload


@pytest.mark.parametrize("name, port", [("default", 9090), ("ingress-autoscaling", 9100)])
def test_every_gateway_and_handler_is_scraped_on_its_health_port_at_metrics(name, port, monkeypatch):
    found = rendered(name)
    for workload in dispatch_containers(found):
        pod = pod_specs(found)[workload]
        annotations = pod["metadata"]["annotations"]

        assert settings_of(pod["spec"]["containers"][0], monkeypatch).health_port == port
        assert {key: annotations[key] for key in ("prometheus.io/scrape", "prometheus.io/port",
                                                  "prometheus.io/path")} == {
            "prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}, workload


def test_with_metrics_off_no_pod_is_scraped_and_every_one_is_still_probed():
    found = objects(render({**values_of("default"), "metrics": {"enabled": False}}))
    pods = pod_specs(found)

    assert set(pods) == {"dispatch-gateway", "dispatch-handlers-all"}
    for workload, pod in pods.items():
        assert [key for key in pod["metadata"]["annotations"] if key.startswith("prometheus.io/")] == [], workload
        assert pod["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] == "health", workload


def test_autoscaled_gateways_have_an_autoscaler_a_disruption_budget_and_no_fixed_replicas():
    found = rendered("ingress-autoscaling")
    [autoscaler] = of_kind(found, "HorizontalPodAutoscaler").values()
    [budget] = of_kind(found, "PodDisruptionBudget").values()

    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                    "name": "dispatch-gateway"}
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (3, 12)
    assert "replicas" not in of_kind(found, "Deployment")["dispatch-gateway"]["spec"]
    assert matches(budget["spec"]["selector"], pod_specs(found)["dispatch-gateway"]["metadata"]["labels"])


def test_a_single_gateway_gets_no_disruption_budget_that_would_block_node_drains():
    values = values_of("default")
    values["gateway"] = {"replicas": 1}

    assert of_kind(objects(render(values)), "PodDisruptionBudget") == {}
    assert of_kind(rendered("default"), "PodDisruptionBudget") != {}


def test_the_ingress_sends_each_host_to_its_port_and_the_management_host_is_a_public_name(monkeypatch):
    found = rendered("ingress-autoscaling")
    [ingress] = of_kind(found, "Ingress").values()
    settings = settings_of(dispatch_containers(found)["dispatch-gateway"], monkeypatch)

    assert {rule["host"]: rule["http"]["paths"][0]["backend"]["service"] for rule in ingress["spec"]["rules"]} == {
        "dispatch.example.com": {"name": "dispatch-gateway", "port": {"name": "http"}},
        "api.example.com": {"name": "dispatch-gateway", "port": {"name": "api"}}}
    assert {"dispatch.example.com", "dispatch.internal.example.com"} <= set(settings.public_names)
    assert (settings.oidc_issuer, settings.oidc_client_id) == ("https://accounts.example.com", "dispatch-cli")


def test_split_handler_deployments_each_run_their_groups_with_their_replicas_and_resources(monkeypatch):
    found = rendered("ingress-autoscaling")
    deployments = {name: d for name, d in of_kind(found, "Deployment").items() if "-handlers-" in name}
    runs = deployments["dispatch-handlers-runs"]

    assert set(deployments) == {"dispatch-handlers-runs", "dispatch-handlers-control"}
    assert runs["spec"]["replicas"] == 4
    assert runs["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"memory": "2Gi"}
    assert handler_groups(settings_of(runs["spec"]["template"]["spec"]["containers"][0], monkeypatch)) == {"runs"}
    assert settings_of(runs["spec"]["template"]["spec"]["containers"][0], monkeypatch).max_workers_per_function == 8


@pytest.mark.parametrize("name", NAMES)
def test_tracing_reaches_every_gateway_and_handler_as_otel_variables_the_server_exports_with(name):
    traced = name == "ingress-autoscaling"  # the values file that sets tracing.endpoint
    for workload, container in dispatch_containers(rendered(name)).items():
        env = env_of(container)
        given = {key: item.get("value", "from a Secret") for key, item in env.items() if key.startswith("OTEL_")}
        exporters = tracing.exporters_from(given)
        if not traced:
            assert (given, exporters) == ({}, []), workload
            continue
        assert [type(exporter).__module__ for exporter in exporters] == [
            "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"], workload
        assert given["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"
        assert (given["OTEL_TRACES_SAMPLER"], given["OTEL_TRACES_SAMPLER_ARG"]) == ("parentbased_traceidratio", "0.25")
        assert env["OTEL_EXPORTER_OTLP_HEADERS"]["valueFrom"]["secretKeyRef"]["name"] == "dispatch-otlp"
