"""Reading and replaying the dead-letter queue.

Listing must not consume: letters are fetched with basic.get and no acknowledgement on a channel
of their own, then all returned with nack(requeue). A classic queue puts them back in their
places, and closing the channel returns them too should anything fail half-way. While a listing
runs, the letters it holds are invisible to another listing (of another process, say).
"""
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from dispatch.errors import Unavailable

from . import rabbitmq_codec as codec
from .ports import DeadLetter
from .rabbitmq_publisher import Publisher, Unroutable
from .rabbitmq_topology import Topology

LISTED_AT_MOST = 10_000


async def list_letters(connection: AbstractConnection, topology: Topology) -> list[DeadLetter]:
    letters: list[DeadLetter] = []

    async def collect(incoming: AbstractIncomingMessage) -> bool:
        letters.append(codec.dead_letter(incoming))
        return len(letters) >= LISTED_AT_MOST

    await _walk(connection, topology, collect)
    return letters


async def replay(connection: AbstractConnection, topology: Topology, publisher: Publisher, message_id: str) -> bool:
    """Republish the letter to the queue it came from with its attempt count reset, then remove
    it; the replay header makes its consumer forget the failed outcome it remembers."""
    found: list[str] = []

    async def send_back(incoming: AbstractIncomingMessage) -> bool:
        if incoming.message_id != message_id:
            return False
        queue = codec.header(incoming, codec.QUEUE) or topology.command_queue(incoming.type or "")
        again = codec.copy_of(incoming, {codec.ATTEMPT: 1, codec.REPLAYED: 1}, keep_reply_to=False)
        try:
            await publisher.publish("", queue, again, mandatory=True)
        except Unroutable:
            raise Unavailable(f"cannot replay {message_id}: its queue {queue} no longer exists") from None
        await incoming.ack()
        found.append(message_id)
        return True

    await _walk(connection, topology, send_back)
    return bool(found)


async def _walk(connection: AbstractConnection, topology: Topology, visit) -> None:
    """Offer each letter to `visit` until it returns True or the queue runs dry; letters it did not
    acknowledge go back to the queue."""
    channel = await connection.channel(publisher_confirms=False)
    held: list[AbstractIncomingMessage] = []
    try:
        queue = await channel.get_queue(topology.dead_letters, ensure=False)
        while (incoming := await queue.get(no_ack=False, fail=False)) is not None:
            held.append(incoming)
            if await visit(incoming):
                break
        for incoming in held:
            if not incoming.processed:
                await incoming.nack(requeue=True)
    finally:
        await channel.close()
