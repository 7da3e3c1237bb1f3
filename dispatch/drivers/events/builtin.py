"""The driver types every organization has without creating them, and the source that runs each
type in this process.

- `cron`: an event at every slot of a schedule (cron.py).
- `webhook`: an HTTP endpoint, `POST /driver/<org>/<driver>` with the driver's token, that turns
  each request into an event; the gateway serves it, so its source only holds the driver READY.
- `amqp`: the messages of a queue of an outside RabbitMQ broker (amqp.py, imported when used).

Every other type names a container image, run by the `custom` source (docker.py)."""
import asyncio
import re
import urllib.parse
from dataclasses import dataclass
from typing import Callable

from dispatch.schemas.resources import EVENT_TYPE_PATTERN

from . import cron
from .ports import DriverRejected, DriverSpec, Emit, EventSource, Report

WEBHOOK_EVENT_TYPE = "webhook.received"


def _event_type(config: dict[str, str], secrets: bool = False) -> None:
    event_type = config.get("eventType")
    if event_type and (not re.match(EVENT_TYPE_PATTERN, event_type) or len(event_type) > 128):
        raise DriverRejected(f"eventType {event_type!r} should match '{EVENT_TYPE_PATTERN}' (at most 128 characters)")


def _amqp(config: dict[str, str], secrets: bool = False) -> None:
    url = config.get("url") or ""
    if (url or not secrets) and urllib.parse.urlsplit(url).scheme not in ("amqp", "amqps"):
        raise DriverRejected("config url is required: the broker's amqp:// or amqps:// URL (or name a secret "
                             "holding the key url, to keep its password out of listings)")
    if not config.get("queue"):
        raise DriverRejected("config queue is required: the name of an existing queue of that broker")
    if not (config.get("prefetch") or "10").isdigit() or int(config.get("prefetch") or "10") < 1:
        raise DriverRejected("config prefetch should be a positive number of messages")
    _event_type(config)


@dataclass(frozen=True)
class BuiltinType:
    name: str
    keys: dict[str, str]
    """Every config key the type reads, with its default ('' for none)."""
    check: Callable[[dict[str, str], bool], object]
    """Raises DriverRejected; told whether the driver names secrets (which may hold some keys)."""
    expose: bool = False

    def checked(self, config: dict[str, str], secrets: bool = False) -> dict[str, str]:
        """The config, or DriverRejected naming the first thing wrong with it."""
        unknown = sorted(set(config) - set(self.keys))
        if unknown:
            raise DriverRejected(f"config {', '.join(unknown)} is not read by {self.name} drivers "
                                 f"(they read {', '.join(self.keys)})")
        self.check(config, secrets)
        return config


BUILTIN = {t.name: t for t in (
    BuiltinType("cron", cron.KEYS, lambda config, _: cron.parse(config)),
    BuiltinType("webhook", {"eventType": WEBHOOK_EVENT_TYPE}, _event_type, expose=True),
    BuiltinType("amqp", {"url": "", "queue": "", "eventType": "", "prefetch": "10"}, _amqp),
)}


class WebhookEvents:
    """Webhook requests are events the gateway publishes; the driver only has to be READY."""

    async def run(self, spec: DriverSpec, emit: Emit, report: Report) -> None:
        await report(None)
        await asyncio.Event().wait()

    async def discard(self, driver_id: str) -> None:
        """Nothing runs."""

    async def close(self) -> None:
        """Nothing to release."""


class EventSources:
    """The source of each type: built-in ones made when first used, `custom` for image types."""

    def __init__(self, custom: EventSource):
        self.custom = custom
        self._made: dict[str, EventSource] = {}

    def of(self, type_name: str) -> EventSource:
        if type_name not in BUILTIN:
            return self.custom
        if type_name not in self._made:
            self._made[type_name] = self._make(type_name)
        return self._made[type_name]

    @staticmethod
    def _make(type_name: str) -> EventSource:
        if type_name == "cron":
            return cron.CronEvents()
        if type_name == "amqp":
            from .amqp import AMQPEvents  # aio-pika, only when an amqp driver runs

            return AMQPEvents()
        return WebhookEvents()

    async def discard(self, type_name: str, driver_id: str) -> None:
        await self.of(type_name).discard(driver_id)

    async def close(self) -> None:
        for source in [*self._made.values(), self.custom]:
            await source.close()
