"""One run over HTTP: the §3.2 envelope posted to the function's Service, its answer read back."""
import asyncio
import json
from typing import Any

import aiohttp

from dispatch.drivers.ports import Invocation

CONNECT_SECONDS = 10.0
MAX_CONNECTIONS = 1024
"""Runs in flight to all functions at once; a function server takes one call per connection."""
MARGIN_SECONDS = 2.0
"""The function server answers a call past its deadline itself; the client waits a little longer."""


class Unreachable(Exception):
    """Nothing answered at the function's address (no ready pod, or no such Service)."""


class Calls:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, context: dict, payload: Any, timeout_ms: int) -> Invocation:
        """The function's answer; raise Unreachable when no connection could be made."""
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
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise Unreachable(f"cannot reach the function at {url}: {exc}") from None
        except asyncio.TimeoutError:
            return failed("FunctionError", "Function execution exceeded the timeout")
        except aiohttp.ClientError as exc:
            return failed("SystemError", f"the function at {url} failed to answer: {exc}")
        if status != 200:
            return failed("SystemError", f"the function answered HTTP {status}: {answer[:200]!r}")
        return Invocation.from_envelope(answer) or failed("SystemError", f"unreadable answer from the function: {answer[:200]!r}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def failed(kind: str, message: str) -> Invocation:
    return Invocation.failure(kind, message)


