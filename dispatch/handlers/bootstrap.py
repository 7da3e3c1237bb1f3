"""The composition root: builds the adapters from settings and wires every handler to the bus."""
import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog

from dispatch.bus.memory import InMemoryBus
from dispatch.bus.ports import MessageBus
from dispatch.drivers.ports import FunctionRuntime
from dispatch.drivers.router import BuiltinRouter
from dispatch.schemas.envelope import Command
from dispatch.settings import Settings
from dispatch.store.projector import Projector
from dispatch.store.sealing import SecretBox
from dispatch.store.sqlite import SQLiteStore
from dispatch.store.sqlite_views import SQLiteViews

from . import apis, base_images, functions, images, runs, secrets
from .deployments import Deployments
from .execution import Executor, Secrets
from .relay import Relay
from .resync import resync_forever, resync_once

log = structlog.get_logger("dispatch.platform")


@dataclass
class Platform:
    settings: Settings
    bus: MessageBus
    store: SQLiteStore
    views: SQLiteViews
    runtime: FunctionRuntime
    router: BuiltinRouter
    box: SecretBox
    projector: Projector
    executor: Executor
    deployments: Deployments
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def start(self) -> None:
        await self.store.start()
        await self.bus.start()
        await self.projector.catch_up()
        followers = [] if self.projector.follow_inline() else [self.projector.run()]
        relay = Relay(self.store, self.views, self.bus, self.projector.wait_for)
        self.tasks += [asyncio.ensure_future(coro) for coro in (
            *followers, relay.run(), self._recover(),
            resync_forever(self.bus, self.views, self.settings.resync_seconds))]

    async def _recover(self) -> None:
        """After a restart: serve READY functions and routes again, re-drive unfinished work."""
        for organization, api in await self.views.list_all("API"):
            if api.get("status") == "READY" and api.get("enabled", True):
                await self.router.register(apis.route_of(organization, api))
        restored = await self.deployments.restore()
        redriven = await resync_once(self.bus, self.views, older_than=0)
        log.info("recovered", functions=restored, redriven=redriven)

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
        await self.runtime.close()
        await self.store.close()


def _local_runtime(settings: Settings) -> FunctionRuntime:
    from dispatch.drivers.local import LocalRuntime  # imported only when chosen: it knows about processes

    return LocalRuntime(settings.data_dir / "runtime", max_workers=settings.max_workers_per_function,
                        max_log_bytes=settings.max_log_bytes)


def bootstrap(settings: Settings, bus: MessageBus | None = None,
              runtime: FunctionRuntime | None = None) -> Platform:
    bus = bus or InMemoryBus()
    store = SQLiteStore(settings.database_path)
    views = SQLiteViews(store)
    runtime = runtime or _local_runtime(settings)
    router = BuiltinRouter(settings.default_organization)
    box = SecretBox.from_file(settings.data_dir / "secret.key")
    deployments = Deployments(store, views, store, runtime)
    executor = Executor(views, runtime, Secrets(views, box), deployments)

    base_images.register(bus, store, views, runtime)
    images.register(bus, store, views, runtime)
    functions.register(bus, store, views, store, runtime)
    secrets.register(bus, store)
    apis.register(bus, store, views, router)
    runs.register(bus, store, executor)
    return Platform(settings, bus, store, views, runtime, router, box, Projector(store, views),
                    executor, deployments)
