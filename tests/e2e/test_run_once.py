"""A run executes once unless its executor dies: a broker dropping every connection (no process
crashes) delivers the unacknowledged commands again, and no function runs twice for them."""
import subprocess
import time

import pytest

from tests.tally import Tally

from .cluster import seeded_cluster
from .conftest import PYTHON_IMAGE

pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq, pytest.mark.postgres]

COUNTED = """import time
import urllib.request
def handle(ctx, payload):
    urllib.request.urlopen(f"{payload['counter']}/{payload['n']}", timeout=10).read()
    time.sleep(0.3)
    return payload['n']
"""
SEED = PYTHON_IMAGE + "---\nkind: Function\nname: counted\nimage: py\nsourcePath: counted.py\n"


@pytest.fixture
def counter():
    """Counts the calls each run makes: a side effect outside the platform, as a payment is."""
    with Tally() as tally:
        yield tally


def runs_of(gateway) -> dict:
    return {r["name"]: r for r in gateway.http("GET", "/v1/runs?functionName=counted").json()}


def test_async_runs_delivered_again_after_a_connection_drop_run_once(tmp_path, counter):
    if subprocess.run(["rabbitmqctl", "status"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("rabbitmqctl cannot reach the broker under test: no way to drop its connections")
    with seeded_cluster(tmp_path, {"counted.py": COUNTED}, SEED, ("/v1/function/counted",)) as cluster:
        names = set()
        for n in range(200):
            answer = cluster.gateway.http("POST", "/v1/runs?functionName=counted",
                                          {"input": {"n": n, "counter": counter.url}})
            assert answer.status == 202
            names.add(answer.json()["name"])
        while sum(counter.counts().values()) < 20:  # runs in flight, their commands not yet acknowledged
            time.sleep(0.05)
        # every process's connection drops at once; none of them dies
        subprocess.run(["rabbitmqctl", "close_all_connections", "test: connection drop"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 180
        while not all(runs_of(cluster.gateway).get(n, {}).get("status") in ("READY", "ERROR") for n in names):
            assert time.monotonic() < deadline, "not every accepted run finished"
            time.sleep(0.5)
        executed = counter.counts()
        assert sorted(executed.values()) == [1] * 200, [n for n, count in executed.items() if count > 1]
        assert all(run["status"] == "READY" and run.get("attempt", 1) == 1 for run in runs_of(cluster.gateway).values())
