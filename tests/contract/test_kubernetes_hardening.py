"""Function pods stay in their box, as far as the objects the runtime writes can say: the pod spec
meets the Pod Security Standards' `restricted` profile (checked as the Kubernetes documentation
lists it, pod_security.py), its root filesystem is read-only with a capped /tmp, it has no token and
carries the function's limits, and the installation's NetworkPolicy lets only Dispatch's callers in
and lets functions reach DNS, the internet and other pods, never Dispatch's own. Every object goes
through the API double, which validates it against the Kubernetes 1.30 schemas (strict).

No cluster enforces any of this here: the policy's meaning is evaluated below by the documented
rules of label selectors, not by a network plugin.
"""
import asyncio
import copy
import textwrap
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from dispatch.drivers.kubernetes import Options, options_from
from dispatch.drivers.kubernetes.policy import outside
from dispatch.drivers.ports import BuildFailed, output_message
from dispatch.settings import Settings
from tests.contract import pod_security
from tests.contract.kubernetes_api import SCHEMA_VERSION
from tests.contract.test_kubernetes_runtime import function, node, owned, runtimes  # noqa: F401 (fixtures)

GATEWAY = {"app.kubernetes.io/name": "dispatch", "app.kubernetes.io/component": "gateway"}
HANDLERS = {"app.kubernetes.io/name": "dispatch", "app.kubernetes.io/component": "handlers"}
RABBITMQ = {"app.kubernetes.io/name": "dispatch", "app.kubernetes.io/component": "rabbitmq"}
POSTGRESQL = {"app.kubernetes.io/name": "dispatch", "app.kubernetes.io/component": "postgresql"}


async def pod_of(kube, runtimes, tmp_path, **fields) -> dict:
    spec = function(tmp_path, **fields)
    await runtimes().deploy(spec)
    return owned(kube, spec.faas_id)["Deployment"]["spec"]["template"]["spec"]


def policy_of(kube) -> dict:
    [policy] = kube.of_kind("NetworkPolicy").values()
    return policy


# ---- the pod


async def test_every_function_pod_meets_the_restricted_pod_security_standard(kube, runtimes, tmp_path):
    pod = await pod_of(kube, runtimes, tmp_path, memory_mb=128, cpus=0.5)

    assert pod_security.violations(pod) == []


@pytest.mark.parametrize("control, breach", [
    ("Seccomp", lambda pod: pod["securityContext"].pop("seccompProfile")),
    ("Running as Non-root user", lambda pod: pod["initContainers"][0]["securityContext"].update(runAsUser=0)),
    ("Running as Non-root", lambda pod: [c.pop("runAsNonRoot") for c in
                                         [pod["securityContext"]] + [c["securityContext"] for c in pod["containers"]]]),
    ("Privilege Escalation", lambda pod: pod["containers"][0]["securityContext"].pop("allowPrivilegeEscalation")),
    ("Capabilities (restricted)", lambda pod: pod["containers"][0]["securityContext"]["capabilities"].update(
        add=["SYS_ADMIN"])),
    ("Capabilities", lambda pod: pod["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"])),
    ("Volume Types", lambda pod: pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})),
    ("HostPath Volumes", lambda pod: pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})),
    ("Host Namespaces", lambda pod: pod.update(hostNetwork=True)),
    ("Privileged Containers", lambda pod: pod["containers"][0]["securityContext"].update(privileged=True)),
])
async def test_the_restricted_checks_refuse_a_pod_spec_without_what_the_profile_requires(
        kube, runtimes, tmp_path, control, breach):
    pod = copy.deepcopy(await pod_of(kube, runtimes, tmp_path))

    breach(pod)

    assert control in pod_security.violations(pod)


async def test_a_function_pod_writes_only_to_its_source_and_a_capped_tmp_and_carries_its_limits(
        kube, runtimes, tmp_path):
    pod = await pod_of(kube, runtimes, tmp_path, memory_mb=128, cpus=0.5, max_output_bytes=1000)

    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsGroup"] == 65532
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert writable == {"/function", "/tmp"}
        assert container["resources"]["limits"] == {"memory": "128Mi", "cpu": "500m"}
    command = pod["containers"][0]["command"]
    assert command[command.index("--max-output-bytes") + 1] == "1000"


