"""One run over HTTP: the §3.2 envelope posted to the function's Service, its answer read back."""
import asyncio
import json
from typing import Any

import aiohttp

from dispatch.drivers.answers import TooLarge, bound, over_output, read_bounded
from dispatch.drivers.ports import Invocation, output_message

CONNECT_SECONDS = 10.0
MAX_CONNECTIONS = 1024
"""Runs in flight to all functions at once; a function server takes one call per connection."""
DEFAULT_MAX_OUTPUT_BYTES = 6 * 1024 * 1024
MARGIN_SECONDS = 2.0
"""The function server answers a call past its deadline itself; the client waits a little longer."""


class Unreachable(Exception):
    """Nothing answered at the function's address (no ready pod, or no such Service)."""


class Calls:
    def __init__(self, max_log_bytes: int = 1 << 20) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._max_log_bytes = max_log_bytes

    async def post(self, url: str, context: dict, payload: Any, timeout_ms: int,
                   max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> Invocation:
        """The function's answer, read up to its bound (answers.py); raise Unreachable when no
        connection could be made."""
        try:
            body = json.dumps({"context": context, "payload": payload}, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            return failed("InputError", f"Invalid Input: {exc}")
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS))
        total = timeout_ms / 1000 + MARGIN_SECONDS if timeout_ms > 0 else None
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=CONNECT_SECONDS)
        try:
            async with self._session.post(url, data=body, timeout=timeout,
                                          headers={"Content-Type": "application/json"}) as response:
                answer = await read_bounded(response, bound(max_output_bytes, self._max_log_bytes))
                status = response.status
        except TooLarge:
            return failed("FunctionError", output_message(max_output_bytes))
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise Unreachable(f"cannot reach the function at {url}: {exc}") from None
        except asyncio.TimeoutError:
            return failed("FunctionError", "Function execution exceeded the timeout")
        except aiohttp.ClientError as exc:
            return failed("SystemError", f"the function at {url} failed to answer: {exc}")
        if status != 200:
            return failed("SystemError", f"the function answered HTTP {status}: {answer[:200]!r}")
        invocation = Invocation.from_envelope(answer)
        if invocation is None:
            return failed("SystemError", f"unreadable answer from the function: {answer[:200]!r}")
        return over_output(invocation, len(answer), max_output_bytes)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def failed(kind: str, message: str) -> Invocation:
    return Invocation.failure(kind, message)


