"""Images with packages on the Kubernetes runtime: built by a Job running Kaniko on the Docker
runtime's own Dockerfile and files, pushed to the installation's registry, and READY with the
pushed image's reference; a failed build is an ERROR with the builder's last lines.

Against the API server double (kubernetes_api.py), which validates every object against the
Kubernetes 1.30 schemas (strict) and answers a pod's log; kubernetes_jobs.py plays the Job
controller and the kubelet, ending the builder as each test says. No Kaniko runs here: the
Dockerfile and context a Job gets are built and pushed to a real registry by
test_kubernetes_registry.py.
"""
import asyncio
import dataclasses
import gzip
import io
import re
import tarfile

import pytest

from dispatch.drivers.docker.languages import language_named, system_packages_text
from dispatch.drivers.kubernetes import KubernetesRuntime, Options, build_jobs, options_from
from dispatch.drivers.kubernetes.registry import KANIKO, BuildOptions
from dispatch.drivers.ports import BuildFailed, ImageSpec
from dispatch.handlers.bootstrap import bootstrap
from dispatch.schemas import commands as c
from dispatch.settings import Settings
from tests.contract import kubernetes_api, pod_security
from tests.contract.kubernetes_jobs import Ended, Jobs, Waiting
from tests.contract.test_kubernetes_hardening import documented_role
from tests.contract.test_kubernetes_runtime import function, owned
from tests.unit.chart import objects, of_kind, render, values_of
from tests.unit.conftest import settled

REGISTRY = "registry.example.com/dispatch"
DIGEST = "sha256:" + "5e" * 32
REQUIREMENTS = "winterfell-words==1.0\n"
PACKAGES = (("jq", "1.6-2.1"),)
KANIKO_LOG = """\
INFO[0000] Retrieving image manifest python:3.11-slim
INFO[0001] Built cross stage deps: map[]
INFO[0002] Unpacking rootfs as cmd COPY install-system-packages.sh /image/ requires it.
INFO[0009] RUN sh /image/install-system-packages.sh /image/system-packages.txt
INFO[0031] RUN mkdir -p /image/site-packages && python3 -m pip install ...
Successfully installed winterfell-words-1.0
INFO[0040] Pushing image to registry.example.com/dispatch/image-words:0123
INFO[0042] Pushed registry.example.com/dispatch/image-words@sha256:5e5e
"""


@pytest.fixture
async def cluster(kube, tmp_path):
    """`cluster(builder, **build_options)` gives a runtime whose build Jobs end as `builder` says."""
    made: list[tuple[KubernetesRuntime, Jobs]] = []

    def make(builder, functions_namespace: str = "default", **builds) -> tuple[KubernetesRuntime, Jobs]:
        jobs = Jobs(kube, builder)
        options = Options(namespace=functions_namespace, installation="test",
                          builds=BuildOptions(**{"registry": REGISTRY, **builds}))
        runtime = KubernetesRuntime(options, kubeconfig=kube.kubeconfig(tmp_path / "kubeconfig"),
                                    deploy_timeout=1.0, poll_seconds=0.02, orphan_grace_seconds=0)
        made.append((runtime, jobs))
        return runtime, jobs

    yield make
    for runtime, jobs in made:
        await jobs.close()
        await runtime.close()


def pushed(log: str = KANIKO_LOG, delay: float = 0.0):
    async def builder(job, context):
        await asyncio.sleep(delay)
        return Ended(log=log, message=DIGEST)
    return builder


def failing(log: str, exit_code: int = 1, **fields):
    async def builder(job, context):
        return Ended(log=log, exit_code=exit_code, message=log[-200:], **fields)
    return builder


def image(**fields) -> ImageSpec:
    return ImageSpec(**{"id": "words", "name": "words", "language": "python3", "base_url": "python:3.11-slim",
                        "manifest": REQUIREMENTS, "system_packages": PACKAGES, **fields})


