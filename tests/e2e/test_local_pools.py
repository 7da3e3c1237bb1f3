"""A function's scale from the CLI to its local workers, and a full queue seen from a user API."""
import concurrent.futures
import time

from .conftest import PYTHON_IMAGE, Server

SLOW = "import time\ndef handle(context, payload):\n    time.sleep(1)\n    return 'done'\n"


def test_a_function_at_capacity_answers_503_on_its_api_while_queued_runs_finish(tmp_path, monkeypatch):
    monkeypatch.setenv("DISPATCH_MAX_QUEUED_RUNS", "1")
    (tmp_path / "seed.yaml").write_text(PYTHON_IMAGE)
    (tmp_path / "slow.py").write_text(SLOW)
    server = Server(tmp_path / "data", seed=tmp_path / "seed.yaml").start()
    try:
        created = server.cli("create", "function", "slow", str(tmp_path / "slow.py"), "--image", "py",
                             "--max-replicas", "1", "--memory-mb", "128", "--wait")
        assert created.returncode == 0, created.stderr
        assert server.cli("create", "api", "slow", "slow", "--method", "POST", "--path", "/slow").returncode == 0
        server.wait_status("/v1/api/slow")
        function = server.http("GET", "/v1/function/slow").json()

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            running = [pool.submit(server.http, "POST", "/slow", {}, api=True)]
            time.sleep(0.3)
            running.append(pool.submit(server.http, "POST", "/slow", {}, api=True))
            time.sleep(0.3)
            refused = server.http("POST", "/slow", {}, api=True)
            finished = [future.result() for future in running]
    finally:
        server.stop()

    assert (function["scale"]["maxReplicas"], function["limits"]["memoryMB"]) == (1, 128)
    assert refused.status == 503
    assert refused.json()["message"] == "function slow is at capacity: 1 runs queued"
    assert [(answer.status, answer.json()) for answer in finished] == [(200, "done")] * 2
