"""Event drivers in distributed mode: a gateway and two handler processes on RabbitMQ and
PostgreSQL. A cron driver created with the CLI is run by one process; when that process is
killed the other takes it over, and every second's slot still runs the subscribed function once,
none twice, none lost. A webhook driver's push URL answers on the gateway process."""
import json
import re
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta

import pytest

from tests.tally import CALL, Tally

from .cluster import seeded_cluster
from .conftest import PYTHON_IMAGE

pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq, pytest.mark.postgres]

SLOTS = CALL + """
def handle(context, payload):
    tally(payload["calls"], context["event"]["time"])
    return context["event"]["type"]
"""
SEED = PYTHON_IMAGE + """---
kind: Function
name: slots
image: py
sourcePath: slots.py
---
kind: Subscription
name: every-second
eventType: tick.second
function: slots
---
kind: Subscription
name: on-push
eventType: repo.pushed
function: slots
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with seeded_cluster(tmp_path_factory.mktemp("drivers-cluster"), {"slots.py": SLOTS}, SEED,
                        ("/v1/function/slots",)) as running:
        yield running


@pytest.fixture
def calls():
    """Counts each slot's executions, which the sandboxed functions report over HTTP."""
    with Tally() as tally:
        yield tally


def slots_run(calls: Tally) -> Counter:
    return calls.counts()


def starts(handler, driver: str) -> list[dict]:
    """The records of a handler process's log (JSON lines) saying it started the driver."""
    records = [json.loads(line) for line in handler.log.read_text().splitlines() if line.startswith("{")]
    return [r for r in records if r.get("event") == "event driver started" and r.get("driver") == driver]


def test_a_cron_driver_runs_once_and_is_taken_over_without_a_slot_lost_or_doubled(cluster, calls):
    gateway = cluster.gateway
    created = gateway.cli("create", "eventdriver", "cron", "--name", "tick", "-s", "schedule=* * * * * *",
                          "-s", "eventType=tick.second", "-s", f"data={json.dumps({'calls': calls.url})}")
    assert created.returncode == 0 and created.stdout.strip() == "Created event driver: tick", created.stderr
    assert gateway.wait_status("/v1/event/drivers/tick", timeout=30)["status"] == "READY"
    time.sleep(3)
    [victim] = [handler for handler in cluster.handlers if starts(handler, "tick")]  # one process runs it
    victim.kill()
    killed_at = datetime.utcnow()
    time.sleep(5)
    try:
        [survivor] = [handler for handler in cluster.handlers if handler is not victim]
        assert [record for record in starts(survivor, "tick") if record["resumed"]]
        counts = slots_run(calls)
        assert counts and max(counts.values()) == 1, counts
        seconds = sorted(datetime.strptime(slot, "%Y-%m-%dT%H:%M:%SZ") for slot in counts)
        assert seconds == [seconds[0] + timedelta(seconds=n) for n in range(len(seconds))], "a slot was lost"
        assert seconds[-1] > killed_at + timedelta(seconds=2)
        listed = json.loads(gateway.cli("get", "eventdrivers", "-o", "json").stdout)
        assert [(d["name"], d["status"], d["type"]) for d in listed] == [("tick", "READY", "cron")]
    finally:
        victim.start()
    deleted = gateway.cli("delete", "eventdriver", "tick")
    assert deleted.returncode == 0 and deleted.stdout.strip() == "Deleted event driver: tick"
    deadline = time.monotonic() + 30
    while gateway.http("GET", "/v1/event/drivers/tick").status != 404:
        assert time.monotonic() < deadline, "the driver was never removed"
        time.sleep(0.2)
    time.sleep(1.5)
    before = slots_run(calls)
    time.sleep(1.5)
    assert slots_run(calls) == before


def test_a_webhook_drivers_push_url_answers_on_the_gateway(cluster, calls):
    created = cluster.gateway.cli("create", "eventdriver", "webhook", "--name", "repo", "-s", "eventType=repo.pushed")
    assert created.returncode == 0, created.stderr
    token = re.search(r"Token \(shown only now.*\): (\S+)", created.stdout).group(1)
    url = re.search(r"URL: (\S+)", created.stdout).group(1)
    assert url.startswith(f"http://127.0.0.1:{cluster.gateway.port}/driver/dispatch/")
    cluster.gateway.wait_status("/v1/event/drivers/repo", timeout=30)
    event = {"specversion": "1.0", "id": "push-1", "source": "/repo", "type": "repo.pushed",
             "time": "2030-01-01T00:00:00Z", "data": {"calls": calls.url}}
    request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 202
    deadline = time.monotonic() + 30
    while slots_run(calls) != Counter({"2030-01-01T00:00:00Z": 1}):
        assert time.monotonic() < deadline, slots_run(calls)
        time.sleep(0.2)
    shown = cluster.gateway.cli("get", "eventdriver", "repo")
    assert "repo" in shown.stdout and "webhook" in shown.stdout and token not in shown.stdout
