"""Runs the event drivers: each driver is run by one process of the `drivers` group, its leader,
and taken over when that process dies.

Every process of the group reconciles every `poll` seconds, and at once when a driver or a
driver type changes (events on a subscription of its own). It tries to lead each driver it does
not run: a PostgreSQL advisory lock per driver, held by the process's session, so it goes with
the process and another one takes over within a poll (the embedded store has one process, which
leads them all). The leader runs the driver's event source, records READY or ERROR with the
reason as the source reports, restarts the source when the driver is updated or its type's
image or config changes, and removes the driver once it is DELETING. A leader whose database
session dropped has lost its locks: it stops those drivers at its next reconcile (it asks its
session every CHECK_EVERY seconds, so that one gone silent is noticed too), and the sources keep
their events once-only across the overlap (event ids, acknowledgements).

Status changes are appended here, by the leader alone, rather than sent as commands: only the
process running a driver knows how it runs. So is where an exposed driver's container listens:
DriverStarted carries it (PUSH_ADDRESS), the read model every gateway reads has it, and a new
leader's READY replaces it; a driver not READY has none to be used."""
import asyncio
import json
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import structlog

from dispatch.bus.ports import MessageBus
from dispatch.drivers.events.builtin import EventSources
from dispatch.drivers.events.ports import DriverRejected, DriverSpec, EventSource
from dispatch.errors import Unavailable
from dispatch.schemas import events as e
from dispatch.schemas.envelope import Message
from dispatch.schemas.resources import Status
from dispatch.store.ports import ConcurrencyConflict, EventLog, LeaderElection, Views
from dispatch.store.sealing import SecretBox

from .driver_types import builtin_type
from .drivers import PUSH_ADDRESS, entries
from .events import publish_event
from .lifecycle import load, now

log = structlog.get_logger("dispatch.drivers")
MOST_PAUSE = 60.0
CHECK_EVERY = 5.0
"""How often a leader makes sure its database session (its locks) still lives."""
TRANSITIONAL = (Status.CREATING.value, Status.UPDATING.value)
START_GRACE = 10.0
"""Seconds a new or changed driver whose source fails stays CREATING (UPDATING) while it is
retried, before it goes ERROR: a container whose image is still being pulled, or an engine that
restarts, may yet start (as in Dispatch). A configuration that can never work goes ERROR at once."""


@dataclass
class Running:
    organization: str
    name: str
    id: str
    type: str
    fingerprint: str
    since: int | None
    """The modifiedTime of the CREATING or UPDATING state it was started for."""
    task: asyncio.Task | None = None
    reported: bool = False
    reason: str | None = None
    final: bool = False
    """The reason can never change by retrying (a rejected configuration)."""
    address: str | None = None
    """Where the driver's push endpoint listens, as its source last reported it READY."""


def fingerprint(driver: dict[str, Any], driver_type: dict[str, Any] | None) -> str:
    """What the running source depends on: a change restarts it."""
    return json.dumps([driver["type"], driver.get("config"), driver.get("secrets"),
                       (driver_type or {}).get("image"), (driver_type or {}).get("config")], sort_keys=True)


