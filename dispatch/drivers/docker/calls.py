"""One run through a deployment's containers: take a replica, POST the §3.2 envelope, read the answer.

A replica that answered a timeout or an exit has ended its server (the function servers exit after
those, §3.6), one that overran the run's timeout is killed, one that vanished mid-call is examined
for the reason (its memory limit, its CPU time, an exit): all are discarded and the pool starts
fresh ones. Calls running beside one that ended its replica's server end with it, and say why. A
connection refused before the request left means the container had died idle: the call goes to
another replica, since the function never saw it. An answer is read up to its bound (answers.py):
a longer one fails the run naming the output limit.
"""
import asyncio

import aiohttp

from dispatch.drivers.answers import TooLarge, bound, over_output, read_bounded
from dispatch.drivers.docker.containers import Launcher
from dispatch.drivers.docker.cpu_time import watched
from dispatch.drivers.docker.pool import Pool, PoolClosed, PoolFull, ReplicaFailed
from dispatch.drivers.ports import (
    PROCESS_LIMIT,
    Invocation,
    NotDeployed,
    capacity_message,
    cpu_message,
    output_message,
)

TIMEOUT_MESSAGE = "Function execution exceeded the timeout"
TIMEOUT_BESIDE = "another run on the same function process exceeded its timeout"
"""What the calls running beside a call past its timeout end with (scale.concurrency above 1)."""
PROCESS_LIMIT_BESIDE = "another run on the same function process exceeded its process limit"
ENDED_DURING_CALL = "the function process ended during the call"
_ATTEMPTS = 3
# The function server answers its own deadline; the platform's clock is the backstop a little later.
_GRACE_SECONDS = 0.25
_JSON = {"Content-Type": "application/json"}


async def call(pool: Pool, launcher: Launcher, http: aiohttp.ClientSession, body: bytes,
               timeout_ms: int) -> Invocation:
    for _ in range(_ATTEMPTS):
        try:
            member = await pool.acquire()
        except PoolFull as full:
            return failed("SystemError", capacity_message(launcher.name, full.queued))
        except ReplicaFailed as exc:
            return failed("SystemError", f"cannot start the function container: {exc.reason}")
        except PoolClosed:
            raise NotDeployed("the function was undeployed while the run waited") from None
        container = member.replica
        limit = timeout_ms / 1000 + _GRACE_SECONDS if timeout_ms > 0 else None
        try:
            async with watched(launcher.docker, container.id, launcher.limits.cpu_seconds) as cpu:
                async with asyncio.timeout(limit):
                    async with http.post(container.url, data=body, headers=_JSON) as answer:
                        status, text = answer.status, await read_bounded(answer, _bound(launcher))
        except TooLarge:
            # The server answered in full and serves on; only the rest of its answer is dropped.
            pool.release(member)
            return failed("FunctionError", output_message(launcher.limits.max_output_bytes))
        except aiohttp.ClientConnectorError:
            pool.discard(member)
            continue
        except TimeoutError:
            member.ended_by = TIMEOUT_BESIDE
            pool.discard(member)
            return failed("FunctionError", TIMEOUT_MESSAGE)
        except aiohttp.ClientError:
            cpu_seconds = launcher.limits.cpu_seconds
            if cpu.exceeded and cpu_seconds is not None:  # only a limit is ever exceeded
                pool.discard(member)
                return failed("FunctionError", cpu_message(cpu_seconds))
            if member.ended_by:
                pool.discard(member)
                return failed("SystemError", f"{ENDED_DURING_CALL}: {member.ended_by}")
            kind, message, lines = await launcher.ending(container)
            pool.discard(member)
            return failed(kind, message, stderr=lines)
        except BaseException:
            pool.discard(member)  # cancelled mid-call: the replica may still be busy with it
            raise
        invocation = Invocation.from_envelope(text) if status == 200 else None
        if invocation is None:
            pool.discard(member)
            return failed("SystemError", f"unreadable answer from the function container (HTTP {status}): "
                                         f"{text[:200]!r}")
        if _server_ends(invocation):
            message = str((invocation.error or {}).get("message", ""))
            if message == TIMEOUT_MESSAGE:
                member.ended_by = TIMEOUT_BESIDE
            elif message.startswith(PROCESS_LIMIT):
                member.ended_by = PROCESS_LIMIT_BESIDE
            pool.discard(member)
        else:
            pool.release(member)
        return over_output(invocation, len(text), launcher.limits.max_output_bytes)
    return failed("SystemError", "the function containers refused the connection")


def _bound(launcher: Launcher) -> int:
    return bound(launcher.limits.max_output_bytes, launcher.limits.log_bytes)


def failed(kind: str, message: str, stderr: list[str] | None = None) -> Invocation:
    return Invocation.failure(kind, message, stderr=stderr)


def _server_ends(invocation: Invocation) -> bool:
    error = invocation.error or {}
    message = str(error.get("message", ""))
    ended = "exited with code" in message or message.startswith(ENDED_DURING_CALL)
    # A function past its process limit ends its server after answering (http_mode.EXIT_AFTER_PROCESS_LIMIT)
    return (message == TIMEOUT_MESSAGE or message.startswith(PROCESS_LIMIT)
            or (error.get("type") == "SystemError" and ended))
