"""Serve one Python function.

    python -P -m dispatch.runtimes.python3 --source DIR [--handler mod.func] [--library DIR]...
        [--request-fd 3 --response-fd 4 [--memory-mb M] | --http [--port 8080] | --check]
        [--concurrency N] [--cpu-seconds S] [--max-log-bytes N] [--max-output-bytes N] [--processes N]

Pipe mode (the default) is how the local runtime drives warm workers (see pipe.py; the local runtime
forks them from a zygote, see forkserver.py, rather than running this command); `--http` serves §3.2 on
`--port` or `$PORT` (8080) for containers, on the address `$HOST` (default: every address);
`--check` only validates the handler (exit 1 with the reason on stderr), as an image build step.
"""
import argparse
import json
import os
import site
import sys
from pathlib import Path

from dispatch.runtimes.python3 import capture, invoke, loader, pipe, processes


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    invoke.max_output_bytes = args.max_output_bytes
    processes.install(args.processes)
    routers = capture.install()
    # abspath, not resolve: a worker reaches its folder through /proc/self/cwd, whose target it may not see.
    source = Path(os.path.abspath(args.source))
    _put_first_on_path(source, [Path(os.path.abspath(p)) for p in args.library])
    os.chdir(source)
    function, problem = None, None
    try:
        function = loader.load(source, args.handler)
    except loader.HandlerError as exc:
        problem = exc
    if args.check:
        if problem is not None and sys.__stderr__ is not None:  # None only without any standard error
            sys.__stderr__.write(json.dumps(problem.error) + "\n")
        return 0 if problem is None else 1
    if args.http:
        from dispatch.runtimes.python3 import http_mode  # http.server costs import time pipe workers skip

        port = args.port or int(os.environ.get("PORT") or 8080)
        return http_mode.serve(function, problem, routers, port, args.max_log_bytes, os.environ.get("HOST", ""),
                               args.cpu_seconds, args.concurrency)
    return pipe.serve(function, problem, routers, args.request_fd, args.response_fd, args.max_log_bytes,
                      args.concurrency, args.memory_mb, args.cpu_seconds)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dispatch.runtimes.python3", description=__doc__)
    parser.add_argument("--source", required=True, help="folder holding the function's source")
    parser.add_argument("--handler", default="", help="module.function; default: the only *.py file's handle")
    parser.add_argument("--library", action="append", default=[], help="site-packages of the function's image")
    parser.add_argument("--max-log-bytes", type=int, default=1 << 20, help="cap per stream and call")
    parser.add_argument("--max-output-bytes", type=int, default=invoke.max_output_bytes,
                        help="a call's JSON-encoded output; more is a FunctionError naming the limit")
    parser.add_argument("--processes", type=int, default=None,
                        help="the worker's process limit (RLIMIT_NPROC), named when a fork or thread fails for it")
    parser.add_argument("--request-fd", type=int, default=3)
    parser.add_argument("--response-fd", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight at once")
    parser.add_argument("--memory-mb", type=int, default=None,
                        help="pipe mode: the worker's memory limit, named when a call runs out of memory")
    parser.add_argument("--cpu-seconds", type=int, default=None,
                        help="CPU time each call may use (pipe mode: the soft RLIMIT_CPU, reset per call;"
                             " HTTP mode: read while the call runs, past it the call is answered, then the"
                             " process exits)")
    parser.add_argument("--http", action="store_true", help="serve HTTP instead of the pipe protocol")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (implies --http; default $PORT or 8080)")
    parser.add_argument("--check", action="store_true", help="validate the handler and exit")
    args = parser.parse_args(argv)
    args.http = args.http or bool(args.port)
    return args


def _put_first_on_path(source: Path, libraries: list[Path]) -> None:
    """Source folder first, then the image's packages (with their .pth files), then everything else."""
    before = list(sys.path)
    for library in libraries:
        site.addsitedir(str(library))
    added = [entry for entry in sys.path if entry not in before]
    sys.path[:] = [str(source), *added, *(entry for entry in before if entry != str(source))]


if __name__ == "__main__":
    sys.exit(main())
