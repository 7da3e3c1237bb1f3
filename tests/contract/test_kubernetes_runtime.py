"""The Kubernetes runtime against an API server double that keeps the documented REST semantics and
checks every object written against the official schemas (kubernetes_api.py), and, for runs, a
one-pod node that starts the pod the Deployment describes as local processes (kubernetes_node.py).

No real cluster is involved: what a live cluster would add (controllers, scheduling, image pulls,
cluster DNS, garbage collection) is not tested here.
"""
import asyncio
import base64
import dataclasses
import datetime as dt
import gzip
import io
import os
import shutil
import tarfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dispatch.server
from dispatch.cli.main import app
from dispatch.drivers.kubernetes import KubernetesRuntime, Options
from dispatch.drivers.kubernetes.objects import KubernetesFailed, Objects, connect
from dispatch.drivers.ports import BuildFailed, DeploymentSpec, ImageSpec, NotDeployed
from dispatch.handlers.adapters import runtime_from
from dispatch.handlers.bootstrap import bootstrap
from dispatch.schemas import commands as c, source
from dispatch.settings import Settings
from tests.contract import rendezvous
from tests.contract.kubernetes_api import KubernetesAPI, container_status, pod
from tests.contract.kubernetes_node import IMAGE_PATH, Node
from tests.contract.rendezvous import Rendezvous
from tests.unit.conftest import settled, source_of

NEEDS_NODE = pytest.mark.skipif(shutil.which("node", path=IMAGE_PATH) is None, reason="node is not installed")

HELLO = """
def handle(context, payload):
    print("hello from the pod")
    return {"myField": f"Hello, {payload['name']}", "password": context.get("secrets", {}).get("password")}
"""
BROKEN = "def handle(context):\n    return 1\n"


@pytest.fixture
async def runtimes(kube, tmp_path):
    """`runtimes(**options)` gives a runtime on the double; each is closed at the end."""
    made: list[KubernetesRuntime] = []

    def make(installation: str = "test", service_url: str = "http://127.0.0.1:9/", idle: float = 300.0,
             deploy_timeout: float = 5.0, grace: float = 0) -> KubernetesRuntime:
        runtime = KubernetesRuntime(Options(namespace="default", installation=installation, idle_seconds=idle),
                                    kubeconfig=kube.kubeconfig(tmp_path / "kubeconfig"), service_url=service_url,
                                    deploy_timeout=deploy_timeout, poll_seconds=0.02, orphan_grace_seconds=grace)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.close()


@pytest.fixture
async def node(kube):
    pod_node = Node(kube)
    yield pod_node
    await pod_node.close()


def function(tmp_path: Path, text: str = HELLO, faas_id: str | None = None, language: str = "python3",
             **fields) -> DeploymentSpec:
    folder = tmp_path / f"src-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / ("hello.py" if language == "python3" else "hello.js")).write_text(textwrap.dedent(text))
    return DeploymentSpec(faas_id=faas_id or str(uuid.uuid4()), name="hello", organization="acme",
                          language=language, image_location="python:3.11-slim", source=source.pack(folder),
                          **fields)


def owned(kube: KubernetesAPI, faas_id: str) -> dict[str, dict]:
    return {kind: obj for (kind, _, name), obj in kube.objects.items() if name == f"fn-{faas_id}"}


# ---- the objects of a function


async def test_deploy_creates_a_valid_deployment_service_and_secret_labelled_for_the_function(kube, runtimes, tmp_path):
    spec = function(tmp_path, max_replicas=1, memory_mb=256, cpus=0.5, secrets=("db",))

    await runtimes().deploy(spec)

    objects = owned(kube, spec.faas_id)
    assert sorted(objects) == ["Deployment", "Secret", "Service"]
    for obj in objects.values():
        assert obj["metadata"]["labels"] | {
            "dispatch.io/installation": "test", "dispatch.io/organization": "acme",
            "dispatch.io/function": "hello", "dispatch.io/faas-id": spec.faas_id} == obj["metadata"]["labels"]
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"memory": "256Mi", "cpu": "500m"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["image"] == "python:3.11-slim"
    service, deployment = objects["Service"], objects["Deployment"]
    assert (service["spec"]["ports"][0]["port"], service["spec"]["ports"][0]["targetPort"]) == (8080, "http")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [ref["uid"] for ref in service["metadata"]["ownerReferences"]] == [deployment["metadata"]["uid"]]


