"""What the runtimes tell the metrics: warm workers, and workers started cold because runs waited
for one (the local runtime); scale-ups from zero (the kubernetes runtime)."""
import asyncio

from dispatch.telemetry.metered import MeteredRuntime
from dispatch.telemetry.metrics import Metrics
from tests.unit.metrics_text import scrape, value

from .test_kubernetes_runtime import function, node, runtimes  # noqa: F401 - fixtures
from .test_local_runtime import deploy, runtime  # noqa: F401 - fixture

SLEEPY = """\
import time
def handle(context, payload):
    time.sleep(0.3)
    return 1
"""


async def test_a_run_that_waits_for_a_new_worker_is_a_cold_start_and_warm_workers_are_counted(runtime, tmp_path):
    metrics = Metrics()
    measured = MeteredRuntime(runtime, metrics)
    faas_id = await deploy(runtime, tmp_path, "python3", "sleepy.py", SLEEPY, max_replicas=2, concurrency=1)

    scraped = await scrape(metrics)
    assert value(scraped, "dispatch_warm_workers", function=faas_id) == 1  # the deploy's own, started warm
    assert value(scraped, "dispatch_cold_starts_total", function=faas_id) is None

    both = await asyncio.gather(*(measured.invoke(faas_id, {}, None, 0) for _ in range(2)))
    assert [result.output for result in both] == [1, 1]
    scraped = await scrape(metrics)
    assert value(scraped, "dispatch_cold_starts_total", function=faas_id) == 1
    assert value(scraped, "dispatch_warm_workers", function=faas_id) == 2

    await runtime.undeploy(faas_id)
    assert value(await scrape(metrics), "dispatch_warm_workers", function=faas_id) is None


async def test_a_run_waking_a_function_scaled_to_zero_on_kubernetes_is_a_cold_start(kube, runtimes, node, tmp_path):
    metrics = Metrics()
    measured = MeteredRuntime(runtimes(service_url=f"http://127.0.0.1:{node.port}/", idle=0.2), metrics)
    spec = function(tmp_path, min_replicas=0, max_replicas=1)
    await measured.deploy(spec)
    deployment = ("Deployment", "default", f"fn-{spec.faas_id}")
    for _ in range(100):
        if kube.objects[deployment]["spec"]["replicas"] == 0 and node.process is None:
            break
        await asyncio.sleep(0.05)
    assert value(await scrape(metrics), "dispatch_cold_starts_total", function=spec.name) is None

    assert (await measured.invoke(spec.faas_id, {}, {"name": "Sansa"}, 5000)).error is None
    assert value(await scrape(metrics), "dispatch_cold_starts_total", function=spec.name) == 1
