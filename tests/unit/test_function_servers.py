"""The per-language function servers in HTTP mode (§3.2), as a container would run them, and `--check`."""
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.unit.function_servers import (
    command,
    env,
    envelope,
    request,
    start_function_server,  # noqa: F401 (a fixture)
)

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
    "java": ("Hello.java", """
import java.util.Map;
import java.util.function.BiFunction;

public class Hello implements BiFunction<Map<String, Object>, Map<String, Object>, Map<String, Object>> {
    public Map<String, Object> apply(Map<String, Object> context, Map<String, Object> payload) {
        System.out.println("serving " + payload.get("name"));
        try {
            Thread.sleep((long) (((Number) payload.getOrDefault("sleep", 0)).doubleValue() * 1000));
        } catch (InterruptedException stopped) {
            throw new IllegalStateException(stopped);
        }
        return Map.of("myField", "Hello, " + payload.get("name") + " from " + payload.get("place"));
    }
}
"""),
}
LANGUAGES = list(FUNCTIONS)


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_answers_healthz_and_runs_the_function_on_any_path(start_function_server, language):
    _, port = start_function_server(language, *FUNCTIONS[language])

    health = request(port, "/healthz")
    status, answer = request(port, "/some/path", envelope({"name": "Jon", "place": "Winterfell"}))

    assert health == (200, {})
    assert status == 200
    assert answer == {"context": {"logs": {"stdout": ["serving Jon"], "stderr": []}, "error": None},
                      "payload": {"myField": "Hello, Jon from Winterfell"}}


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_answers_a_body_that_is_not_json_with_an_input_error(start_function_server, language):
    _, port = start_function_server(language, *FUNCTIONS[language])

    status, answer = request(port, "/", b"{not json")

    assert status == 200
    assert answer["context"]["error"]["type"] == "InputError"
    assert answer["context"]["error"]["message"].startswith("Invalid Input")


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_answers_a_call_past_its_deadline_with_the_timeout_error(start_function_server, language):
    server, port = start_function_server(language, *FUNCTIONS[language])
    deadline = (datetime.now(timezone.utc) + timedelta(milliseconds=300)).isoformat()

    status, answer = request(port, "/", envelope({"name": "Jon", "place": "W", "sleep": 20}, deadline=deadline))

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
    "java": ("Meet.java", """
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BiFunction;

public class Meet implements BiFunction<Map<String, Object>, Map<String, String>, String> {
    private final CountDownLatch met = new CountDownLatch(1);

    public String apply(Map<String, Object> context, Map<String, String> payload) {
        System.out.println(payload.get("role"));
        if (payload.get("role").equals("second")) {
            met.countDown();
            return "second";
        }
        try {
            return met.await(5, TimeUnit.SECONDS) ? "together" : "alone";
        } catch (InterruptedException stopped) {
            return "stopped";
        }
    }
}
"""),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_with_concurrency_runs_calls_at_once_each_with_its_own_logs(start_function_server, language):
    import threading

    _, port = start_function_server(language, *MEETING[language], "--concurrency", "2")
    answers = {}
    first = threading.Thread(target=lambda: answers.update(first=request(port, "/", envelope({"role": "first"}))))
    first.start()
    time.sleep(0.2)  # the first call is waiting for the second
    answers["second"] = request(port, "/", envelope({"role": "second"}))
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
    "java": ("Burn.java", """
import java.util.Map;
import java.util.function.BiFunction;

public class Burn implements BiFunction<Map<String, Object>, Map<String, Object>, String> {
    public String apply(Map<String, Object> context, Map<String, Object> payload) {
        if (payload.containsKey("sleep")) {
            try {
                Thread.sleep(((Number) payload.get("sleep")).longValue() * 1000);
            } catch (InterruptedException stopped) {
                return "stopped";
            }
            return "slept";
        }
        long spins = 0;
        while (Boolean.TRUE.equals(payload.get("burn"))) {
            spins++; // keeps the thread busy
        }
        return "within";
    }
}
"""),
}


