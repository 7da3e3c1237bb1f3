"""Records the Go CLI's traffic for every scenario of scenarios.py into fixtures/<scenario>.json: each
scenario against a fresh embedded `dispatch server`, through the capturing proxy of capture.py.

    python -m tests.compat.record --cli /path/to/go/dispatch [scenario ...]
"""
import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.conftest import Server, free_port

from .scenarios import AUTHENTICATED, SCENARIOS

HERE = Path(__file__).parent
SOURCES = HERE / "sources"
FIXTURES = HERE / "fixtures"


class Recorder:
    def __init__(self, cli: str, work: Path, authenticated: bool):
        self.cli, self.work = cli, work
        self.traffic = work / "traffic.jsonl"
        self.traffic.touch()
        self.server = Server(work / "data", extra=() if authenticated else ("--skip-auth",)).start()
        # authenticated: the context the server's first start wrote; else an empty config
        self.config = Path(self.server.env["DISPATCH_CONFIG"]) if authenticated else work / "config.json"
        self.port = free_port()
        self.proxy = subprocess.Popen([sys.executable, "-m", "tests.compat.capture", "--listen", str(self.port),
                                       "--to", f"http://127.0.0.1:{self.server.port}", "--out", str(self.traffic)],
                                      cwd=HERE.parents[1])
        if not authenticated:
            self.config.write_text("{}")
        self.commands: list[dict] = []
        self.requests: list[dict] = []
        self.last_run = ""
        self.seen = 0
        try:
            self._wait_for_proxy()
        except RuntimeError:
            self.close()
            raise

    def _wait_for_proxy(self) -> None:
        for _ in range(100):
            if self.go("version").returncode == 0:
                self._taken()
                return
            time.sleep(0.1)
        raise RuntimeError("the capturing proxy did not start")

    def go(self, line: str, timeout: float | None = 120) -> subprocess.CompletedProcess:
        argv = [self.cli, "--config", str(self.config), "--scheme", "http", "--host", "127.0.0.1",
                "--port", str(self.port), "--organization", "dispatch", *shlex.split(line)]
        try:
            return subprocess.run(argv, cwd=SOURCES, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as stopped:
            text = [(out or b"").decode() for out in (stopped.stdout, stopped.stderr)]
            return subprocess.CompletedProcess(argv, -1, *text)

    def _taken(self) -> list[dict]:
        """The exchanges the proxy wrote since the last call."""
        lines = self.traffic.read_text().splitlines()
        new, self.seen = lines[self.seen:], len(lines)
        return [json.loads(line) for line in new]

    def step(self, step) -> None:
        kind, arg, line = step if isinstance(step, tuple) else ("run", None, step)
        line = line.replace("{run}", self.last_run).replace("{work}", str(self.work))
        if kind == "poll":
            for _ in range(600):
                done = self.go(line)
                exchanges = self._taken()
                if done.returncode == 0 and json.loads(done.stdout).get("status") == arg:
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"{line!r} never printed status {arg}: {done.stdout}{done.stderr}")
            for exchange in exchanges:
                exchange["poll_until"] = arg
        else:
            done = self.go(line, timeout=arg if kind == "during" else 120)
            exchanges = self._taken()
        if line.startswith("exec ") and done.returncode == 0:
            self.last_run = json.loads(done.stdout)["name"]
        self.commands.append({"command": f"dispatch {line}", "exit": done.returncode,
                              "output": (done.stdout + done.stderr)[-3000:]})
        for exchange in exchanges:
            exchange["headers"] = [f"{name}: {value}" for name, value in exchange["headers"]]
            exchange["response"] = exchange["response"].get("body", exchange["response"])
            self.requests.append({"command": len(self.commands) - 1, **exchange})

    def close(self) -> None:
        self.proxy.terminate()
        self.proxy.wait(timeout=30)
        self.server.stop()


def record(cli: str, name: str) -> Path:
    with tempfile.TemporaryDirectory() as work:
        recorder = Recorder(cli, Path(work), name in AUTHENTICATED)
        try:
            for step in SCENARIOS[name]:
                recorder.step(step)
        finally:
            recorder.close()
    fixture = {"scenario": name,
               "cli": ("dispatch --config <the server's first-start context> " if name in AUTHENTICATED else
                       "dispatch --config <{}> ")
               + "--scheme http --host 127.0.0.1 --port <proxy> --organization dispatch",
               "commands": recorder.commands, "requests": recorder.requests}
    path = FIXTURES / f"{name}.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", required=True, help="the Go `dispatch` binary")
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    for name in args.scenarios:
        path = record(args.cli, name)
        fixture = json.loads(path.read_text())
        failed = [c["command"] for c in fixture["commands"] if c["exit"] != 0]
        print(f"{path.name}: {len(fixture['requests'])} requests; commands that failed: {failed or 'none'}")


if __name__ == "__main__":
    main()
