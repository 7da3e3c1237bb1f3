"""Group commit for sends: commands that arrive while earlier sends of the same routing key wait
for their confirms go out together, as one message.

A broker's cost is per message (a quorum queue writes and replicates each one, a publish is a
socket write and a confirm, a delivery an acknowledgement), not per byte. Under load a gateway
sends hundreds of commands a second to one queue; while `window` publishes of a queue are
unconfirmed, further sends of that queue wait in a lane and leave together in the next publish,
up to `most` at a time and `most_bytes` in all (a command larger than that leaves alone: the
broker refuses messages past its size limit, 16 MiB by default). An idle bus sends each command
alone, at once: batching adds no latency, it only takes what would otherwise queue behind the
confirms.

On the wire a batch is one persistent message of content type `BATCH`, its body the members'
envelopes one per line (JSON encodes a newline inside a string as `\\n`, so a line is one
envelope). A consumer settles each member on its own, exactly as if it had arrived alone, and
acknowledges the delivery once every member is settled: a member that must be retried or
dead-lettered leaves as a message of its own, and a redelivered batch meets the outcomes its
members had. Every sender learns its member's fate from the batch's confirm."""
import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from dispatch.schemas.envelope import Command, new_id
from dispatch.schemas.wirejson import dumps

from . import rabbitmq_codec as codec

BATCH = "application/vnd.dispatch.batch+json"
BATCH_TYPE = "Batch"
WINDOW = 2
MOST = 100
MOST_BYTES = 1 << 20

Encoded = tuple[Command, bytes]
"""A command and its envelope as JSON: encoded once, whether it leaves alone or in a batch."""
Publish = Callable[[str, list[Encoded]], Awaitable[None]]


def is_batch(incoming: AbstractIncomingMessage) -> bool:
    return incoming.content_type == BATCH


def encoded(command: Command) -> Encoded:
    return command, dumps(command.envelope())


def batch_message(members: list[Encoded]) -> aio_pika.Message:
    body = b"\n".join(line for _, line in members)
    return aio_pika.Message(body, message_id=new_id(), type=BATCH_TYPE, content_type=BATCH,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, headers={codec.ATTEMPT: 1})


@dataclass
class _Waiting:
    member: Encoded
    sent: asyncio.Future

    @property
    def size(self) -> int:
        return len(self.member[1])


@dataclass
class _Lane:
    waiting: deque[_Waiting] = field(default_factory=deque)
    in_flight: int = 0


class Coalescer:
    """Sends commands through `publish(routing_key, members)`, batching as the module says."""

    def __init__(self, publish: Publish, window: int = WINDOW, most: int = MOST, most_bytes: int = MOST_BYTES):
        self._publish = publish
        self.window = window
        self.most = most
        self.most_bytes = most_bytes
        self._lanes: dict[str, _Lane] = {}
        self._tasks: set[asyncio.Task] = set()

    async def send(self, routing_key: str, command: Command) -> None:
        lane = self._lanes.setdefault(routing_key, _Lane())
        sent = asyncio.get_running_loop().create_future()
        lane.waiting.append(_Waiting(encoded(command), sent))
        if lane.in_flight < self.window:
            self._flush(routing_key, lane)
        await sent

    def _flush(self, routing_key: str, lane: _Lane) -> None:
        taken = [lane.waiting.popleft()]
        size = taken[0].size
        while lane.waiting and len(taken) < self.most and size + lane.waiting[0].size <= self.most_bytes:
            taken.append(lane.waiting.popleft())
            size += taken[-1].size
        lane.in_flight += 1
        task = asyncio.ensure_future(self._send_batch(routing_key, lane, taken))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_batch(self, routing_key: str, lane: _Lane, taken: list[_Waiting]) -> None:
        try:
            await self._publish(routing_key, [waiting.member for waiting in taken])
        except BaseException as error:  # each sender learns it, as if it had published alone
            for waiting in taken:
                if not waiting.sent.done():
                    waiting.sent.set_exception(error)
        else:
            for waiting in taken:
                if not waiting.sent.done():
                    waiting.sent.set_result(None)
        finally:
            lane.in_flight -= 1
            if lane.waiting and lane.in_flight < self.window:
                self._flush(routing_key, lane)


class Member:
    """One message of a batch delivery, read like a delivery of its own: settling it counts it
    off; the batch is acknowledged when the last member is, or requeued whole when a member
    could not be settled."""

    def __init__(self, batch: "BatchDelivery", body: bytes):
        self._batch = batch
        self.body = body
        self.headers = batch.incoming.headers
        self.redelivered = batch.incoming.redelivered
        self.content_type = "application/json"
        self.reply_to = None
        self.processed = False
        try:
            self.envelope: Any = json.loads(body)
            self.message_id = self.envelope["data"]["message_id"]
            self.type = self.envelope["type"]
        except (ValueError, KeyError, TypeError):
            self.envelope, self.message_id, self.type = None, None, None

    async def ack(self) -> None:
        await self._settled(True)

    async def nack(self, requeue: bool = True) -> None:
        await self._settled(False)

    async def _settled(self, ok: bool) -> None:
        if not self.processed:
            self.processed = True
            await self._batch.count_off(ok)


class BatchDelivery:
    def __init__(self, incoming: AbstractIncomingMessage):
        self.incoming = incoming
        self.members = [Member(self, line) for line in incoming.body.split(b"\n") if line.strip()]
        self._remaining = len(self.members)
        self._all_settled = True

    async def count_off(self, ok: bool) -> None:
        self._all_settled = self._all_settled and ok
        self._remaining -= 1
        if self._remaining == 0:
            if self._all_settled:
                await self.incoming.ack()
            else:
                await self.incoming.nack(requeue=True)
