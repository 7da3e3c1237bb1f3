"""The distributed mode: a gateway and two handler processes on RabbitMQ and PostgreSQL, driven
as a user would, and killed as machines die."""
import json
import os
import subprocess
import time

import pytest

from .cluster import seeded_cluster
from .conftest import PYTHON_IMAGE

pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq, pytest.mark.postgres]

HELLO = """import time
def handle(ctx, payload):
    time.sleep(payload.get('sleep', 0))
    return {'hello': payload.get('name'), 'n': payload.get('n')}
"""
SEED = PYTHON_IMAGE + """---
kind: Function
name: hello
image: py
sourcePath: hello.py
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with seeded_cluster(tmp_path_factory.mktemp("cluster"), {"hello.py": HELLO}, SEED,
                        ("/v1/function/hello",)) as running:
        yield running


def test_the_quickstart_works_through_a_gateway_and_two_handler_processes(cluster):
    gateway = cluster.gateway
    assert gateway.http("GET", "/v1/function/hello").json()["status"] == "READY"
    run = json.loads(gateway.cli("exec", "hello", "--input", '{"name": "Jon"}', "--wait").stdout)
    assert run["output"] == {"hello": "Jon", "n": None}
    assert gateway.cli("create", "api", "hi", "hello", "--method", "POST", "--path", "/hi").returncode == 0
    gateway.wait_status("/v1/api/hi")
    answer = gateway.http("POST", "/hi", {"name": "Arya"}, api=True)
    assert answer.status == 200 and answer.json()["hello"] == "Arya"


def test_blocking_runs_are_answered_whichever_handler_runs_them(cluster):
    names = set()
    for n in range(20):
        answer = cluster.gateway.http("POST", "/v1/runs?functionName=hello", {"blocking": True, "input": {"n": n}})
        assert answer.status == 200 and answer.json()["output"]["n"] == n
        names.add(answer.json()["name"])
    listed = {r["name"] for r in cluster.gateway.http("GET", "/v1/runs?functionName=hello").json()}
    assert names <= listed


def wait_all_finished(gateway, names: set[str], timeout: float = 120) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = {r["name"]: r for r in gateway.http("GET", "/v1/runs?functionName=hello").json()}
        if all(runs.get(n, {}).get("status") in ("READY", "ERROR") for n in names):
            return runs
        time.sleep(0.5)
    missing = [n for n in names if runs.get(n, {}).get("status") not in ("READY", "ERROR")]
    raise AssertionError(f"{len(missing)} of {len(names)} runs never finished")


def test_an_async_run_can_be_followed_from_the_moment_it_is_accepted(cluster):
    answer = cluster.gateway.http("POST", "/v1/runs?functionName=hello", {"input": {"n": 1, "sleep": 0.5}})
    assert answer.status == 202 and answer.json()["status"] == "INITIALIZED"
    name = answer.json()["name"]
    followed = cluster.gateway.http("GET", f"/v1/runs/{name}")  # accepted, or already taken by a handler
    assert followed.status == 200 and followed.json()["status"] in ("INITIALIZED", "CREATING")
    assert wait_all_finished(cluster.gateway, {name})[name]["output"]["n"] == 1


def test_a_killed_handler_process_loses_no_accepted_run(cluster):
    accepted = set()
    victim = cluster.handlers[0]
    for n in range(150):
        answer = cluster.gateway.http("POST", "/v1/runs?functionName=hello", {"input": {"n": n}})
        assert answer.status == 202
        accepted.add(answer.json()["name"])
        if n == 50:
            victim.kill()
    runs = wait_all_finished(cluster.gateway, accepted)
    assert all(runs[n]["status"] == "READY" for n in accepted)
    victim.start()  # back for the next tests


def test_a_broker_restart_loses_nothing_that_was_acknowledged(cluster):
    if subprocess.run(["which", "rabbitmqctl"], capture_output=True).returncode != 0:
        pytest.skip("rabbitmqctl is not available to restart the broker")
    accepted = set()
    for n in range(30):
        accepted.add(cluster.gateway.http("POST", "/v1/runs?functionName=hello", {"input": {"n": n}}).json()["name"])
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
    try:
        during = cluster.gateway.http("POST", "/v1/runs?functionName=hello", {"input": {"n": -1}})
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    if during.status == 202:
        accepted.add(during.json()["name"])
    else:
        assert during.status == 503 and during.json()["message"]
    for n in range(30, 60):
        answer = cluster.gateway.http("POST", "/v1/runs?functionName=hello", {"input": {"n": n}})
        for _ in range(60):
            if answer.status == 202:
                break
            time.sleep(0.5)
            answer = cluster.gateway.http("POST", "/v1/runs?functionName=hello", {"input": {"n": n}})
        accepted.add(answer.json()["name"])
    runs = wait_all_finished(cluster.gateway, accepted, timeout=180)
    assert all(runs[n]["status"] == "READY" for n in accepted)


def test_racing_creates_of_one_name_keep_one_outcome(cluster):
    from concurrent.futures import ThreadPoolExecutor

    body = {"name": "raced", "secrets": {"k": "v"}}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: cluster.gateway.http("POST", "/v1/secret", body), range(8)))
    assert sorted(a.status for a in answers) == [201] + [409] * 7
    assert [s["name"] for s in cluster.gateway.http("GET", "/v1/secret").json()].count("raced") == 1


def test_a_database_outage_answers_503_then_recovers(cluster):
    clusters = os.listdir("/etc/postgresql") if os.path.isdir("/etc/postgresql") else []
    if not clusters or subprocess.run(["which", "pg_ctlcluster"], capture_output=True).returncode != 0:
        pytest.skip("pg_ctlcluster is not available to stop the local PostgreSQL")
    control = ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[0], "main"]
    before = cluster.gateway.http("POST", "/v1/runs?functionName=hello", {"blocking": True, "input": {"n": 7}}).json()
    subprocess.run([*control, "stop", "--mode", "fast"], check=True, capture_output=True, timeout=60)
    try:
        down = cluster.gateway.http("GET", "/v1/function/hello")
        assert down.status == 503 and "unavailable" in down.json()["message"]
    finally:
        subprocess.run([*control, "start"], check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 60
    while cluster.gateway.http("GET", "/v1/function/hello").status != 200:
        assert time.monotonic() < deadline, "the gateway did not recover after PostgreSQL came back"
        time.sleep(0.5)
    after = cluster.gateway.http("POST", "/v1/runs?functionName=hello", {"blocking": True, "input": {"n": 8}})
    assert after.status == 200 and after.json()["output"]["n"] == 8
    assert cluster.gateway.http("GET", f"/v1/runs/{before['name']}").json()["output"]["n"] == 7
