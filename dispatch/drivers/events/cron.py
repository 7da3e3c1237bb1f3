"""The `cron` driver type: one event at every slot of a schedule.

Config: `schedule` (cron, 5 fields; a 6th adds seconds), `eventType` (default `cron.tick`),
`data` (JSON, else taken as text) and `timezone` (an IANA name, default UTC).

A slot's event id is derived from (driver id, slot time), and its source from the driver's name:
a process taking the driver over, or the same process after a restart, emits the slots of the
last minute again, and the subscriptions, which run an event once per (source, id), run the ones
already run never twice. So a slot is run once, even when its leader died at that very moment; a
slot missed for longer than CATCH_UP_SECONDS is skipped."""
import asyncio
import datetime as dt
import json
import re
import time
import uuid
import zoneinfo
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from croniter import croniter

from dispatch.schemas.resources import EVENT_TYPE_PATTERN

from .ports import DriverRejected, DriverSpec, Emit, Report

SLOTS = uuid.UUID("0f6a5a1e-3d0b-4c55-9e43-6b1f2f8c9a21")
"""The namespace of slot event ids (uuid5)."""
CATCH_UP_SECONDS = 60.0
DEFAULT_EVENT_TYPE = "cron.tick"
KEYS = {"schedule": "", "eventType": DEFAULT_EVENT_TYPE, "data": "", "timezone": "UTC"}


@dataclass(frozen=True)
class Schedule:
    expression: str
    zone: dt.tzinfo
    event_type: str
    data: Any = None


def parse(config: dict[str, str]) -> Schedule:
    """The schedule a driver's config describes; DriverRejected says what is wrong with it."""
    expression = (config.get("schedule") or "").strip()
    if not expression:
        raise DriverRejected("config schedule is required, e.g. schedule=*/5 * * * * (every five minutes)")
    if len(expression.split()) not in (5, 6) or not croniter.is_valid(expression):
        raise DriverRejected(f"schedule {expression!r} is not a cron expression: 5 fields (minute hour "
                             "day-of-month month day-of-week), or 6 with seconds last")
    name = config.get("timezone") or "UTC"
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise DriverRejected(f"timezone {name!r} is unknown: use an IANA name such as Europe/Paris") from None
    event_type = config.get("eventType") or DEFAULT_EVENT_TYPE
    if not re.match(EVENT_TYPE_PATTERN, event_type) or len(event_type) > 128:
        raise DriverRejected(f"eventType {event_type!r} should match '{EVENT_TYPE_PATTERN}' (at most 128 characters)")
    data: Any = None
    if config.get("data"):
        try:
            data = json.loads(config["data"])
        except ValueError:
            data = config["data"]
    return Schedule(expression, zone, event_type, data)


def slot_event(spec: DriverSpec, schedule: Schedule, slot: dt.datetime) -> dict[str, Any]:
    stamp = slot.astimezone(dt.timezone.utc)
    event = {"specversion": "1.0", "id": str(uuid.uuid5(SLOTS, f"{spec.id}\n{stamp.isoformat()}")),
             "source": spec.source, "type": schedule.event_type,
             "time": stamp.isoformat().replace("+00:00", "Z")}
    if schedule.data is not None:
        event |= {"datacontenttype": "application/json", "data": schedule.data}
    return event


class CronEvents:
    """Emits the events of every cron driver this process leads; `clock` and `sleep` are the
    wall clock's, replaceable."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.clock = clock
        self.sleep = sleep

    async def run(self, spec: DriverSpec, emit: Emit, report: Report) -> None:
        schedule = parse(spec.config)
        now = self.clock()
        since = max(now - CATCH_UP_SECONDS, spec.created_time) if spec.resumed else now
        slots = croniter(schedule.expression, dt.datetime.fromtimestamp(since, schedule.zone))
        await report(None)
        while True:
            slot = slots.get_next(dt.datetime)
            while (wait := slot.timestamp() - self.clock()) > 0:
                await self.sleep(wait)
            await self._emit(slot_event(spec, schedule, slot), slot.timestamp(), emit, report)

    async def _emit(self, event: dict, due: float, emit: Emit, report: Report) -> None:
        """Emit a slot's event, retrying while the bus fails, until the slot is too old to matter."""
        failing = False
        while True:
            try:
                await emit(event)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the bus may be down: say so, retry
                failing = True
                await report(f"cannot emit the event of {event['time']}: {error}")
                if self.clock() - due > CATCH_UP_SECONDS:
                    return
                await self.sleep(1.0)
                continue
            if failing:
                await report(None)
            return

    async def discard(self, driver_id: str) -> None:
        """A schedule leaves nothing behind."""

    async def close(self) -> None:
        """Nothing to release."""