# The Java server has no --cpu-seconds: the Docker runtime reads a container's CPU time itself, and
# the Kubernetes runtime, which needs the flag, runs no Java.
@pytest.mark.parametrize("language", ["python3", "nodejs"])
def test_http_server_answers_a_call_past_its_cpu_time_with_the_limit_then_exits(start_function_server, language):
    server, port = start_function_server(language, *BURN[language], "--cpu-seconds", "1")

    within = request(port, "/", envelope({"burn": False}))
    status, over = request(port, "/", envelope({"burn": True}))

    assert within == (200, {"context": {"logs": {"stdout": [], "stderr": []}, "error": None}, "payload": "within"})
    assert status == 200 and over["context"]["error"]["type"] == "FunctionError"
    assert over["context"]["error"]["message"] == "Function exceeded its CPU time limit of 1 s"
    assert server.wait(timeout=5) != 0  # the call cannot be stopped in-process: a fresh process takes over


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_server_answers_a_call_keeping_its_thread_busy_past_its_deadline_then_exits(
        start_function_server, language):
    server, port = start_function_server(language, *BURN[language])
    deadline = (datetime.now(timezone.utc) + timedelta(milliseconds=300)).isoformat()

    status, answer = request(port, "/", envelope({"burn": True}, deadline=deadline))

    assert status == 200 and answer["context"]["error"] == {
        "type": "FunctionError", "message": "Function execution exceeded the timeout", "stacktrace": []}
    assert server.wait(timeout=5) != 0


@pytest.mark.parametrize("language", ["nodejs", "java"])
def test_http_server_answers_the_calls_beside_a_busy_call_past_its_deadline_with_why_they_ended(
        start_function_server, language):
    import threading

    server, port = start_function_server(language, *BURN[language], "--concurrency", "2")
    answers = {}
    sleeper = threading.Thread(target=lambda: answers.update(sleeper=request(port, "/", envelope({"sleep": 5}))))
    sleeper.start()
    time.sleep(0.3)  # the sleeping call is in flight
    soon = (datetime.now(timezone.utc) + timedelta(milliseconds=300)).isoformat()
    _, busy = request(port, "/", envelope({"burn": True}, deadline=soon))
    sleeper.join(10)

    assert busy["context"]["error"]["message"] == "Function execution exceeded the timeout"
    assert answers["sleeper"][1]["context"]["error"] == {
        "type": "SystemError", "stacktrace": [],
        "message": "the function process ended during the call: "
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
    ("java", "Hello.java", "public class Hello {\n}\n"),
])
def test_http_server_with_an_invalid_handler_reports_unhealthy_with_the_reason(
        start_function_server, language, filename, text):
    _, port = start_function_server(language, filename, text)

    status, answer = request(port, "/healthz")

    assert status == 500
    assert answer["error"]["message"].startswith("Invalid function file or handler")


@pytest.mark.parametrize("language, filename, text, valid", [
    ("python3", "hello.py", FUNCTIONS["python3"][1], True),
    ("python3", "hello.py", "def handle(context, payload, extra):\n    pass\n", False),
    ("nodejs", "hello.js", FUNCTIONS["nodejs"][1], True),
    ("nodejs", "hello.js", "exports.handle = () => 1;\n", False),
    ("java", "Hello.java", FUNCTIONS["java"][1], True),
    ("java", "Hello.java", "public class Hello {\n    public Hello(String name) {\n    }\n}\n", False),
    ("java", "Hello.java", FUNCTIONS["java"][1].replace("Map.of(", "Map.off("), False),
])
def test_check_validates_the_handler_as_an_image_build_step(tmp_path, language, filename, text, valid):
    (tmp_path / filename).write_text(text)

    steps = ["--compile", "--check"] if language == "java" else ["--check"]
    checked = subprocess.run(command(language, tmp_path, *steps), env=env(), capture_output=True, text=True,
                             timeout=60)

    assert (checked.returncode == 0) is valid
    if not valid:
        assert "Invalid function file or handler" in checked.stderr
