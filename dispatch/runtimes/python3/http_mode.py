"""HTTP mode: the §3.2 runtime server on a port, for containers. Standard library only.

Calls run one at a time, like Dispatch's single language worker per container, or up to
`concurrency` at once, each on a thread of its own with its own log capture (the others wait their
turn). A call still running at its deadline or past its CPU time (`cpu_seconds`) cannot be stopped
inside the process, and a call that exits the interpreter cannot be carried on with; in each case
the server answers first, then exits and leaves the restart to the container's supervisor.
"""
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dispatch.runtimes.python3 import invoke, processes
from dispatch.runtimes.python3.capture import StreamRouter
from dispatch.runtimes.python3.loader import Function, HandlerError

EXIT_AFTER_TIMEOUT = 70
EXIT_AFTER_CPU_LIMIT = 71
# Past its process limit, the processes the function left may still be forking: a process that
# served on could not start the thread of the next request. Its end takes the container's with it.
EXIT_AFTER_PROCESS_LIMIT = 72
CPU_CHECK_SECONDS = 0.05


class FunctionServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, function, problem, routers, limit: int, host: str = "",
                 cpu_seconds: int | None = None, concurrency: int = 1):
        super().__init__((host, port), _Handler)
        self.function: Function | None = function
        self.problem: HandlerError | None = problem
        self.routers: tuple[StreamRouter, StreamRouter] = routers
        self.limit = limit
        self.cpu_seconds = cpu_seconds
        self.shared = concurrency > 1
        self.calls = threading.BoundedSemaphore(max(1, concurrency))

    def run(self, body: bytes) -> tuple[bytes, int | None]:
        """The response envelope, and the exit code when the process must end after answering."""
        if self.function is None:
            assert self.problem is not None  # given whenever the function is not
            return invoke.failure("FunctionError", self.problem.error["message"]), None
        try:
            request = invoke.Request.parse(body)
        except ValueError as exc:
            return invoke.failure("InputError", f"Invalid Input: {exc}"), None
        left = request.seconds_left()
        if left is not None and left <= 0:
            return invoke.failure("FunctionError", "Did not invoke, already exceeded timeout"), None
        with self.calls:
            outcome: list = []
            worker = threading.Thread(target=self._call, args=(request, outcome), daemon=True)
            used_before = time.process_time()
            worker.start()
            over_cpu = self._wait(worker, left, used_before)
        if over_cpu and self.cpu_seconds is not None:  # only a limit is ever used up
            return invoke.failure("FunctionError", invoke.cpu_message(self.cpu_seconds)), EXIT_AFTER_CPU_LIMIT
        if not outcome:
            return invoke.failure("FunctionError", "Function execution exceeded the timeout"), EXIT_AFTER_TIMEOUT
        if isinstance(outcome[0], SystemExit):
            code = outcome[0].code if isinstance(outcome[0].code, int) else 1
            return invoke.failure("SystemError", f"function process exited with code {code} while running"), code
        return outcome[0], EXIT_AFTER_PROCESS_LIMIT if processes.exceeded() else None

    def _wait(self, worker: threading.Thread, seconds_left: float | None, used_before: float) -> bool:
        """Wait for the call until it ends or its deadline passes; True when it used its CPU time
        first. The process's CPU time counts: with one call at a time it is the call's, threads it
        started included (as RLIMIT_CPU counts them in pipe mode); calls running together share
        the allowance."""
        if not self.cpu_seconds:
            worker.join(seconds_left)
            return False
        end = None if seconds_left is None else time.monotonic() + seconds_left
        while worker.is_alive():
            if time.process_time() - used_before >= self.cpu_seconds:
                return True
            step = CPU_CHECK_SECONDS if end is None else min(CPU_CHECK_SECONDS, end - time.monotonic())
            if step <= 0:
                return False
            worker.join(step)
        return False

    def _call(self, request: invoke.Request, outcome: list) -> None:
        assert self.function is not None  # run() checked it
        try:
            outcome.append(invoke.call(self.function, request, self.routers, self.limit, self.shared))
        except BaseException as exc:  # sys.exit() in the function: the process ends, as in pipe mode
            outcome.append(SystemExit(exc.code if isinstance(exc, SystemExit) else 1))


class _Handler(BaseHTTPRequestHandler):
    server: FunctionServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/healthz":
            self._answer(404, b'{"message":"not found"}')
        elif self.server.function is None:
            assert self.server.problem is not None  # given whenever the function is not
            self._answer(500, json.dumps({"error": self.server.problem.error}).encode())
        else:
            self._answer(200, b"{}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body, exit_code = self.server.run(self.rfile.read(length))
        self._answer(200, body)
        if exit_code is not None:
            # The call's thread cannot be stopped or trusted any more; a fresh process takes over.
            if sys.__stderr__ is not None:  # None only without any standard error at all
                sys.__stderr__.write(f"function process ending with code {exit_code} after a failed call\n")
                sys.__stderr__.flush()
            os._exit(exit_code)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, format: str, *args) -> None:
        """Access lines would land in the running call's captured stderr; the platform logs runs itself."""


def serve(function, problem, routers, port: int, limit: int, host: str = "", cpu_seconds: int | None = None,
          concurrency: int = 1) -> int:
    """`host` "" listens on every address; a container sharing the host's network listens on 127.0.0.1."""
    server = FunctionServer(port, function, problem, routers, limit, host, cpu_seconds, concurrency)
    # shutdown() waits for serve_forever() to return, so it cannot run on the thread it interrupts.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
