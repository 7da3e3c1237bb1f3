"""The Role the Helm chart writes for the Kubernetes runtime, held against the runtime itself: the
runtime runs a function's whole life (deploy, redeploy, scale to zero and back, a run, reconcile,
undeploy, the orphan sweep of a restart) on the API server double, bound to exactly the chart's
rules, and no request is refused. The double answers 403 to a request the rules do not allow, as
RBAC does; no real API server is involved.
"""
import asyncio

from tests.contract import kubernetes_api
from tests.contract.test_kubernetes_runtime import function, node, owned, runtimes  # noqa: F401 (fixtures)
from tests.unit.chart import of_kind, rendered

PATHS_NOT_TAKEN_HERE = {
    ("services", "update"), ("horizontalpodautoscalers", "update"), ("networkpolicies", "update"),
    ("services", "patch"), ("horizontalpodautoscalers", "patch"), ("pods", "list")}
"""Calls the runtime makes on paths this life may not take: replacing in place an object a redeploy
leaves as it was (a Service, an autoscaler, the installation's NetworkPolicy); adopting a Service or
an autoscaler written before its Deployment (an interrupted deploy); listing pods while a rollout
is not yet done (the double's node is ready at once)."""


def chart_role(name: str = "default") -> dict:
    [role] = of_kind(rendered(name), "Role").values()
    return role


async def test_the_charts_role_allows_every_request_of_a_functions_whole_life_and_grants_little_else(
        kube, runtimes, node, tmp_path, monkeypatch):
    used = set()

    def recording(rules, request):
        used.add((request.match_info.get("plural"), kubernetes_api._verb(request)))
        return permitted(rules, request)

    permitted = kubernetes_api._permitted
    monkeypatch.setattr(kubernetes_api, "_permitted", recording)
    kube.rules = chart_role()["rules"]
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
    woken = await runtime.invoke(first.faas_id, {}, None, 5000)
    await runtime.reconcile({first.faas_id})
    await runtime.undeploy(first.faas_id)
    await runtimes().reconcile(set())  # a restarted server: orphans looked for, and removed

    assert (woken.output, woken.error) == (2, None)
    assert kube.forbidden == []
    assert owned(kube, first.faas_id) == {}
    granted = {(resource, verb) for rule in kube.rules for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted - used <= PATHS_NOT_TAKEN_HERE

