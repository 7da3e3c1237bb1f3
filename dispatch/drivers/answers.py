"""How much of a function server's answer a runtime reads: its output up to the function's output
cap, plus room for the two logs at their cap, and no more. A function returning more ends with a
FunctionError naming the limit, and the platform's memory never holds more than the bound of
one answer per run in flight, however much the function produced."""
import json

import aiohttp

from dispatch.drivers.ports import Invocation, output_message

LOG_ESCAPING = 6
"""The most JSON escaping can grow a captured log byte by (a control character as \\u0001)."""
ENVELOPE_BYTES = 64 * 1024
"""The envelope around output and logs: keys, an error and its stack trace."""


class TooLarge(Exception):
    """The answer was longer than its bound; reading stopped there."""


def bound(max_output_bytes: int, max_log_bytes: int) -> int:
    """The most a runtime reads of one answer."""
    return max_output_bytes + 2 * max_log_bytes * LOG_ESCAPING + ENVELOPE_BYTES


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The response body; raise TooLarge, having read no more than `limit` bytes, when it is longer."""
    if response.content_length is not None and response.content_length > limit:
        raise TooLarge()
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise TooLarge()
    return bytes(body)


def over_output(invocation: Invocation, answer_bytes: int, max_output_bytes: int) -> Invocation:
    """`invocation`, or a FunctionError naming the limit when its output is over the cap. Only an
    answer longer than the cap can hold such an output, so others are not measured."""
    if answer_bytes <= max_output_bytes or invocation.error is not None:
        return invocation
    encoded = json.dumps(invocation.output, ensure_ascii=False, separators=(",", ":")).encode()
    if len(encoded) <= max_output_bytes:
        return invocation
    return Invocation.failure("FunctionError", output_message(max_output_bytes),
                              stdout=invocation.stdout, stderr=invocation.stderr)