async def test_an_output_over_the_cap_is_refused_by_the_server_and_by_the_runtime_when_the_function_lifts_it(
        kube, runtimes, node, tmp_path):
    runtime = runtimes(service_url=f"http://127.0.0.1:{node.port}/")
    spec = function(tmp_path, text=textwrap.dedent("""
        import dispatch.runtimes.python3.invoke as server
        def handle(context, payload):
            if payload["lift"]:
                server.max_output_bytes = 1 << 40
            return "x" * payload["size"]
        """), max_output_bytes=1000)
    await runtime.deploy(spec)

    within = await runtime.invoke(spec.faas_id, {}, {"lift": False, "size": 900}, 5000)
    refused = await runtime.invoke(spec.faas_id, {}, {"lift": False, "size": 2000}, 5000)
    lifted = await runtime.invoke(spec.faas_id, {}, {"lift": True, "size": 2000}, 5000)

    assert (len(within.output), within.error) == (900, None)
    assert refused.error["message"] == lifted.error["message"] == output_message(1000)


# ---- the NetworkPolicy


async def test_the_installations_network_policy_is_written_before_any_function_pod_and_once(kube, runtimes, tmp_path):
    runtime = runtimes()
    await runtime.deploy(function(tmp_path))
    await runtime.deploy(function(tmp_path))

    writes = [(verb, kind) for verb, kind, _ in kube.writes]
    assert writes.index(("create", "NetworkPolicy")) < writes.index(("create", "Deployment"))
    assert writes.count(("create", "NetworkPolicy")) == 1 and ("replace", "NetworkPolicy") not in writes
    policy = policy_of(kube)
    assert policy["metadata"]["name"] == "dispatch-functions-test"
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"dispatch.io/installation": "test"},
                                             "matchExpressions": [{"key": "dispatch.io/faas-id",
                                                                   "operator": "Exists"}]}


async def test_only_dispatchs_gateways_and_handlers_may_call_a_function_on_its_port(kube, runtimes, tmp_path):
    await runtimes().deploy(function(tmp_path))

    [rule] = policy_of(kube)["spec"]["ingress"]

    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert allowed(rule["from"], GATEWAY, "default") and allowed(rule["from"], HANDLERS, "default")
    for stranger in ({"app": "shop"}, RABBITMQ, {"app.kubernetes.io/component": "gateway"}):
        assert not allowed(rule["from"], stranger, "default")
    assert not allowed(rule["from"], GATEWAY, "elsewhere")


async def test_functions_reach_dns_the_internet_and_other_pods_but_no_pod_of_dispatch(kube, runtimes, tmp_path):
    await runtimes().deploy(function(tmp_path))

    dns, internet, pods = policy_of(kube)["spec"]["egress"]

    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert allowed(dns["to"], {"k8s-app": "kube-dns"}, "kube-system")
    v4, v6 = (peer["ipBlock"] for peer in internet["to"])
    assert (v4["cidr"], v6["cidr"]) == ("0.0.0.0/0", "::/0")
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(v4["except"])
    assert "ports" not in internet and "ports" not in pods
    for theirs in (GATEWAY, HANDLERS, RABBITMQ, POSTGRESQL):
        assert not allowed(pods["to"], theirs, "default")
        assert not allowed(pods["to"], {**theirs, "pod-template-hash": "abc"}, "dispatch")
    for other in ({"app": "shop"}, {}, {"app.kubernetes.io/name": "dispatch", "app.kubernetes.io/component": "ui"},
                  {"app.kubernetes.io/name": "shop", "app.kubernetes.io/component": "gateway"}):
        assert allowed(pods["to"], other, "default")


async def test_the_network_policy_follows_the_settings(kube, runtimes, tmp_path):
    settings = Settings(kubernetes_dispatch_namespace="dispatch-system", kubernetes_caller_labels=[{"app": "runner"}],
                        kubernetes_protected_labels=[{"app": "runner"}, {"app": "db", "tier": "data"}],
                        kubernetes_private_cidrs=["10.0.0.0/8"], function_tmp_mb=16)
    options = options_from(settings)
    runtime = runtimes()
    runtime.options = Options(**{**vars(options), "namespace": "default", "installation": "test"})
    pod = await pod_of(kube, lambda: runtime, tmp_path)

    spec = policy_of(kube)["spec"]
    [ingress], (_, internet, pods) = spec["ingress"], spec["egress"]
    assert allowed(ingress["from"], {"app": "runner"}, "dispatch-system")
    assert not allowed(ingress["from"], {"app": "runner"}, "default")
    assert not allowed(ingress["from"], GATEWAY, "dispatch-system")
    assert internet["to"][0]["ipBlock"] == {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}
    assert internet["to"][1]["ipBlock"] == {"cidr": "::/0"}
    assert not allowed(pods["to"], {"app": "runner"}, "default")
    assert not allowed(pods["to"], {"app": "db", "tier": "data"}, "default")
    assert not allowed(pods["to"], {"app": "anything"}, "dispatch-system")
    assert allowed(pods["to"], {"app": "db", "tier": "cache"}, "default")
    assert allowed(pods["to"], GATEWAY, "default")
    assert {v["name"]: v for v in pod["volumes"]}["tmp"]["emptyDir"]["sizeLimit"] == "16Mi"


