"""A running Dispatch process: its adapters, the background work it owns, and how the gateway
writes through it."""
import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog

from dispatch.bus.ports import MessageBus
from dispatch.drivers.ports import FunctionRuntime
from dispatch.drivers.router import BuiltinRouter
from dispatch.schemas.commands import ExecuteFunction
from dispatch.schemas.envelope import Command
from dispatch.settings import Settings
from dispatch.store.projector import Projector
from dispatch.store.sealing import SecretBox
from dispatch.telemetry.health import Health
from dispatch.telemetry.metrics import Metrics

from . import apis
from .deployments import Deployments
from .execution import Executor
from .relay import Relay
from .resync import resync_forever, resync_once
from .retention import prune_forever

log = structlog.get_logger("dispatch.platform")


@dataclass
class Platform:
    settings: Settings
    bus: MessageBus
    store: Any
    views: Any
    runtime: FunctionRuntime
    router: BuiltinRouter
    box: SecretBox
    projector: Projector
    executor: Executor
    deployments: Deployments
    groups: set[str]
    health: Health
    gateway: Any = None
    """Where the apis handlers register routes: the router itself, or an external gateway."""
    drivers: Any = None
    """The event drivers this process runs (DriverSupervisor), when it runs the drivers group."""
    directory: Any = None
    """The identity read model (iam.directory.Directory) of a process serving HTTP."""
    metrics: Metrics = field(default_factory=Metrics)
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def serves_http(self) -> bool:
        return self.settings.role in ("all", "gateway")

    async def start(self) -> None:
        await self.store.start()
        if self.groups:
            await self.projector.catch_up()
        if not self.projector.follow_inline():
            self.tasks.append(asyncio.ensure_future(self.projector.run()))
        await self.bus.start()
        if self.serves_http:
            await self._load_routes()
            await self.directory.load()
        if self.groups:
            relay = Relay(self.store, self.views, self.bus, self.projector.wait_for)
            self.tasks += [asyncio.ensure_future(coro) for coro in (
                relay.run(), self._recover(), resync_forever(self.bus, self.views, self.settings.resync_seconds))]
        if self.drivers is not None:
            self.tasks.append(asyncio.ensure_future(self.drivers.run()))
        if self.settings.run_retention:
            self.tasks.append(asyncio.ensure_future(prune_forever(self.views, self.settings.run_retention)))
        if "apis" in self.groups and self.gateway not in (None, self.router):
            self.tasks.append(asyncio.ensure_future(
                apis.reconcile_forever(self.views, self.gateway, self.settings.kong_sync_seconds)))

    async def _load_routes(self) -> None:
        for organization, api in await self.views.list_all("API"):
            if api.get("status") == "READY" and api.get("enabled", True):
                await self.router.register(apis.route_of(organization, api))

    async def _recover(self) -> None:
        """After a restart: serve READY functions again, re-drive unfinished work."""
        restored = await self.deployments.restore() if "runs" in self.groups else 0
        redriven = await resync_once(self.bus, self.views, older_than=0)
        resumed = await self._resume_runs() if "runs" in self.groups and self.settings.bus == "memory" else 0
        log.info("recovered", functions=restored, redriven=redriven, runs=resumed)

    async def _resume_runs(self) -> int:
        """Runs accepted but not finished when the process stopped run now. On a broker the
        unacknowledged command is delivered again instead; only the embedded bus forgets it."""
        unfinished = await self.views.unfinished_runs()
        for organization, run in unfinished:
            await self.bus.send(ExecuteFunction(organization=organization, run={**run, "blocking": False}))
        return len(unfinished)

    async def write(self, command: Command, timeout: float = 30.0) -> dict[str, Any]:
        """Send a command, wait for its reply and for the read models to include its effect."""
        answer = await self.bus.request(command, timeout)
        await self.projector.wait_for(answer["position"])
        return answer

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.bus.close()
        if self.gateway not in (None, self.router):
            await self.gateway.close()
        await self.runtime.close()
        await self.store.close()
