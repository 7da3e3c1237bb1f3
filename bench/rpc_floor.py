"""The floor under any request/reply on a RabbitMQ broker: raw aio-pika, nothing else.

An echo server in its own process (as a handler process would be) consumes a queue, publishes
each body back to the reply-to address and then acknowledges; the client publishes with
publisher confirms and waits on direct reply-to (`amq.rabbitmq.reply-to`), correlated by
message id. Measured closed-loop, like the other benchmarks: p50/p99 latency and requests/s.

By default the request queue is a classic auto-delete queue with transient messages, the fastest
a broker offers; `durable=True` (`--durable`) uses a quorum queue and persistent messages, what the
Dispatch bus does, for a like-for-like floor.

    .venv/bin/python bench/rpc_floor.py [--url amqp://…] [--total 2000] [--durable]

    from rpc_floor import measure_floor
    await measure_floor(url, concurrency=32, total=2000)  # {"p50_ms", "p99_ms", "per_s", ...}
"""
import argparse
import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).parent))
from harness import closed_loop  # noqa: E402

DEFAULT_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REPLY_TO = "amq.rabbitmq.reply-to"


async def measure_floor(url: str, concurrency: int, total: int, durable: bool = False) -> dict:
    queue = f"bench.rpc-floor.{uuid.uuid4().hex}"
    server = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", queue, "--url", url, *(["--durable"] if durable else []),
        stdout=asyncio.subprocess.PIPE)
    try:
        if await asyncio.wait_for(server.stdout.readline(), 30) != b"ready\n":
            raise RuntimeError("the echo server did not start")
        return await _client(url, queue, concurrency, total, durable)
    finally:
        server.send_signal(signal.SIGINT)  # lets the server delete its durable queue
        try:
            await asyncio.wait_for(server.wait(), 10)
        except asyncio.TimeoutError:
            server.kill()
            await server.wait()


async def _client(url: str, queue: str, concurrency: int, total: int, durable: bool) -> dict:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        waiting: dict[str, asyncio.Future] = {}

        async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            future = waiting.pop(message.correlation_id or "", None)
            if future is not None and not future.done():
                future.set_result(message.body)

        replies = await channel.declare_queue(REPLY_TO, passive=True)
        await replies.consume(on_reply, no_ack=True)
        mode = aio_pika.DeliveryMode.PERSISTENT if durable else aio_pika.DeliveryMode.NOT_PERSISTENT

        async def call() -> None:
            message_id = uuid.uuid4().hex
            waiting[message_id] = asyncio.get_running_loop().create_future()
            reply = waiting[message_id]
            await channel.default_exchange.publish(
                aio_pika.Message(b'{"ping":1}', message_id=message_id, reply_to=REPLY_TO, delivery_mode=mode),
                routing_key=queue)
            await asyncio.wait_for(reply, 30)

        for _ in range(min(50, total)):  # warm up the connection and the server
            await call()
        return await closed_loop(call, concurrency, total)


async def serve(url: str, queue_name: str, durable: bool) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=64)
        if durable:
            queue = await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        else:
            queue = await channel.declare_queue(queue_name, auto_delete=True)

        async def echo(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await channel.default_exchange.publish(
                aio_pika.Message(message.body, correlation_id=message.message_id),
                routing_key=message.reply_to, mandatory=False)
            await message.ack()

        tag = await queue.consume(echo)
        print("ready", flush=True)
        try:
            await asyncio.Future()
        finally:
            await queue.cancel(tag)
            if durable:
                await queue.delete(if_unused=False, if_empty=False)


async def main(url: str, total: int, durable: bool) -> None:
    print(f"raw aio-pika request/reply on {url.split('@')[-1]} ({total} per case, "
          f"{'quorum queue, persistent' if durable else 'classic queue, transient'})")
    print(f"{'concurrency':<14}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
    for concurrency in (1, 32):
        floor = await measure_floor(url, concurrency, total, durable)
        print(f"{concurrency:<14}{floor['p50_ms']:>10.2f}{floor['p99_ms']:>10.2f}{floor['per_s']:>10.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--total", type=int, default=2000)
    parser.add_argument("--durable", action="store_true")
    parser.add_argument("--serve", metavar="QUEUE", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        try:
            asyncio.run(serve(arguments.url, arguments.serve, arguments.durable))
        except KeyboardInterrupt:
            pass
    else:
        asyncio.run(main(arguments.url, arguments.total, arguments.durable))