async def test_max_replicas_above_min_adds_an_autoscaling_v2_autoscaler_of_the_deployment(kube, runtimes, tmp_path):
    spec = function(tmp_path, min_replicas=2, max_replicas=5)

    await runtimes().deploy(spec)

    objects = owned(kube, spec.faas_id)
    autoscaler = objects["HorizontalPodAutoscaler"]
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                    "name": f"fn-{spec.faas_id}"}
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (2, 5)
    assert objects["Deployment"]["spec"]["replicas"] == 2


async def test_the_secret_holds_the_source_and_server_and_names_the_function_secrets_without_values(
        kube, runtimes, tmp_path):
    spec = function(tmp_path, secrets=("db", "api-key"))

    await runtimes().deploy(spec)

    secret = owned(kube, spec.faas_id)["Secret"]
    assert secret["metadata"]["annotations"]["dispatch.io/secret-names"] == "db,api-key"
    unpacked = tmp_path / "unpacked"
    source.extract(base64.b64decode(secret["data"]["source.tgz"]), unpacked)
    assert (unpacked / "hello.py").read_text() == textwrap.dedent(HELLO)
    assert "python3.http_mode.py" in secret["data"]
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "Deployment"


async def test_redeploy_with_a_changed_spec_replaces_every_object_in_place(kube, runtimes, tmp_path):
    runtime = runtimes()
    first = function(tmp_path, memory_mb=128, max_replicas=1)
    await runtime.deploy(first)
    before = {kind: obj["metadata"]["uid"] for kind, obj in owned(kube, first.faas_id).items()}
    kube.writes.clear()

    changed = function(tmp_path, text=HELLO.replace("hello from", "hi from"), faas_id=first.faas_id,
                       memory_mb=256, max_replicas=3)
    await runtime.deploy(changed)

    after = owned(kube, first.faas_id)
    assert {kind: after[kind]["metadata"]["uid"] for kind in before} == before
    assert [w for w in kube.writes if w[0] == "delete"] == []
    assert ("create", "HorizontalPodAutoscaler", f"fn-{first.faas_id}") in kube.writes
    deployment = after["Deployment"]
    assert deployment["metadata"]["generation"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"memory": "256Mi"}
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    unpacked = tmp_path / "unpacked"
    source.extract(base64.b64decode(after["Secret"]["data"]["source.tgz"]), unpacked)
    assert "hi from" in (unpacked / "hello.py").read_text()


async def test_deploy_after_a_restart_finds_matching_objects_and_writes_nothing(kube, runtimes, tmp_path):
    spec = function(tmp_path, min_replicas=1, max_replicas=3)
    before = runtimes()
    await before.deploy(spec)
    await before.close()
    kube.writes.clear()

    await runtimes().deploy(spec)

    assert kube.writes == []


async def test_undeploy_deletes_every_object_of_the_function_and_only_those(kube, runtimes, tmp_path):
    runtime = runtimes()
    gone, kept = function(tmp_path, max_replicas=3), function(tmp_path, max_replicas=3)
    await runtime.deploy(gone)
    await runtime.deploy(kept)

    await runtime.undeploy(gone.faas_id)

    assert owned(kube, gone.faas_id) == {}
    assert sorted(owned(kube, kept.faas_id)) == ["Deployment", "HorizontalPodAutoscaler", "Secret", "Service"]
    with pytest.raises(NotDeployed):
        await runtime.invoke(gone.faas_id, {}, None, 0)


