"""Runs a user can follow, through the real CLI: `dispatch logs function NAME -f` prints each new
run's lines as it finishes, embedded and distributed; `get runs --limit` pages; run records carry
millisecond times and a duration."""
import json
import queue
import signal
import subprocess
import threading
import time

import pytest

from .cluster import seeded_cluster
from .conftest import DISPATCH, PYTHON_IMAGE, ROOT, Server

pytestmark = pytest.mark.e2e

PRINTER = """import sys
def handle(context, payload):
    print("hello", payload.get("name"))
    print("careful", payload.get("name"), file=sys.stderr)
    return payload.get("name")
"""
SEED = PYTHON_IMAGE + """---
kind: Function
name: printer
image: py
sourcePath: printer.py
"""


class Following:
    """`dispatch logs function NAME -f` running, its output read as it comes."""

    def __init__(self, server: Server, *args: str):
        self.process = subprocess.Popen([DISPATCH, "logs", "function", *args, "-f"], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=server.env, cwd=ROOT)
        self.lines: queue.Queue = queue.Queue()
        self.notices: queue.Queue = queue.Queue()
        for stream, into in ((self.process.stdout, self.lines), (self.process.stderr, self.notices)):
            threading.Thread(target=lambda s=stream, q=into: [q.put(line.rstrip("\n")) for line in s],
                             daemon=True).start()

    def notice(self, timeout: float = 30) -> str:
        return self.notices.get(timeout=timeout)

    def until(self, wanted: int, timeout: float = 60) -> list[str]:
        got, deadline = [], time.monotonic() + timeout
        while len(got) < wanted:
            got.append(self.lines.get(timeout=max(0.1, deadline - time.monotonic())))
        return got

    def interrupt(self) -> int:
        """Ctrl-C, as a user stops it."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=20)


def exec_twice_while_following(server: Server) -> None:
    following = Following(server, "printer")
    try:
        assert following.notice() == "Following the runs of printer; Ctrl-C stops."
        runs = []
        for name in ("Jon", "Arya"):
            done = server.cli("exec", "printer", "--input", json.dumps({"name": name}), "--wait")
            assert done.returncode == 0, done.stderr
            runs.append(json.loads(done.stdout))
        printed = following.until(4)
    finally:
        code = following.interrupt()
    assert code == 0
    lines = {tuple(line.split(" ", 3)[1:]) for line in printed}
    assert lines == {(run["name"], stream, f"{word} {run['input']['name']}") for run in runs
                     for stream, word in (("stdout", "hello"), ("stderr", "careful"))}
    times = {line.split(" ", 1)[0] for line in printed}
    assert times == {run["startedAt"] for run in runs}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    work = tmp_path_factory.mktemp("runlogs")
    (work / "printer.py").write_text(PRINTER)
    (work / "seed.yaml").write_text(SEED)
    server = Server(work / "data", seed=work / "seed.yaml").start()
    try:
        server.wait_status("/v1/function/printer")
        yield server
    finally:
        server.stop()


def test_logs_follow_prints_each_new_runs_lines_until_ctrl_c(embedded):
    exec_twice_while_following(embedded)


def test_logs_without_follow_prints_the_runs_since_and_exits(embedded):
    done = json.loads(embedded.cli("exec", "printer", "--input", '{"name": "Sansa"}', "--wait").stdout)
    shown = embedded.cli("logs", "function", "printer", "--since", "10m")
    assert shown.returncode == 0, shown.stderr
    assert f"{done['startedAt']} {done['name']} stdout hello Sansa" in shown.stdout.splitlines()
    assert embedded.cli("logs", "function", "printer", "--since", "soon").returncode == 1  # not a duration
    missing = embedded.cli("logs", "function", "ghost")
    assert missing.returncode == 1 and "function ghost not found" in missing.stderr


def test_a_run_record_carries_its_start_and_end_to_the_millisecond_and_its_duration(embedded):
    run = json.loads(embedded.cli("exec", "printer", "--input", '{"name": "Bran"}', "--wait").stdout)
    assert run["startedAt"].endswith("Z") and len(run["startedAt"]) == len("2024-01-01T00:00:00.000Z")
    assert run["finishedAt"] >= run["startedAt"] and isinstance(run["durationMs"], int) and run["durationMs"] >= 0
    assert isinstance(run["executedTime"], int) and isinstance(run["finishedTime"], int)


def test_get_runs_pages_newest_first_and_prints_how_to_get_the_next_page(embedded):
    names = [json.loads(embedded.cli("exec", "printer", "--input", json.dumps({"name": f"p{i}"}), "--wait").stdout)
             ["name"] for i in range(3)]
    first = embedded.cli("get", "runs", "printer", "--limit", "2", "-o", "json")
    assert first.returncode == 0, first.stderr
    assert [run["name"] for run in json.loads(first.stdout)] == names[::-1][:2]
    hint = first.stderr.strip()
    assert hint.startswith("More runs: dispatch get runs printer --limit 2 --continue ")
    second = embedded.cli("get", "runs", "printer", "--limit", "2", "--continue", hint.split()[-1], "-o", "json")
    assert json.loads(second.stdout)[0]["name"] == names[0]
    every = embedded.cli("get", "runs", "printer", "--all", "--limit", "2", "-o", "json")
    listed = [run["name"] for run in json.loads(every.stdout)]
    assert listed[:3] == names[::-1] and len(listed) == len(set(listed)) and not every.stderr.strip()


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_logs_follow_in_a_distributed_installation_sees_runs_other_processes_ran(tmp_path):
    with seeded_cluster(tmp_path, {"printer.py": PRINTER}, SEED, ("/v1/function/printer",)) as cluster:
        exec_twice_while_following(cluster.gateway)