async def test_no_network_policy_is_written_when_the_settings_turn_it_off(kube, runtimes, tmp_path):
    runtime = runtimes()
    runtime.options = Options(namespace="default", installation="test", network_policy=False)

    await runtime.deploy(function(tmp_path))

    assert kube.of_kind("NetworkPolicy") == {}


@pytest.mark.parametrize("protected", [
    [], [{}], [GATEWAY], [GATEWAY, HANDLERS, RABBITMQ, POSTGRESQL],
    [{"a": "1", "b": "2"}, {"b": "3", "c": "4"}, {"a": "5"}],
])
def test_the_pods_outside_the_protected_selectors_are_exactly_those_none_of_them_matches(protected):
    peers = [{"podSelector": selector} for selector in outside(protected)]
    values = ["1", "2", "3", "4", "5", None]
    for a in values:
        for b in values:
            for c in values:
                labels = {key: value for key, value in (("a", a), ("b", b), ("c", c)) if value is not None}
                for extra in ({}, dict(GATEWAY), dict(RABBITMQ)):
                    pod = {**labels, **extra}
                    matched = any(all(pod.get(k) == v for k, v in selector.items()) for selector in protected)
                    assert allowed(peers, pod, "default") is not matched, pod


# ---- label selectors, as the API documents them


def allowed(peers: list[dict], labels: dict, namespace: str, own_namespace: str = "default") -> bool:
    """Whether a pod with `labels` in `namespace` is one of the NetworkPolicy peers: a peer with a
    podSelector alone selects pods of the policy's own namespace; with a namespaceSelector, pods of
    the namespaces it selects (by their kubernetes.io/metadata.name label here)."""
    for peer in peers:
        if "namespaceSelector" in peer:
            in_namespace = matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace})
        else:
            in_namespace = namespace == own_namespace
        if in_namespace and matches(peer.get("podSelector", {}), labels):
            return True
    return False


def matches(selector: dict, labels: dict) -> bool:
    """A LabelSelector: matchLabels and matchExpressions ANDed; NotIn and DoesNotExist match a
    missing key; an empty selector matches everything."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if not {"In": present and labels[key] in values, "NotIn": not present or labels[key] not in values,
                "Exists": present, "DoesNotExist": not present}[operator]:
            return False
    return True


# ---- permissions


def documented_role() -> dict:
    """The Role of docs/kubernetes-runtime.md, as an operator would apply it."""
    text = (Path(__file__).parents[2] / "docs" / "kubernetes-runtime.md").read_text()
    block = text.split("### Permissions", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    [role] = [document for document in yaml.safe_load_all(block) if document["kind"] == "Role"]
    for document in yaml.safe_load_all(block):
        kubernetes_validate.validate(document, SCHEMA_VERSION, strict=True)
    return role


async def test_the_documented_role_allows_every_request_of_a_functions_whole_life(kube, runtimes, node, tmp_path):
    kube.rules = documented_role()["rules"]
    runtime = runtimes(service_url=f"http://127.0.0.1:{node.port}/", idle=0.2)
    first = function(tmp_path, min_replicas=0, max_replicas=3)
    await runtime.deploy(first)
    await runtime.deploy(function(tmp_path, text="def handle(c, p):\n    return 2\n", faas_id=first.faas_id,
                                  min_replicas=0, max_replicas=3))
    deployment = ("Deployment", "default", f"fn-{first.faas_id}")
    for _ in range(100):  # idle: scaled to zero
        if kube.objects[deployment]["spec"]["replicas"] == 0:
            break
        await asyncio.sleep(0.05)
    assert kube.objects[deployment]["spec"]["replicas"] == 0

    woken = await runtime.invoke(first.faas_id, {}, None, 5000)
    await runtime.reconcile({first.faas_id})
    await runtime.undeploy(first.faas_id)
    await runtimes().reconcile(set())  # a restarted server: orphans looked for, and removed

    assert (woken.output, woken.error) == (2, None)
    assert kube.forbidden == []
    assert owned(kube, first.faas_id) == {}


async def test_a_role_without_networkpolicies_fails_the_deploy_saying_what_is_forbidden(kube, runtimes, tmp_path):
    kube.rules = [rule for rule in documented_role()["rules"] if "networkpolicies" not in rule["resources"]]

    with pytest.raises(BuildFailed, match="networkpolicies is forbidden"):
        await runtimes().deploy(function(tmp_path))
    assert kube.of_kind("Deployment") == {}