async def test_restart_removes_objects_left_without_their_deployment_in_this_installation_only(
        kube, runtimes, tmp_path):
    mine, half_removed, theirs = function(tmp_path), function(tmp_path), function(tmp_path)
    before, other = runtimes(), runtimes(installation="other")
    await before.deploy(mine)
    await before.deploy(half_removed)
    await other.deploy(theirs)
    del kube.objects[("Deployment", "default", f"fn-{half_removed.faas_id}")]
    del kube.objects[("Deployment", "default", f"fn-{theirs.faas_id}")]
    await before.close()
    kube.writes.clear()

    await runtimes().deploy(mine)

    assert owned(kube, half_removed.faas_id) == {}
    assert sorted(owned(kube, mine.faas_id)) == ["Deployment", "HorizontalPodAutoscaler", "Secret", "Service"]
    assert sorted(owned(kube, theirs.faas_id)) == ["HorizontalPodAutoscaler", "Secret", "Service"]
    assert [w for w in kube.writes if w[0] != "delete"] == []


async def test_reconcile_removes_the_functions_the_platform_no_longer_has(kube, runtimes, tmp_path):
    runtime = runtimes()
    kept, dropped = function(tmp_path, max_replicas=1), function(tmp_path, max_replicas=2)
    await runtime.deploy(kept)
    await runtime.deploy(dropped)

    removed = await runtime.reconcile({kept.faas_id})

    assert removed == {dropped.faas_id}
    assert owned(kube, dropped.faas_id) == {}
    assert sorted(owned(kube, kept.faas_id)) == ["Deployment", "Secret", "Service"]


async def test_the_api_double_refuses_what_the_kubernetes_schema_refuses(kube, tmp_path):
    objects = Objects(await connect(str(kube.kubeconfig(tmp_path / "kubeconfig"))), "default")

    try:
        with pytest.raises(KubernetesFailed, match=r"\(422\): Deployment \"typo\" is invalid: spec"):
            await objects.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "typo"},
                                 "spec": {"replica": 1}})
    finally:
        await objects.api.close()
    assert kube.invalid
    kube.invalid.clear()


# ---- deploy failures


async def test_a_handler_that_does_not_load_fails_the_deploy_with_its_error(kube, runtimes, node, tmp_path):
    runtime = runtimes(service_url=f"http://127.0.0.1:{node.port}/")

    with pytest.raises(BuildFailed, match=r"Invalid function file or handler.*\(container check: Error\)"):
        await runtime.deploy(function(tmp_path, text=BROKEN))


async def test_an_image_the_cluster_cannot_pull_fails_the_deploy_with_the_pull_error(kube, runtimes, tmp_path):
    async def cannot_pull(deployment):
        waiting = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope:1"'}}
        status = {"phase": "Pending", "initContainerStatuses": [container_status(deployment, "unpack", waiting)]}
        kube.objects[("Pod", "default", deployment["metadata"]["name"])] = pod(deployment, status)
    kube.controller = cannot_pull

    with pytest.raises(BuildFailed, match=r'Back-off pulling image "nope:1" \(container unpack: ImagePullBackOff\)'):
        await runtimes().deploy(function(tmp_path))