def chart_roles(registry: str, namespace: str = "") -> dict[str, dict]:
    """The chart's Roles by namespace, for an installation that builds images (its functions in
    the release's namespace, `dispatch`)."""
    values = values_of("default")
    values["runtime"] = {"kubernetes": {"builds": {"registry": registry, "namespace": namespace}}}
    return {role["metadata"]["namespace"]: role for role in of_kind(objects(render(values)), "Role").values()}


def chart_role(registry: str) -> dict:
    return chart_roles(registry)["dispatch"]


def files_of(context: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(context))) as tar:
        return {member.name: tar.extractfile(member).read().decode() for member in tar.getmembers()}


# ---- a build that pushes


async def test_an_image_with_packages_is_built_by_a_job_and_becomes_the_pushed_image_pinned_to_its_digest(
        kube, cluster):
    runtime, jobs = cluster(pushed(), registry_secret="registry-push")
    said: list[str] = []

    location = await runtime.build_image(image(), said.append)

    found = re.fullmatch(rf"{re.escape(REGISTRY)}/image-words:([0-9a-f]{{20}})@{DIGEST}", location)
    assert found, location
    [job] = jobs.created
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == KANIKO
    assert container["args"] == [
        "--dockerfile=Dockerfile", "--context=tar:///context/context.tar.gz",
        f"--destination={REGISTRY}/image-words:{found.group(1)}", "--build-arg=BASE_IMAGE=python:3.11-slim",
        "--digest-file=/dev/termination-log", "--log-format=text", "--push-retry=2"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume["secret"] for volume in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/kaniko/.docker"]] == {"secretName": "registry-push", "defaultMode": 0o444,
                                                  "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (0, 1200)
    assert said[-9:] == KANIKO_LOG.splitlines() + [f"pushed {location}"]
    # The ended Job stays for the cluster to remove, and its context Secret with it.
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    [secret] = kube.of_kind("Secret").values()
    assert [owner["uid"] for owner in secret["metadata"]["ownerReferences"]] == [
        kube.of_kind("Job")[job["metadata"]["name"]]["metadata"]["uid"]]


async def test_the_job_builds_exactly_the_dockerfile_and_files_the_docker_runtime_builds(cluster):
    runtime, jobs = cluster(pushed())

    await runtime.build_image(image(language="nodejs", manifest='{"dependencies": {"left-pad": "1.3.0"}}'))

    docker = language_named("nodejs").image_files('{"dependencies": {"left-pad": "1.3.0"}}',
                                                  system_packages_text(PACKAGES))
    assert files_of(jobs.contexts[0]) == docker
    assert "FROM ${BASE_IMAGE}" in docker["Dockerfile"] and docker["system-packages.txt"] == "jq 1.6-2.1\n"


async def test_the_same_image_gets_the_same_tag_from_the_job_that_built_it_and_another_content_another(cluster):
    runtime, jobs = cluster(pushed())

    first = await runtime.build_image(image())
    again = await runtime.build_image(image())
    changed = await runtime.build_image(image(manifest="winterfell-words==1.1\n"))

    assert first == again
    assert changed.split("@")[0] != first.split("@")[0]
    assert len(jobs.created) == 2, "the same content is not built twice"


async def test_functions_of_a_built_image_run_it_with_its_packages_on_their_paths(kube, cluster, tmp_path):
    runtime, _ = cluster(pushed())
    location = await runtime.build_image(image())
    python = dataclasses.replace(function(tmp_path), image_location=location)
    node = dataclasses.replace(function(tmp_path, text="exports.handle = () => 1", language="nodejs"),
                               image_location=location)

    await runtime.deploy(python)
    await runtime.deploy(node)

    python_pod = owned(kube, python.faas_id)["Deployment"]["spec"]["template"]["spec"]
    node_pod = owned(kube, node.faas_id)["Deployment"]["spec"]["template"]["spec"]
    assert {container["image"] for container in python_pod["initContainers"] + python_pod["containers"]} == {location}
    assert "--library" in (command := python_pod["containers"][0]["command"])
    assert command[command.index("--library") + 1] == "/image/site-packages"
    assert {"name": "NODE_PATH", "value": "/image/node_modules"} in node_pod["containers"][0]["env"]


async def test_builds_run_in_the_build_namespace_when_one_is_given(kube, cluster):
    runtime, jobs = cluster(pushed(), functions_namespace="functions", namespace="builds")

    await runtime.build_image(image())

    [job] = jobs.created
    assert job["metadata"]["namespace"] == "builds"
    assert ("create", "Secret", job["metadata"]["name"]) in kube.writes


# ---- a build that fails


async def test_a_failed_build_is_an_error_with_the_builders_exit_code_and_last_lines(kube, cluster):
    log = "".join(f"INFO[00{n:02d}] step {n}\n" for n in range(30)) + (
        "ERROR: No matching distribution found for winterfell-words==1.0\n"
        "error building image: error building stage: failed to execute command: waiting for process to exit: "
        "exit status 1\n")
    runtime, _ = cluster(failing(log))
    said: list[str] = []

    with pytest.raises(BuildFailed) as failed:
        await runtime.build_image(image(), said.append)

    lines = failed.value.reason.splitlines()
    assert lines[0] == "the image build failed: the builder exited with code 1"
    assert lines[1:] == log.splitlines()[-20:]
    assert "ERROR: No matching distribution found for winterfell-words==1.0" in lines
    assert said[-len(log.splitlines()):] == log.splitlines(), "the whole log is the build log"


@pytest.mark.parametrize("ended, says", [
    ({"reason": "OOMKilled"}, "the builder ran out of memory (its limit is 512 MiB)"),
    ({"job_reason": "DeadlineExceeded"}, "it did not finish within 600 s"),
])
async def test_a_builder_out_of_memory_or_out_of_time_says_which_limit(cluster, ended, says):
    runtime, _ = cluster(failing("INFO[0003] RUN pip install ...\n", exit_code=137, **ended), memory_mb=512,
                         timeout=600)

    with pytest.raises(BuildFailed) as failed:
        await runtime.build_image(image())

    assert failed.value.reason.splitlines() == [f"the image build failed: {says}", "INFO[0003] RUN pip install ..."]


async def test_a_builder_the_cluster_cannot_pull_fails_the_build_at_once_with_the_pull_error(kube, cluster):
    async def unpullable(job, context):
        return Waiting("ImagePullBackOff", f'Back-off pulling image "{KANIKO}"')
    runtime, _ = cluster(unpullable, timeout=600)

    pull_error = rf'^the builder could not start: Back-off pulling image "{re.escape(KANIKO)}" \(ImagePullBackOff\)$'
    with pytest.raises(BuildFailed, match=pull_error):
        await asyncio.wait_for(runtime.build_image(image()), 5)
    assert kube.of_kind("Job") == {}


async def test_a_job_refused_its_pod_fails_naming_the_pod_security_level_the_namespace_needs(kube, cluster):
    async def refused(job, context):  # Pod Security admission refuses the Job controller's pod
        return None
    runtime, _ = cluster(refused, timeout=600)

    with pytest.raises(BuildFailed, match=r"got no pod in 1 s: the builder runs as root, so namespace default must "
                                          r"allow the `baseline` Pod Security level \(label "
                                          r"pod-security.kubernetes.io/enforce=baseline\)"):
        await asyncio.wait_for(runtime.build_image(image()), 5)
    assert kube.of_kind("Job") == {}


async def test_a_job_that_never_ends_fails_the_build_after_its_timeout(kube, cluster):
    async def stuck(job, context):
        return Waiting("ContainerCreating", "")
    runtime, _ = cluster(stuck, timeout=0.3)

    with pytest.raises(BuildFailed, match=r"^the image build did not finish within 0.3 s$"):
        await asyncio.wait_for(runtime.build_image(image()), 5)
    assert kube.of_kind("Job") == {}


async def test_a_bad_package_list_or_registry_is_refused_before_any_write(kube, cluster):
    runtime, _ = cluster(pushed())
    bad_registry, _ = cluster(pushed(), registry="https://registry.example.com/")

    with pytest.raises(BuildFailed, match="invalid system package: empty name or version"):
        await runtime.build_image(image(system_packages=(("jq", ""),)))
    with pytest.raises(BuildFailed, match="the nodejs manifest must be a package.json document"):
        await runtime.build_image(image(language="nodejs", manifest="left-pad==1.3.0"))
    with pytest.raises(BuildFailed, match=r"kubernetes_registry 'https://registry.example.com/' is not a registry"):
        await bad_registry.build_image(image())
    assert [write for write in kube.writes if write[1] in ("Job", "Secret")] == []


# ---- the same build again


async def test_a_build_already_under_way_is_waited_for_and_not_started_twice(kube, cluster):
    first, jobs = cluster(pushed(delay=0.5))
    started = asyncio.ensure_future(first.build_image(image()))
    for _ in range(200):
        if jobs.created:
            break
        await asyncio.sleep(0.01)
    second, _ = cluster(pushed())  # another server process, or this one after a restart

    location = await second.build_image(image())

    assert location == await started
    assert [write for write in kube.writes if write[:2] == ("create", "Job")] == [
        ("create", "Job", jobs.created[0]["metadata"]["name"])]


async def test_a_restarted_server_sweeping_what_functions_left_leaves_a_build_under_way_alone(kube, cluster):
    runtime, jobs = cluster(pushed(delay=0.3))
    started = asyncio.ensure_future(runtime.build_image(image()))
    for _ in range(200):
        if jobs.created:
            break
        await asyncio.sleep(0.01)
    restarted, _ = cluster(pushed())

    assert await restarted.reconcile(set()) == set()
    assert (await started).endswith(DIGEST)
    assert [write for write in kube.writes if write[0] == "delete"] == []


async def test_a_failed_job_left_by_an_earlier_try_is_replaced_by_a_new_try(kube, cluster):
    runtime, jobs = cluster(pushed())
    left = build_jobs.build(image(), runtime.options).job  # what a server that stopped meanwhile left
    kube.objects[("Job", "default", left["metadata"]["name"])] = {
        **left, "metadata": {**left["metadata"], "namespace": "default", "uid": "earlier", "resourceVersion": "1"},
        "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}

    location = await runtime.build_image(image())

    assert location.endswith(DIGEST)
    assert [write for write in kube.writes if write[1] == "Job"] == [
        ("delete", "Job", left["metadata"]["name"]), ("create", "Job", left["metadata"]["name"])]
    assert len(jobs.created) == 1


# ---- what the build pod may do


async def test_the_build_pod_meets_baseline_and_breaks_restricted_only_by_running_as_root(cluster):
    runtime, jobs = cluster(pushed(), registry_secret="registry-push")
    await runtime.build_image(image())
    pod = jobs.created[0]["spec"]["template"]["spec"]
    [container] = pod["containers"]

    assert pod_security.baseline(pod, {}) == []
    assert pod_security.restricted(pod) == ["Running as Non-root", "Running as Non-root user",
                                            "Capabilities (restricted)"]
    assert container["securityContext"]["capabilities"] == {
        "drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "SETFCAP", "KILL"]}
    assert (pod["automountServiceAccountToken"], pod["restartPolicy"]) == (False, "Never")
    assert container["resources"]["limits"] == {"memory": "2048Mi"}


async def test_an_insecure_registry_is_named_to_the_builder(cluster):
    runtime, jobs = cluster(pushed(), registry="10.0.0.5:5000/dispatch", insecure=True)

    location = await runtime.build_image(image())

    assert location.startswith("10.0.0.5:5000/dispatch/image-words:")
    assert "--insecure-registry=10.0.0.5:5000" in jobs.created[0]["spec"]["template"]["spec"]["containers"][0]["args"]


async def test_without_the_right_to_read_logs_the_reason_is_the_builders_termination_message(kube, cluster):
    log = "INFO[0001] RUN pip install\nERROR: No matching distribution found for winterfell-words==1.0\n"
    runtime, _ = cluster(failing(log))
    kube.rules = [rule for rule in chart_role(REGISTRY)["rules"] if rule["resources"] != ["pods/log"]]

    with pytest.raises(BuildFailed) as failed:
        await runtime.build_image(image())

    assert "No matching distribution found for winterfell-words==1.0" in failed.value.reason
    assert ("the builder's log could not be read: Kubernetes refused to read the log of a Pod (403)"
            in failed.value.reason)
    assert kube.forbidden == ["get pods/log"]


# ---- the platform


async def test_an_image_with_packages_becomes_ready_with_the_pushed_image_and_keeps_the_builders_log(
        kube, cluster, tmp_path):
    runtime, _ = cluster(pushed())
    platform = bootstrap(Settings(data_dir=tmp_path / "data", resync_seconds=3600), runtime=runtime)
    await platform.start()
    try:
        await platform.write(c.CreateBaseImage(organization="o", name="py-base", resource={
            "name": "py-base", "dockerUrl": "python:3.11-slim", "language": "python3"}))
        await platform.write(c.CreateImage(organization="o", name="words", resource={
            "name": "words", "baseImageName": "py-base", "runtimeDependencies": {"manifest": REQUIREMENTS}}))
        built = await settled(platform, "Image", "words")
        log = (await platform.store.get_blob(built["buildLog"])).decode()
    finally:
        await platform.close()

    assert built["status"] == "READY", built.get("reason")
    assert re.fullmatch(rf"{re.escape(REGISTRY)}/image-[0-9a-f-]+:[0-9a-f]{{20}}@{DIGEST}", built["dockerUrl"])
    assert "Successfully installed winterfell-words-1.0" in log.splitlines()


def test_the_registry_settings_reach_the_runtimes_build_options():
    settings = Settings(kubernetes_registry="10.0.0.5:5000/dispatch", kubernetes_registry_secret="push",
                        kubernetes_registry_insecure=True, kubernetes_build_namespace="builds",
                        kubernetes_build_timeout=600, kubernetes_build_memory_mb=1024)

    assert options_from(settings).builds == BuildOptions(
        registry="10.0.0.5:5000/dispatch", registry_secret="push", insecure=True, namespace="builds",
        builder_image=KANIKO, timeout=600, memory_mb=1024)
    assert options_from(Settings()).builds == BuildOptions()


# ---- the chart's Roles


@pytest.mark.parametrize("build_namespace", ["", "dispatch-builds"])
async def test_the_charts_roles_allow_every_request_of_a_build_and_grant_builds_nothing_unused(
        kube, cluster, monkeypatch, build_namespace):
    used = set()

    def recording(rules, request):
        used.add((request.match_info.get("namespace"), kubernetes_api._plural(request), kubernetes_api._verb(request)))
        return permitted(rules, request)

    permitted = kubernetes_api._permitted
    monkeypatch.setattr(kubernetes_api, "_permitted", recording)
    roles = chart_roles(REGISTRY, build_namespace)
    kube.namespace_rules = {namespace: role["rules"] for namespace, role in roles.items()}
    failing_runtime, _ = cluster(failing("ERROR: temporary failure in name resolution\n"),
                                 functions_namespace="dispatch", namespace=build_namespace or None)
    with pytest.raises(BuildFailed, match="temporary failure"):
        await failing_runtime.build_image(image())
    runtime, _ = cluster(pushed(), functions_namespace="dispatch", namespace=build_namespace or None)
    await runtime.build_image(image())  # a retry: the failed Job is replaced

    assert kube.forbidden == []
    builds = build_namespace or "dispatch"
    granted = {(builds, resource, verb) for rule in roles[builds]["rules"] for resource in rule["resources"]
               for verb in rule["verbs"]}
    building = {("jobs", "get"), ("jobs", "create"), ("jobs", "delete"), ("pods/log", "get")}
    assert {(builds, resource, verb) for resource, verb in building} <= used
    if build_namespace:  # a Role of their own: nothing a build does not ask for, but a Secret read after a race
        assert granted - used == {(builds, "secrets", "get")}
    else:
        assert len(roles) == 1 and {(builds, *request) for request in building} <= granted


async def test_the_documented_role_allows_every_request_of_a_build(kube, cluster):
    kube.rules = documented_role()["rules"]
    runtime, _ = cluster(pushed())

    await runtime.build_image(image())

    assert kube.forbidden == []
