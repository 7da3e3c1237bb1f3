"""The per-language function servers in HTTP mode (§3.2), as a container would run them, and `--check`."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import dispatch

PACKAGE_PARENT = str(Path(dispatch.__file__).resolve().parent.parent)
SERVER_JS = str(Path(dispatch.__file__).resolve().parent / "runtimes" / "nodejs" / "server.js")
FUNCTIONS = {
    "python3": ("hello.py", """
import time
def handle(context, payload):
    print("serving", payload["name"])
    time.sleep(payload.get("sleep", 0))
    return {"myField": f"Hello, {payload['name']} from {payload['place']}"}
"""),
    "nodejs": ("hello.js", """
module.exports = async (context, payload) => {
  console.log("serving", payload.name);
  await new Promise((resolve) => setTimeout(resolve, (payload.sleep || 0) * 1000));
  return { myField: `Hello, ${payload.name} from ${payload.place}` };
};
"""),
}
LANGUAGES = list(FUNCTIONS)


def _command(language: str, source: Path, *flags: str) -> list[str]:
    if language == "python3":
        return [sys.executable, "-P", "-m", "dispatch.runtimes.python3", "--source", str(source), *flags]
    return ["node", SERVER_JS, "--source", str(source), *flags]


def _env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", os.defpath), "PYTHONPATH": PACKAGE_PARENT}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _request(port: int, path: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as failed:
        return failed.code, json.loads(failed.read())


@pytest.fixture
def start_function_server(tmp_path):
    """Start a server in HTTP mode for a source file; wait for /healthz to answer; stop it afterwards."""
    started: list[subprocess.Popen] = []

    def start(language: str, filename: str, text: str, *flags: str) -> tuple[subprocess.Popen, int]:
        source = tmp_path / language
        source.mkdir()
        (source / filename).write_text(text)
        port = _free_port()
        server = subprocess.Popen(_command(language, source, "--http", "--port", str(port), *flags), env=_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(server)
        for _ in range(100):
            try:
                _request(port, "/healthz")
                return server, port
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{language} server did not answer: {server.stderr.read1().decode()}")

    yield start
    for server in started:
        server.kill()
        server.wait()


def _envelope(payload, **context) -> bytes:
    return json.dumps({"context": context, "payload": payload}).encode()


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_answers_healthz_and_runs_the_function_on_any_path(start_function_server, language):
    _, port = start_function_server(language, *FUNCTIONS[language])

    health = _request(port, "/healthz")
    status, answer = _request(port, "/some/path", _envelope({"name": "Jon", "place": "Winterfell"}))

    assert health == (200, {})
    assert status == 200
    assert answer == {"context": {"logs": {"stdout": ["serving Jon"], "stderr": []}, "error": None},
                      "payload": {"myField": "Hello, Jon from Winterfell"}}


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_answers_a_body_that_is_not_json_with_an_input_error(start_function_server, language):
    _, port = start_function_server(language, *FUNCTIONS[language])

    status, answer = _request(port, "/", b"{not json")

    assert status == 200
    assert answer["context"]["error"]["type"] == "InputError"
    assert answer["context"]["error"]["message"].startswith("Invalid Input")


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_answers_a_call_past_its_deadline_with_the_timeout_error(start_function_server, language):
    server, port = start_function_server(language, *FUNCTIONS[language])
    deadline = (datetime.now(timezone.utc) + timedelta(milliseconds=300)).isoformat()

    status, answer = _request(port, "/", _envelope({"name": "Jon", "place": "W", "sleep": 20}, deadline=deadline))

    assert answer["context"]["error"]["message"] == "Function execution exceeded the timeout"
    assert server.wait(timeout=5) != 0  # the stuck call cannot be stopped in-process: a fresh one takes over


MEETING = {
    "python3": ("meet.py", """
import threading
met = threading.Event()
def handle(context, payload):
    print(payload["role"])
    if payload["role"] == "second":
        met.set()
        return "second"
    return "together" if met.wait(5) else "alone"
"""),
    "nodejs": ("meet.js", """
let meet;
const met = new Promise((resolve) => { meet = resolve; });
module.exports = async (context, payload) => {
  console.log(payload.role);
  if (payload.role === 'second') { meet(); return 'second'; }
  return Promise.race([met.then(() => 'together'), new Promise((resolve) => setTimeout(() => resolve('alone'), 5000))]);
};
"""),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_with_concurrency_runs_calls_at_once_each_with_its_own_logs(start_function_server, language):
    import threading

    _, port = start_function_server(language, *MEETING[language], "--concurrency", "2")
    answers = {}
    first = threading.Thread(target=lambda: answers.update(first=_request(port, "/", _envelope({"role": "first"}))))
    first.start()
    time.sleep(0.2)  # the first call is waiting for the second
    answers["second"] = _request(port, "/", _envelope({"role": "second"}))
    first.join(10)

    seen = {role: (answer["payload"], answer["context"]["logs"]["stdout"]) for role, (_, answer) in answers.items()}
    assert seen == {"first": ("together", ["first"]), "second": ("second", ["second"])}


BURN = {
    "python3": ("burn.py", """