async def test_pods_that_never_become_ready_fail_the_deploy_after_the_timeout_saying_why(kube, runtimes, tmp_path):
    async def unschedulable(deployment):
        status = {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory."}]}
        kube.objects[("Pod", "default", deployment["metadata"]["name"])] = pod(deployment, status)
    kube.controller = unschedulable

    with pytest.raises(BuildFailed, match="not ready after 0 s: Unschedulable: 0/3 nodes are available"):
        await runtimes(deploy_timeout=0.3).deploy(function(tmp_path))


async def test_a_source_too_big_for_a_secret_is_refused_before_anything_is_written(kube, runtimes, tmp_path):
    noise = base64.b64encode(os.urandom(1_200_000)).decode()

    with pytest.raises(BuildFailed, match="more than a Kubernetes Secret holds"):
        await runtimes().deploy(function(tmp_path, text=f"DATA = {noise!r}\n"))
    assert kube.writes == []


async def test_an_api_server_that_does_not_answer_fails_the_deploy_saying_where_it_was_looked_for(kube, tmp_path):
    config = kube.kubeconfig(tmp_path / "kubeconfig")
    await kube.stop()
    runtime = KubernetesRuntime(kubeconfig=config)

    with pytest.raises(BuildFailed, match=f"cannot reach the Kubernetes API at {kube.url}"):
        await runtime.deploy(function(tmp_path))
    await runtime.close()


async def test_a_missing_kubeconfig_fails_the_deploy_naming_the_problem(tmp_path):
    runtime = KubernetesRuntime(kubeconfig=tmp_path / "nowhere")

    with pytest.raises(BuildFailed, match="no usable Kubernetes configuration"):
        await runtime.deploy(function(tmp_path))
    await runtime.close()


# ---- images


async def test_an_image_runs_on_its_base_image_as_it_is(runtimes):
    image = ImageSpec(id="i1", name="py", language="python3", base_url="python:3.11-slim")

    assert await runtimes().build_image(image) == "python:3.11-slim"


async def test_an_image_with_packages_and_no_registry_is_refused_naming_the_setting_before_any_write(kube, runtimes):
    image = ImageSpec(id="i1", name="py", language="python3", base_url="python:3.11-slim",
                      manifest="requests==2.32.0\n", system_packages=(("curl", "7.88"),))

    with pytest.raises(BuildFailed, match=r"pushes them to kubernetes_registry, which is not set: set it "
                                          r"\(DISPATCH_KUBERNETES_REGISTRY\)"):
        await runtimes().build_image(image)
    assert kube.writes == []


# ---- runs


async def test_a_run_reaches_the_function_through_its_service_url_with_context_and_logs(kube, runtimes, node, tmp_path):
    runtime = runtimes(service_url=f"http://127.0.0.1:{node.port}/")
    spec = function(tmp_path, secrets=("db",))
    await runtime.deploy(spec)

    result = await runtime.invoke(spec.faas_id, {"secrets": {"password": "ghost"}}, {"name": "Jon"}, 5000)

    assert (result.output, result.error) == ({"myField": "Hello, Jon", "password": "ghost"}, None)
    assert result.stdout == ["hello from the pod"]


async def test_an_archive_with_its_folder_entry_and_without_end_blocks_unpacks_in_the_pod(
        kube, runtimes, node, tmp_path):
    folder = tmp_path / "client"
    folder.mkdir()
    (folder / "hello.py").write_text(textwrap.dedent(HELLO))
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(folder, arcname=".")  # as `tar -C client -czf - .` writes it: "./" then "./hello.py"
    last = tarfile.open(fileobj=io.BytesIO(plain.getvalue())).getmembers()[-1]
    archive = gzip.compress(plain.getvalue()[:last.offset_data + -(-last.size // 512) * 512])
    spec = dataclasses.replace(function(tmp_path), source=archive)
    runtime = runtimes(service_url=f"http://127.0.0.1:{node.port}/")
    await runtime.deploy(spec)

    result = await runtime.invoke(spec.faas_id, {}, {"name": "Bran"}, 5000)

    assert result.output["myField"] == "Hello, Bran"


@NEEDS_NODE
async def test_a_nodejs_function_runs_from_its_pod_spec(kube, runtimes, node, tmp_path):
    runtime = runtimes(service_url=f"http://127.0.0.1:{node.port}/")
    spec = function(tmp_path, text="module.exports = (context, payload) => `Hello, ${payload.name}`;\n",
                    language="nodejs")
    await runtime.deploy(spec)

    result = await runtime.invoke(spec.faas_id, {}, {"name": "Arya"}, 0)

    assert (result.output, result.error) == ("Hello, Arya", None)


async def test_a_run_past_its_timeout_is_a_function_error(kube, runtimes, node, tmp_path):
    runtime = runtimes(service_url=f"http://127.0.0.1:{node.port}/")
    spec = function(tmp_path, text="import time\ndef handle(context, payload):\n    time.sleep(5)\n")
    await runtime.deploy(spec)
    deadline = dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=400)
    context = {"deadline": deadline.isoformat().replace("+00:00", "Z")}

    result = await runtime.invoke(spec.faas_id, context, None, 400)

    assert result.error["type"] == "FunctionError"
    assert "exceeded the timeout" in result.error["message"]


BURN = {
    "python3": "def handle(context, payload):\n    while payload['burn']:\n        pass\n    return 'within'\n",
    "nodejs": "module.exports = (context, payload) => {\n  while (payload.burn) {}\n  return 'within';\n};\n",
}


@pytest.mark.parametrize("language", ["python3", pytest.param("nodejs", marks=NEEDS_NODE)])
async def test_a_run_past_its_cpu_time_is_a_function_error_naming_the_limit(kube, runtimes, node, tmp_path, language):
    runtime = runtimes(service_url=f"http://127.0.0.1:{node.port}/")
    spec = function(tmp_path, text=BURN[language], cpu_seconds=1, language=language)
    await runtime.deploy(spec)
    command = owned(kube, spec.faas_id)["Deployment"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-3:] == ["--cpu-seconds", "1", "--http"]

    within = await runtime.invoke(spec.faas_id, {}, {"burn": False}, 0)
    over = await runtime.invoke(spec.faas_id, {}, {"burn": True}, 0)

    assert (within.output, within.error) == ("within", None)
    assert over.error["type"] == "FunctionError"
    assert over.error["message"] == "Function exceeded its CPU time limit of 1 s"


async def test_a_pod_runs_as_many_calls_at_once_as_the_functions_concurrency(kube, runtimes, node, tmp_path):
    runtime = runtimes(service_url=f"http://127.0.0.1:{node.port}/")
    spec = function(tmp_path, text=rendezvous.source("python3", """
        def handle(context, payload):
            meet(payload, "run")
            return "met"
        """), concurrency=2)
    await runtime.deploy(spec)
    command = owned(kube, spec.faas_id)["Deployment"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--concurrency") + 1] == "2"

    async with Rendezvous() as held:
        running = [asyncio.ensure_future(runtime.invoke(spec.faas_id, {}, held.address, 0)) for _ in range(2)]
        together = await held.arrived(2, seconds=30)
        held.open()
        results = await asyncio.gather(*running)

    assert together and held.most_at_once == 2
    assert [(r.output, r.error) for r in results] == [("met", None), ("met", None)]


async def test_a_function_nothing_answers_for_is_a_system_error(kube, runtimes, tmp_path):
    runtime = runtimes(service_url="http://127.0.0.1:9/")
    spec = function(tmp_path)
    await runtime.deploy(spec)

    result = await runtime.invoke(spec.faas_id, {}, None, 1000)

    assert result.error["type"] == "SystemError"
    assert "cannot reach the function at http://127.0.0.1:9/" in result.error["message"]


async def test_a_run_of_a_function_whose_deployment_was_removed_asks_for_a_deploy(kube, runtimes, tmp_path):
    runtime = runtimes()
    spec = function(tmp_path)
    await runtime.deploy(spec)
    del kube.objects[("Deployment", "default", f"fn-{spec.faas_id}")]

    with pytest.raises(NotDeployed):
        await runtime.invoke(spec.faas_id, {}, None, 1000)


async def test_an_idle_function_with_min_zero_scales_to_zero_and_back_up_on_its_next_run(
        kube, runtimes, node, tmp_path):
    runtime = runtimes(service_url=f"http://127.0.0.1:{node.port}/", idle=0.2)
    spec = function(tmp_path, min_replicas=0, max_replicas=1)
    await runtime.deploy(spec)
    deployment = ("Deployment", "default", f"fn-{spec.faas_id}")
    assert kube.objects[deployment]["spec"]["replicas"] == 1

    for _ in range(100):
        if kube.objects[deployment]["spec"]["replicas"] == 0 and node.process is None:
            break
        await asyncio.sleep(0.05)
    assert kube.objects[deployment]["spec"]["replicas"] == 0
    assert node.process is None

    result = await runtime.invoke(spec.faas_id, {}, {"name": "Sansa"}, 5000)

    assert result.error is None and result.output["myField"] == "Hello, Sansa"
    assert kube.objects[deployment]["spec"]["replicas"] == 1
    assert node.starts == 2


async def test_runs_through_another_server_process_keep_a_min_zero_function_awake(kube, runtimes, tmp_path):
    runtime = runtimes(idle=0.3)
    spec = function(tmp_path, min_replicas=0, max_replicas=1)
    await runtime.deploy(spec)
    deployment = kube.objects[("Deployment", "default", f"fn-{spec.faas_id}")]

    for _ in range(10):  # the other process marks its runs on the Deployment
        deployment["metadata"]["annotations"]["dispatch.io/last-run"] = f"{time.time():.3f}"
        await asyncio.sleep(0.1)
    assert kube.objects[("Deployment", "default", f"fn-{spec.faas_id}")]["spec"]["replicas"] == 1

    for _ in range(40):
        if kube.objects[("Deployment", "default", f"fn-{spec.faas_id}")]["spec"]["replicas"] == 0:
            break
        await asyncio.sleep(0.05)
    assert kube.objects[("Deployment", "default", f"fn-{spec.faas_id}")]["spec"]["replicas"] == 0


# ---- the platform on Kubernetes


async def test_dispatch_runs_updates_and_deletes_a_function_on_kubernetes(kube, runtimes, node, tmp_path):
    platform = bootstrap(Settings(data_dir=tmp_path / "data", resync_seconds=3600),
                         runtime=runtimes(service_url=f"http://127.0.0.1:{node.port}/", grace=600))
    await platform.start()
    try:
        await platform.write(c.CreateBaseImage(organization="o", name="py-base", resource={
            "name": "py-base", "dockerUrl": "python:3.11-slim", "language": "python3"}))
        await platform.write(c.CreateImage(organization="o", name="py",
                                           resource={"name": "py", "baseImageName": "py-base"}))
        await platform.write(c.CreateSecret(organization="o", name="creds", resource={
            "name": "creds", "secrets": platform.box.seal({"password": "open-sesame"})}))
        await platform.write(c.CreateFunction(organization="o", name="hello",
                                              source=source_of({"hello.py": HELLO.encode()}),
                                              resource={"name": "hello", "image": "py", "secrets": ["creds"]}))
        first = await settled(platform, "Function", "hello")
        assert first["status"] == "READY", first.get("reason")
        assert first["functionImageURL"] == f"kubernetes://default/deployments/fn-{first['faasId']}"
        run = {"name": "r1", "functionName": "hello", "blocking": True, "input": {"name": "Jon"}, "secrets": []}
        done = (await platform.bus.request(c.ExecuteFunction(organization="o", run=run), 10))["run"]
        assert done["output"] == {"myField": "Hello, Jon", "password": "open-sesame"}

        await platform.write(c.UpdateFunction(organization="o", name="hello", source=source_of(
            {"hello.py": b"def handle(c, p):\n    return 'v2'\n"}), resource={"name": "hello", "image": "py"}))
        second = await settled(platform, "Function", "hello")
        run = {**run, "name": "r2"}
        assert (await platform.bus.request(c.ExecuteFunction(organization="o", run=run), 10))["run"]["output"] == "v2"
        assert owned(kube, first["faasId"]) == {} and "Deployment" in owned(kube, second["faasId"])

        await platform.write(c.DeleteFunction(organization="o", name="hello"))
        for _ in range(200):
            if await platform.views.get_resource("o", "Function", "hello") is None:
                break
            await asyncio.sleep(0.02)
        assert owned(kube, second["faasId"]) == {}
    finally:
        await platform.close()


# ---- settings


def test_dispatch_server_runtime_kubernetes_runs_functions_on_kubernetes_in_the_namespace_given(
        monkeypatch, tmp_path):
    chosen = []

    async def serve(settings, on_ready=None):
        chosen.append(runtime_from(settings))
    monkeypatch.setattr(dispatch.server, "serve", serve)

    result = CliRunner().invoke(app, ["server", "--runtime", "kubernetes", "--data-dir", str(tmp_path),
                                      "--namespace", "prod"],
                                env={"DISPATCH_KUBERNETES_NAMESPACE": "functions",
                                     "DISPATCH_KUBECONFIG": str(tmp_path / "config")})

    assert result.exit_code == 0, result.output
    assert isinstance(chosen[0], KubernetesRuntime)
    assert (chosen[0].options.namespace, chosen[0].options.installation) == ("functions", "prod")
