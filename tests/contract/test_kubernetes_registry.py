"""The push and pull path of the Kubernetes runtime's image builds, with a real registry (Debian's
docker-registry, tests/docker_registry.py) and a real Docker engine.

The runtime writes its build Job on the API double. A stand-in for Kaniko reads the Job as Kaniko's
executor reads its flags (only flags the executor defines; the context from the Secret item mounted
where --context points; the registry it must speak plain HTTP to) and, with the engine, builds that
Dockerfile and context and pushes the image to the registry, writing the digest as --digest-file
does. The image is then removed from the engine, and a function deployed on the runtime's answer
runs on a node whose kubelet is the engine (kubernetes_docker_node.py): it pulls the image back from
the registry and runs the function server, mounted from the function's Secret, as the pod's user
with a read-only root filesystem.

The build itself is the engine's classic builder, not Kaniko: Kaniko's own handling of the
Dockerfile, and the builder pod in a live cluster, are not shown here.
"""
import re
import tempfile
import textwrap
import uuid
from pathlib import Path

import aiodocker
import pytest

from dispatch.drivers.docker import images
from dispatch.drivers.kubernetes import KubernetesRuntime, Options
from dispatch.drivers.kubernetes.registry import BuildOptions
from dispatch.drivers.ports import BuildFailed, DeploymentSpec, ImageSpec
from dispatch.schemas import source
from tests import docker_engine
from tests.contract.kubernetes_docker_node import DockerNode
from tests.contract.kubernetes_jobs import Ended, Jobs
from tests.contract.test_docker_runtime import wheel_url  # noqa: F401 (fixture)
from tests.docker_registry import Registry, Unavailable

pytestmark = [pytest.mark.docker]
KANIKO_FLAGS = {"--dockerfile", "--context", "--destination", "--build-arg", "--digest-file", "--log-format",
                "--push-retry", "--insecure-registry", "--skip-tls-verify-registry"}
"""Flags of Kaniko's executor (cmd/executor/cmd/root.go) that a Dispatch build Job may pass."""
GREET = """
from winterfell_words import greet

def handle(context, payload):
    return greet(payload)
"""


@pytest.fixture
async def engine():
    docker = aiodocker.Docker(url=docker_engine.url_for_tests())
    yield docker
    await docker.close()


@pytest.fixture
def registry(engine, tmp_path):
    try:
        started = Registry(tmp_path / "registry").start()
    except Unavailable as missing:
        pytest.skip(f"registry: {missing}")
    yield started
    started.stop()


@pytest.fixture
async def cluster(kube, engine, registry, tmp_path):
    """A runtime building into the registry, its Jobs run by the Kaniko stand-in, its pods by the engine."""
    namespace = f"{docker_engine.TEST_NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}"
    node = DockerNode(kube, engine, namespace)
    jobs = Jobs(kube, kaniko_on(engine, tmp_path / "build.log"))
    options = Options(namespace="default", installation="test",
                      builds=BuildOptions(registry=f"{registry.address}/dispatch", insecure=True))
    runtime = KubernetesRuntime(options, kubeconfig=kube.kubeconfig(tmp_path / "kubeconfig"),
                                service_url=f"http://127.0.0.1:{node.port}/", deploy_timeout=60.0,
                                poll_seconds=0.1)
    yield runtime, node, jobs
    await runtime.close()
    await jobs.close()
    await node.close()
    for image in node.pulled:
        await images.remove(engine, image)


def kaniko_on(docker: aiodocker.Docker, log_path: Path):
    """Kaniko's part, played by the engine: build the Job's context, push to its destination."""
    async def build(job: dict, context: bytes) -> Ended:
        [container] = job["spec"]["template"]["spec"]["containers"]
        flags: dict[str, list[str]] = {}
        for arg in container["args"]:
            name, _, value = arg.partition("=")
            assert name in KANIKO_FLAGS, f"{name} is not a flag of Kaniko's executor"
            flags.setdefault(name, []).append(value)
        assert any(flags["--context"] == [f"tar://{mount['mountPath']}/context.tar.gz"] and mount["name"] == "context"
                   for mount in container["volumeMounts"])
        [destination] = flags["--destination"]
        assert flags["--insecure-registry"] == [destination.split("/")[0]], "the plain-HTTP registry is named"
        assert flags["--dockerfile"] == ["Dockerfile"] and flags["--digest-file"] == ["/dev/termination-log"]
        lines: list[str] = []
        try:
            await images.build(docker, context, destination, dict(arg.split("=", 1) for arg in flags["--build-arg"]),
                               log_path, "host", lines.append)
        except BuildFailed as failed:
            lines.append(f"error building image: {failed.reason.splitlines()[0]}")
            return Ended(log="\n".join(lines) + "\n", exit_code=1, message="\n".join(lines[-5:]))
        repository, tag = destination.rsplit(":", 1)
        try:
            pushed = [chunk async for chunk in docker.images.push(repository, tag=tag, stream=True, auth={})]
        finally:
            await images.remove(docker, destination)  # a pod's image must come from the registry
        lines += [chunk["status"] for chunk in pushed if "status" in chunk and not chunk.get("progressDetail")]
        [digest] = [chunk["aux"]["Digest"] for chunk in pushed if "Digest" in chunk.get("aux", {})]
        return Ended(log="\n".join(lines) + "\n", message=digest)
    return build


async def test_the_jobs_dockerfile_is_pushed_to_the_registry_and_a_function_runs_on_the_image_pulled_back(
        cluster, registry, engine, wheel_url):  # noqa: F811
    runtime, node, jobs = cluster
    said: list[str] = []

    location = await runtime.build_image(ImageSpec(
        id="words", name="words", language="python3", base_url=docker_engine.BASE_IMAGE,
        manifest=f"winterfell-words @ {wheel_url}\n"), said.append)

    found = re.fullmatch(rf"{re.escape(registry.address)}/dispatch/image-words:(\w+)@(sha256:[0-9a-f]{{64}})", location)
    assert found, location
    assert registry.manifest_digest("dispatch/image-words", found.group(1)) == found.group(2)
    assert any("Successfully installed winterfell-words-1.0" in line for line in said)
    with pytest.raises(aiodocker.DockerError):
        await engine.images.inspect(location)

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "greet.py").write_text(textwrap.dedent(GREET))
        spec = DeploymentSpec(faas_id=str(uuid.uuid4()), name="greet", organization="o", language="python3",
                              image_location=location, source=source.pack(Path(folder)), handler="greet.handle")
    await runtime.deploy(spec)
    result = await runtime.invoke(spec.faas_id, {}, {"name": "Jon", "place": "Winterfell"}, 10000)

    assert node.pulled == [location]
    assert (result.output, result.error) == ("Hello, Jon from Winterfell", None)


async def test_a_build_that_fails_is_an_error_with_the_builds_last_lines_and_pushes_nothing(
        cluster, registry, wheel_url):  # noqa: F811
    runtime, _, _ = cluster
    missing = wheel_url.replace("winterfell_words-1.0", "winterfell_words-9.9")

    with pytest.raises(BuildFailed) as failed:
        await runtime.build_image(ImageSpec(id="gone", name="gone", language="python3",
                                            base_url=docker_engine.BASE_IMAGE,
                                            manifest=f"winterfell-words @ {missing}\n"))

    assert failed.value.reason.startswith("the image build failed: the builder exited with code 1\n")
    assert "404" in failed.value.reason
    assert registry.manifest_digest("dispatch/image-gone", "latest") is None
