"""Events in distributed mode (a gateway and a handlers process on this machine's RabbitMQ and
PostgreSQL), CloudEvents published straight to RabbitMQ as an outside producer does:

1. ingest: events per second published (confirmed by the broker), and consumed by Dispatch (the
   ingress queue and the EmitEvent commands drained) for a type nobody subscribes to;
2. fan-out latency: from publishing one event to the last of its 1, 10 and 100 subscribed runs
   finishing (the function writes the time it ran), p50 and p99.

    .venv/bin/python bench/events.py [--events 5000] [--samples 30]
"""
import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from distributed import handler_process  # noqa: E402
from harness import ORG, DispatchServer, source_of  # noqa: E402

AMQP = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
ORGANIZATION = ORG["X-Dispatch-Org"]
STAMP = """import time
def handle(context, payload):
    with open(payload["log"], "a") as log:
        log.write(f"{context['event']['id']} {time.time()}\\n")
"""
FAN_OUTS = (1, 10, 100)


def structured(event_type: str, event_id: str, data: dict) -> aio_pika.Message:
    body = {"specversion": "1.0", "source": "/bench", "type": event_type, "id": event_id, "data": data}
    return aio_pika.Message(json.dumps(body).encode(), content_type="application/cloudevents+json")


async def deploy(server: DispatchServer, session: aiohttp.ClientSession) -> None:
    await server.ready(session)
    await server.create(session, "baseimage", {"name": "py-base", "dockerUrl": "python3", "language": "python3"})
    await server.create(session, "image", {"name": "py", "baseImageName": "py-base"})
    await server.create(session, "function", {"name": "stamp", "image": "py", "source": source_of("stamp.py", STAMP)})
    await server.wait_ready(session, "function", "stamp")
    for fan_out in FAN_OUTS:
        for n in range(fan_out):
            await server.create(session, "event/subscriptions", {
                "name": f"fan{fan_out}-{n}", "eventType": f"fan{fan_out}", "function": "stamp"})
    await server.wait_ready(session, "event/subscriptions", f"fan{FAN_OUTS[-1]}-{FAN_OUTS[-1] - 1}")


async def backlog(channel: aio_pika.abc.AbstractChannel, namespace: str) -> int:
    """Events not yet taken by a consumer (those in flight, at most the prefetch, are not counted)."""
    waiting = 0
    for name in (f"{namespace}.cloudevents.ingress", f"{namespace}.command.EmitEvent"):
        waiting += (await channel.declare_queue(name, passive=True)).declaration_result.message_count
    return waiting


async def ingest(exchange: aio_pika.abc.AbstractExchange, channel, namespace: str, total: int) -> tuple[float, float]:
    """(published per second, consumed per second) for `total` events of an unsubscribed type."""
    started = time.perf_counter()
    pending: set[asyncio.Task] = set()
    for n in range(total):
        pending.add(asyncio.ensure_future(exchange.publish(structured("unheard", f"i{n}", {"n": n}),
                                                            f"{ORGANIZATION}.unheard")))
        if len(pending) >= 256:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*pending)
    published = time.perf_counter() - started
    while await backlog(channel, namespace):
        await asyncio.sleep(0.05)
    return total / published, total / (time.perf_counter() - started)


async def failed_run(server: DispatchServer) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/v1/runs?functionName=stamp", headers=ORG) as answer:
            failed = [r for r in await answer.json() if r["status"] == "ERROR"]
    return f"; a failed run: {failed[0]['error']}" if failed else ""


async def fan_out_latency(exchange, fan_out: int, samples: int, log: Path) -> list[float]:
    latencies = []
    for n in range(samples):
        event_id = f"f{fan_out}-{n}-{uuid.uuid4().hex[:6]}"
        sent = time.time()
        await exchange.publish(structured(f"fan{fan_out}", event_id, {"log": str(log)}), f"{ORGANIZATION}.fan{fan_out}")
        deadline = time.monotonic() + 120
        while True:
            stamps = [float(line.split()[1]) for line in log.read_text().splitlines()
                      if line.startswith(event_id + " ")] if log.exists() else []
            if len(stamps) >= fan_out:
                latencies.append(max(stamps) - sent)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(stamps)} of {fan_out} runs of {event_id} finished")
            await asyncio.sleep(0.002)
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def main(events: int, samples: int) -> None:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    common = ("--bus", AMQP, "--store", DATABASE, "--namespace", namespace)
    log = Path(tempfile.mkdtemp(prefix="dispatch-bench-events-")) / "runs.log"
    log.parent.chmod(0o777)  # the function's workers run as a user of their own
    try:
        with DispatchServer("--role", "gateway", *common) as server:
            handler = handler_process(namespace, server.data_dir)
            try:
                async with aiohttp.ClientSession() as session:
                    await deploy(server, session)
                connection = await aio_pika.connect(AMQP)
                async with connection:
                    channel = await connection.channel(publisher_confirms=True)
                    exchange = await channel.declare_exchange(f"{namespace}.cloudevents", aio_pika.ExchangeType.TOPIC,
                                                              durable=True)
                    try:
                        await fan_out_latency(exchange, 1, 5, log)  # warm the function's workers
                        published, consumed = await ingest(exchange, channel, namespace, events)
                        latencies = {k: await fan_out_latency(exchange, k, samples, log) for k in FAN_OUTS}
                    except RuntimeError as error:
                        raise RuntimeError(f"{error}{await failed_run(server)}") from None
            finally:
                handler.terminate()
                handler.wait(timeout=30)
    finally:
        from dispatch.server import drop_installation
        from dispatch.settings import Settings

        await drop_installation(Settings(bus=AMQP, store=DATABASE, namespace=namespace))
    print(f"Ingest of {events} CloudEvents published to RabbitMQ (structured, confirmed, 256 in flight): "
          f"{published:.0f}/s published, {consumed:.0f}/s consumed by Dispatch (unsubscribed type)")
    print(f"{'fan-out':<10}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}"
          f"   publish → last run finished, {samples} events each")
    for fan_out, values in latencies.items():
        print(f"{fan_out:<10}{percentile(values, 0.5) * 1000:>10.1f}{percentile(values, 0.99) * 1000:>10.1f}"
              f"{statistics.mean(values) * 1000:>10.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=30)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.samples))
