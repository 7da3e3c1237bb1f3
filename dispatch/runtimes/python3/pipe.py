"""Pipe mode: newline-delimited JSON on two inherited file descriptors, one request at a time.

The platform writes `{"context": …, "payload": …}` lines on the request descriptor; the worker first
writes `{"ready": true}` (or `{"ready": false, "error": …}` and exits), then one envelope line per
request. Using descriptors other than 0-2 keeps whatever the function writes to fds 1 and 2 directly
out of the protocol.
"""
import json
import os

from dispatch.runtimes.python3 import invoke
from dispatch.runtimes.python3.capture import StreamRouter
from dispatch.runtimes.python3.loader import Function, HandlerError


def serve(
    function: Function | None,
    problem: HandlerError | None,
    routers: tuple[StreamRouter, StreamRouter],
    request_fd: int,
    response_fd: int,
    limit: int,
) -> int:
    """Answer requests until the request pipe closes; return the process exit code."""
    for fd in (request_fd, response_fd):
        os.set_inheritable(fd, False)  # processes the function starts must not hold the protocol open
    with open(request_fd, "rb") as requests, open(response_fd, "wb") as responses:
        if function is None:
            _send(responses, json.dumps({"ready": False, "error": problem.error}).encode())
            return 1
        _send(responses, b'{"ready":true}')
        for line in requests:
            if line.strip():
                _send(responses, invoke.respond(function, line, routers, limit))
    return 0


def _send(stream, data: bytes) -> None:
    stream.write(data + b"\n")
    stream.flush()