class DriverSupervisor:
    def __init__(self, events: EventLog, views: Views, bus: MessageBus, sources: EventSources, box: SecretBox,
                 poll: float = 1.0, start_grace: float = START_GRACE):
        self.events, self.views, self.bus = events, views, bus
        self.sources, self.box, self.poll, self.start_grace = sources, box, poll, start_grace
        # Duck-typed: the telemetry wrappers hand try_lead on through __getattr__, which a
        # runtime-checkable isinstance does not see from Python 3.12 on.
        self.leadership = cast(LeaderElection, events) if hasattr(events, "try_lead") else None
        self.running: dict[str, Running] = {}
        self._wake = asyncio.Event()
        self._checked = 0.0

    def follow(self) -> None:
        for event_type in (e.DriverCreated, e.DriverUpdated, e.DriverDeletionRequested, e.DriverTypeUpdated):
            self.bus.subscribe(event_type, "driver-supervisor", self._woken, per_process=True)

    async def _woken(self, event: Message) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                try:
                    await self.reconcile()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("driver reconciliation failed; retrying")
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                except asyncio.TimeoutError:
                    pass
        finally:
            await asyncio.shield(self.close())

    async def reconcile(self) -> None:
        await self._check_leadership()
        for driver_id in [driver_id for driver_id in self.running if not self._leads(driver_id)]:
            await self._stop(driver_id)  # first: reading the views needs the database this process lost
        types = {(org, t["name"]): t for org, t in await self.views.list_all("DriverType")}
        drivers = {d["id"]: (org, d) for org, d in await self.views.list_all("Driver")}
        for driver_id, running in list(self.running.items()):
            org, driver = drivers.get(driver_id, (None, None))
            if driver is None or driver["status"] == Status.DELETING.value \
                    or running.fingerprint != fingerprint(driver, self._type(types, org, driver)) \
                    or (driver["status"] == Status.UPDATING.value and driver["modifiedTime"] != running.since):
                await self._stop(driver_id)
        for driver_id, (org, driver) in drivers.items():
            if driver["status"] == Status.DELETING.value:
                if await self._lead(driver_id):
                    await self._remove(org, driver)
            elif driver_id in self.running:
                await self._record(self.running[driver_id], driver)
            elif await self._lead(driver_id):
                await self._start(org, driver, self._type(types, org, driver))

    @staticmethod
    def _type(types: dict, organization: str | None, driver: dict | None) -> dict | None:
        if driver is None:
            return None
        return builtin_type(driver["type"]) or types.get((organization, driver["type"]))

    async def _check_leadership(self) -> None:
        check = getattr(self.leadership, "check_leadership", None)
        now_ = asyncio.get_running_loop().time()
        if check is not None and self.running and now_ - self._checked >= CHECK_EVERY:
            self._checked = now_
            await check()

    def _leads(self, driver_id: str) -> bool:
        return self.leadership is None or self.leadership.leads(f"driver:{driver_id}")

    async def _lead(self, driver_id: str) -> bool:
        if self.leadership is None:
            return True
        try:
            return await self.leadership.try_lead(f"driver:{driver_id}")
        except Unavailable:
            return False

    async def _start(self, organization: str, driver: dict, driver_type: dict | None) -> None:
        status = driver["status"]
        running = Running(organization, driver["name"], driver["id"], driver["type"], fingerprint(driver, driver_type),
                          driver["modifiedTime"] if status in TRANSITIONAL else None)
        self.running[running.id] = running
        try:
            spec = await self._spec(organization, driver, driver_type, resumed=status not in TRANSITIONAL)
        except DriverRejected as rejected:
            running.reported, running.reason, running.final = True, rejected.reason, True
        else:
            log.info("event driver started", organization=organization, driver=running.name, type=running.type,
                     resumed=spec.resumed)
            running.task = asyncio.ensure_future(self._drive(running, self.sources.of(spec.type), spec))
        await self._record(running, driver)

    async def _spec(self, organization: str, driver: dict, driver_type: dict | None, resumed: bool) -> DriverSpec:
        if driver_type is None:
            raise DriverRejected(f"driver type {driver['type']} does not exist")
        values: dict[str, str] = {}
        for name in driver.get("secrets") or []:
            secret = await self.views.get_resource(organization, "Secret", name)
            if secret is None:
                raise DriverRejected(f"secret {name} not found")
            values.update(self.box.open(secret.get("secrets") or {}))
        return DriverSpec(id=driver["id"], organization=organization, name=driver["name"], type=driver["type"],
                          config={**entries(driver_type.get("config")), **entries(driver.get("config"))},
                          secrets=values, image=driver_type.get("image") or "", resumed=resumed,
                          created_time=driver.get("createdTime") or 0, expose=bool(driver.get("expose")))

    async def _drive(self, running: Running, source: EventSource, spec: DriverSpec) -> None:
        """Run the source, again after a pause should it end or fail, until cancelled."""
        async def report(reason: str | None, address: str | None = None, final: bool = False) -> None:
            running.reported, running.reason, running.address, running.final = True, reason, address, final
            self._wake.set()

        emit = partial(publish_event, self.bus, spec.organization)
        pause = 1.0
        while True:
            try:
                await source.run(spec, emit, report)
                reason = "the driver stopped"
            except DriverRejected as rejected:
                await report(rejected.reason, final=True)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - a source's bug must not stop its driver for good
                log.exception("event driver failed", driver=spec.name)
                reason = f"the driver failed: {error or type(error).__name__}"
            await report(reason)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MOST_PAUSE)

    async def _record(self, running: Running, driver: dict) -> None:
        """Append READY or ERROR when the source's last report differs from the driver's status."""
        if not running.reported:
            return
        if running.reason is not None and not running.final and running.since is not None \
                and time.time() - running.since < self.start_grace:
            return  # still retried within its grace; a later reconcile records the outcome
        status = Status.READY if running.reason is None else Status.ERROR
        reason = None if running.reason is None else [running.reason]
        changes = {PUSH_ADDRESS: running.address} if running.reason is None and running.address else {}

        def recorded(state: dict) -> bool:
            return state["status"] == status and state.get("reason") == reason \
                and all(state.get(key) == value for key, value in changes.items())

        if recorded(driver):
            return
        loaded = await load(self.events, "Driver", running.organization, running.name)
        state = loaded.state
        if state is None or state["id"] != running.id or state["status"] == Status.DELETING.value \
                or (state["status"] == Status.UPDATING.value and state["modifiedTime"] != running.since) \
                or recorded(state):
            return  # changed meanwhile: the next reconcile decides
        event_type = e.DriverStarted if running.reason is None else e.DriverFailed
        event = event_type(organization=running.organization, name=running.name, status=status, reason=reason,
                           changes=changes, modified_time=now())
        try:
            await self.events.append(loaded.stream, loaded.version, [event])
        except ConcurrencyConflict:
            self._wake.set()

    async def _stop(self, driver_id: str) -> None:
        running = self.running.pop(driver_id, None)
        if running is not None and running.task is not None:
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
            log.info("event driver stopped", organization=running.organization, driver=running.name)

    async def _remove(self, organization: str, driver: dict) -> None:
        await self._stop(driver["id"])
        try:
            await self.sources.discard(driver["type"], driver["id"])
        except Exception as error:  # noqa: BLE001 - the driver goes all the same; say what may be left
            log.warning("event driver may have left a container behind", driver=driver["name"], error=repr(error))
        loaded = await load(self.events, "Driver", organization, driver["name"])
        if loaded.status == Status.DELETING.value and loaded.existing()["id"] == driver["id"]:
            try:
                await self.events.append(loaded.stream, loaded.version,
                                         [e.DriverDeleted(organization=organization, name=driver["name"])])
            except ConcurrencyConflict:
                self._wake.set()
                return
        resign = getattr(self.leadership, "resign", None)
        if resign is not None:
            await resign(f"driver:{driver['id']}")

    async def close(self) -> None:
        await asyncio.gather(*(self._stop(driver_id) for driver_id in list(self.running)))
        await self.sources.close()
