"""Counts what functions did, from outside their sandbox: a function calls `GET <url>/<key>` once
per execution (it shares the host's network; its /tmp and the host's files are not its to write),
and the test reads how many times each key was called.

    with Tally() as tally:
        ...  # the function runs urllib.request.urlopen(f"{payload['calls']}/{key}")
        assert tally.counts() == Counter({"a": 1})
"""
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

CALL = ("import urllib.request\n"
        "def tally(url, key):\n"
        "    urllib.request.urlopen(url + '/' + urllib.request.quote(key, safe=''), timeout=10).read()\n")
"""Python source of `tally(url, key)`, for the functions the tests deploy."""


class Tally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        tally = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with tally._lock:
                    tally._counts[unquote(self.path.lstrip("/"))] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

    def __enter__(self) -> "Tally":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
