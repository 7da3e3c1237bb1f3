"""Pipe mode: newline-delimited JSON on two inherited file descriptors, how the local runtime drives
its workers. Descriptors other than 0-2 keep what the function writes to fds 1 and 2 out of the protocol.

    platform -> worker   {"id": 7, "context": {...}, "payload": ...}
    worker -> platform   {"ready": true}   (or {"ready": false, "error": {...}}, then exit 1), then
                         {"id": 7, "answer": <the §3.2 response envelope>}   per request

With concurrency 1, requests are served one at a time on this thread, answers in request order. Above
1, up to `concurrency` calls run at once (the platform never sends more): `async def` functions as
tasks of one event loop, other functions on a pool of as many threads; answers come in completion
order, matched by id. Under a memory limit, a call that runs out of memory is answered with
`"retire": "memory"` and the process then exits with EXIT_OUT_OF_MEMORY, so the platform replaces it.
A call that ran into the process limit is answered with `"retire": "processes"`, then the worker
kills its process group, itself and whatever the function forked (a fork bomb) included.
"""
import json
import os
import signal
import sys
from functools import partial

from dispatch.runtimes.python3 import invoke, processes
from dispatch.runtimes.python3.capture import StreamRouter
from dispatch.runtimes.python3.loader import Function, HandlerError

EXIT_OUT_OF_MEMORY = 86
EXIT_PROCESSES = 87


def serve(
    function: Function | None,
    problem: HandlerError | None,
    routers: tuple[StreamRouter, StreamRouter],
    request_fd: int,
    response_fd: int,
    limit: int,
    concurrency: int = 1,
    memory_mb: int | None = None,
    cpu_seconds: int | None = None,
) -> int:
    """Answer requests until the request pipe closes; return the process exit code. `cpu_seconds`:
    before each call, the soft RLIMIT_CPU becomes the CPU time used so far plus this allowance."""
    for fd in (request_fd, response_fd):
        os.set_inheritable(fd, False)  # processes the function starts must not hold the protocol open
    with open(request_fd, "rb") as requests, open(response_fd, "wb") as responses:
        if function is None:
            assert problem is not None  # given whenever the function is not
            _send(responses, json.dumps({"ready": False, "error": problem.error}).encode())
            return 1
        _send(responses, b'{"ready":true}')
        try:
            if concurrency > 1:
                import asyncio  # the zygote has it imported already: a forked worker pays nothing

                return asyncio.run(_serve_concurrently(function, routers, requests, responses, limit,
                                                       concurrency, memory_mb, cpu_seconds))
            for line in requests:
                if line.strip():
                    _allow_cpu(cpu_seconds)
                    _send(responses, _answer(line, partial(invoke.call, function), routers, limit, memory_mb))
        except _Retire as retiring:
            _send(responses, retiring.line)
            return _leave(retiring.code)
        except MemoryError:
            return EXIT_OUT_OF_MEMORY
    return 0


def _answer(line: bytes, call, routers, limit: int, memory_mb: int | None) -> bytes:
    try:
        request = invoke.Request.parse(line)
    except ValueError as exc:
        return _line(None, invoke.failure("InputError", f"Invalid Input: {exc}"))
    try:
        answer = call(request, routers, limit, memory_mb=memory_mb)
    except invoke.OutOfMemory as exhausted:
        raise _Retire(_line(request.ident, exhausted.envelope, "memory")) from None
    if processes.exceeded():
        raise _Retire(_line(request.ident, answer, "processes"), EXIT_PROCESSES)
    return _line(request.ident, answer)


class _Retire(BaseException):
    """Answer this line, then end the process: its memory, or what it forked, can no longer be trusted."""

    def __init__(self, line: bytes, code: int = 0):
        super().__init__("retire")
        self.line = line
        self.code = code or EXIT_OUT_OF_MEMORY


def _leave(code: int) -> int:
    if code == EXIT_PROCESSES:
        os.killpg(0, signal.SIGKILL)  # the function's forks are in our group, unless they left it (the zygote's)
    return code


def _line(ident, envelope: bytes, retire: str | None = None) -> bytes:
    extra = f',"retire":"{retire}"' if retire else ""
    ident_json = str(ident) if type(ident) is int else json.dumps(ident)
    return f'{{"id":{ident_json}{extra},"answer":'.encode() + envelope + b"}"


async def _serve_concurrently(function, routers, requests, responses, limit, concurrency, memory_mb,
                              cpu_seconds) -> int:
    import asyncio
    import inspect
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), requests)
    if inspect.iscoroutinefunction(function):
        async def call(request, routers, limit, memory_mb):
            return await invoke.call_coroutine(function, request, routers, limit, memory_mb)
    else:
        threads = ThreadPoolExecutor(concurrency, thread_name_prefix="call")

        async def call(request, routers, limit, memory_mb):
            return await loop.run_in_executor(threads, partial(invoke.call, function, request, routers, limit,
                                                               True, memory_mb))
    running: set[asyncio.Task] = set()
    outcome = loop.create_future()

    async def one(line: bytes) -> None:
        try:
            request = invoke.Request.parse(line)
        except ValueError as exc:
            _send(responses, _line(None, invoke.failure("InputError", f"Invalid Input: {exc}")))
            return
        try:
            answer = await call(request, routers, limit, memory_mb)
            if processes.exceeded():
                _send(responses, _line(request.ident, answer, "processes"))
                if not outcome.done():
                    outcome.set_result(EXIT_PROCESSES)
            else:
                _send(responses, _line(request.ident, answer))
        except invoke.OutOfMemory as exhausted:
            _send(responses, _line(request.ident, exhausted.envelope, "memory"))
            if not outcome.done():
                outcome.set_result(EXIT_OUT_OF_MEMORY)
        except SystemExit as leaving:  # sys.exit() in the function ends the worker, as with one call at a time
            if not outcome.done():
                outcome.set_result(leaving.code if isinstance(leaving.code, int) else 1)
        except MemoryError:
            if not outcome.done():
                outcome.set_result(EXIT_OUT_OF_MEMORY)

    async def read() -> None:
        while line := await reader.readline():
            if line.strip():
                _allow_cpu(cpu_seconds)
                task = asyncio.ensure_future(one(line))
                running.add(task)
                task.add_done_callback(running.discard)
        if not outcome.done():
            outcome.set_result(0)

    reading = asyncio.ensure_future(read())
    code = await outcome
    if code != 0:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(_leave(code))  # calls still running in threads cannot be stopped otherwise
    reading.cancel()
    return code


def _allow_cpu(seconds: int | None) -> None:
    if not seconds:
        return
    import math
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + seconds
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _send(stream, data: bytes) -> None:
    stream.write(data + b"\n")
    stream.flush()