import time
def handle(context, payload):
    if payload.get("sleep"):
        time.sleep(payload["sleep"])
        return "slept"
    while payload["burn"]:
        pass
    return "within"
"""),
    "nodejs": ("burn.js", """
module.exports = async (context, payload) => {
  if (payload.sleep) {
    await new Promise((resolve) => setTimeout(resolve, payload.sleep * 1000));
    return 'slept';
  }
  while (payload.burn) { /* keeps the thread busy */ }
  return 'within';
};
"""),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_answers_a_call_past_its_cpu_time_with_the_limit_then_exits(start_function_server, language):
    server, port = start_function_server(language, *BURN[language], "--cpu-seconds", "1")

    within = _request(port, "/", _envelope({"burn": False}))
    status, over = _request(port, "/", _envelope({"burn": True}))

    assert within == (200, {"context": {"logs": {"stdout": [], "stderr": []}, "error": None}, "payload": "within"})
    assert status == 200 and over["context"]["error"]["type"] == "FunctionError"
    assert over["context"]["error"]["message"] == "Function exceeded its CPU time limit of 1 s"
    assert server.wait(timeout=5) != 0  # the call cannot be stopped in-process: a fresh process takes over


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_answers_a_call_keeping_its_thread_busy_past_its_deadline_then_exits(
        start_function_server, language):
    server, port = start_function_server(language, *BURN[language])
    deadline = (datetime.now(timezone.utc) + timedelta(milliseconds=300)).isoformat()

    status, answer = _request(port, "/", _envelope({"burn": True}, deadline=deadline))

    assert status == 200 and answer["context"]["error"] == {
        "type": "FunctionError", "message": "Function execution exceeded the timeout", "stacktrace": []}
    assert server.wait(timeout=5) != 0


def test_nodejs_http_server_answers_the_calls_beside_a_busy_call_past_its_deadline_with_why_they_ended(
        start_function_server):
    import threading

    server, port = start_function_server("nodejs", *BURN["nodejs"], "--concurrency", "2")
    answers = {}
    sleeper = threading.Thread(target=lambda: answers.update(sleeper=_request(port, "/", _envelope({"sleep": 5}))))
    sleeper.start()
    time.sleep(0.3)  # the sleeping call is in flight
    soon = (datetime.now(timezone.utc) + timedelta(milliseconds=300)).isoformat()
    _, busy = _request(port, "/", _envelope({"burn": True}, deadline=soon))
    sleeper.join(10)

    assert busy["context"]["error"]["message"] == "Function execution exceeded the timeout"
    assert answers["sleeper"][1]["context"]["error"] == {
        "type": "SystemError", "stacktrace": [], "message": "the function process ended during the call: "
                                                            "another run on the same function process exceeded its timeout"}
    assert server.wait(timeout=5) != 0


def test_a_container_names_a_cpu_time_limit_in_the_words_of_every_other_runtime():
    from dispatch.drivers.ports import cpu_message
    from dispatch.runtimes.python3.invoke import cpu_message as in_container

    assert in_container(3) == cpu_message(3)


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_exits_cleanly_on_sigterm(start_function_server, language):
    server, _ = start_function_server(language, *FUNCTIONS[language])

    server.send_signal(signal.SIGTERM)

    assert server.wait(timeout=10) == 0


@pytest.mark.parametrize("language, filename, text", [
    ("python3", "hello.py", "def handle(payload):\n    return payload\n"),
    ("nodejs", "hello.js", "module.exports = 42;\n"),
])
def test_http_server_with_an_invalid_handler_reports_unhealthy_with_the_reason(
        start_function_server, language, filename, text):
    _, port = start_function_server(language, filename, text)

    status, answer = _request(port, "/healthz")

    assert status == 500
    assert answer["error"]["message"].startswith("Invalid function file or handler")


@pytest.mark.parametrize("language, filename, text, valid", [
    ("python3", "hello.py", FUNCTIONS["python3"][1], True),
    ("python3", "hello.py", "def handle(context, payload, extra):\n    pass\n", False),
    ("nodejs", "hello.js", FUNCTIONS["nodejs"][1], True),
    ("nodejs", "hello.js", "exports.handle = () => 1;\n", False),
])
def test_check_validates_the_handler_as_an_image_build_step(tmp_path, language, filename, text, valid):
    (tmp_path / filename).write_text(text)

    checked = subprocess.run(_command(language, tmp_path, "--check"), env=_env(), capture_output=True, text=True,
                             timeout=30)

    assert (checked.returncode == 0) is valid
    if not valid:
        assert "Invalid function file or handler" in checked.stderr
