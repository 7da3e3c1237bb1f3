"""A real Prometheus (Debian's) scraping a distributed installation: the health ports of its gateway
and handler processes, and the gateway's management port with a bearer token; what it stores is
read back with PromQL, as a dashboard would."""
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from tests import debian

from .cluster import seeded_cluster
from .conftest import PYTHON_IMAGE, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq, pytest.mark.postgres]

HELLO = "def handle(ctx, payload):\n    return {'hello': payload.get('name')}\n"
SEED = PYTHON_IMAGE + "---\nkind: Function\nname: hello\nimage: py\nsourcePath: hello.py\n"


def prometheus_binary() -> str:
    if shutil.which("prometheus") is None:
        try:
            debian.install("prometheus")
        except debian.Unavailable as why:
            pytest.skip(f"Prometheus is not installed: {why}")
    return shutil.which("prometheus")


def scrape_config(cluster, token: str) -> dict:
    health = [{"targets": [f"127.0.0.1:{port}"], "labels": {"role": "handlers" if process in cluster.handlers
                                                            else "gateway"}}
              for process, port in cluster.health_ports.items()]
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "dispatch", "static_configs": health},
                {"job_name": "management", "authorization": {"type": "Bearer", "credentials": token},
                 "static_configs": [{"targets": [f"127.0.0.1:{cluster.gateway.port}"]}]}]}


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    """(the cluster, a function reaching Prometheus's HTTP API)."""
    binary = prometheus_binary()
    work = tmp_path_factory.mktemp("observed")
    with seeded_cluster(work, {"hello.py": HELLO}, SEED, ("/v1/function/hello",)) as cluster:
        config, port = work / "prometheus.yml", free_port()
        config.write_text(json.dumps(scrape_config(cluster, cluster.gateway.token())))  # JSON is YAML
        prometheus = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=(work / "prometheus.log").open("wb"), stderr=subprocess.STDOUT)
        try:
            yield cluster, lambda path: _get(f"http://127.0.0.1:{port}{path}")
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=30)


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def query(api, promql: str) -> float | None:
    result = api("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def eventually(api, promql: str, wanted, timeout: float = 60) -> float | None:
    """The query's value once `wanted(value)` holds (Prometheus scrapes every second), else the last one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = query(api, promql)
        except OSError:  # Prometheus still starting
            found = None
        if (found is not None and wanted(found)) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_prometheus_counts_the_runs_made_across_the_handler_processes(observed):
    cluster, api = observed
    gateway = cluster.gateway
    for n in range(6):
        answer = gateway.http("POST", "/v1/runs?functionName=hello", {"blocking": True, "input": {"name": n}})
        assert answer.status == 200 and answer.json()["status"] == "READY"
    run = gateway.cli("exec", "hello", "--input", '{"name": "Jon"}', "--wait")
    assert json.loads(run.stdout)["output"] == {"hello": "Jon"}

    assert eventually(api, 'sum(dispatch_runs_total{function="hello"})', lambda v: v >= 7) == 7
    assert eventually(api, 'sum(dispatch_run_duration_seconds_count{function="hello"})', lambda v: v >= 7) == 7
    assert eventually(api, 'count(up{job="dispatch"} == 1)', lambda v: v == 3) == 3
    assert eventually(api, 'sum(dispatch_warm_workers{function="hello", role="handlers"})', lambda v: v >= 1) >= 1
    consumed = 'sum(dispatch_bus_messages_total{role="handlers", direction="consumed", kind="command"})'
    assert eventually(api, consumed, lambda v: v >= 7) >= 7


def test_the_management_port_is_scraped_with_a_token_and_counts_requests_by_route(observed):
    cluster, api = observed
    for name in ("a", "b", "c"):
        assert cluster.gateway.http("GET", f"/v1/runs/no-such-run-{name}").status == 404

    not_found = 'sum(dispatch_http_requests_total{job="management", route="/v1/runs/{name}", status="404"})'
    assert eventually(api, not_found, lambda v: v >= 3) == 3
    assert eventually(api, 'up{job="management"}', lambda v: v == 1) == 1
    assert query(api, 'count(dispatch_http_requests_total{route=~".*no-such-run.*"})') is None
