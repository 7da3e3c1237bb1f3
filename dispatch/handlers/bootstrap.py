"""The composition root: builds the adapters from settings and wires the handler groups this
process runs to the bus."""
from functools import partial
from typing import cast

from dispatch.bus.ports import MessageBus
from dispatch.drivers.ports import FunctionRuntime
from dispatch.drivers.router import BuiltinRouter
from dispatch.iam.directory import Directory
from dispatch.iam.keys import platform_key
from dispatch.iam.tokens import platform_token
from dispatch.settings import Settings
from dispatch.store.projections import ReadModels
from dispatch.store.projector import Projector
from dispatch.telemetry import tracing
from dispatch.telemetry.health import Health
from dispatch.telemetry.metered import MeteredBus, MeteredExecutor, MeteredLog, MeteredRuntime
from dispatch.telemetry.metrics import Metrics
from dispatch.telemetry.traced import TracedBus, TracedExecutor, TracedLog, TracedRuntime

from . import apis, base_images, driver_types, drivers, events, functions, iam, images, runs, secrets, subscriptions
from .adapters import (
    bus_from,
    event_sources_from,
    gateway_from,
    handler_groups,
    runtime_from,
    secret_box_from,
    store_from,
)
from .claims import Executors
from .deployments import Deployments
from .driver_supervisor import DriverSupervisor
from .execution import Executor, Secrets
from .platform import Platform
from .ready import ReadyFunctions, follow_functions
from .relay import Relay


def bootstrap(settings: Settings, bus: MessageBus | None = None,
              runtime: FunctionRuntime | None = None) -> Platform:
    groups = handler_groups(settings)
    metrics = Metrics()  # this process's own: no global registry, so platforms of one process count apart
    bus = MeteredBus(bus or bus_from(settings), metrics)
    store, views = store_from(settings)
    store = MeteredLog(store, metrics)  # the views keep the store itself: they never append
    runtime = MeteredRuntime(runtime or runtime_from(settings), metrics)
    if tracing.enabled():
        bus = TracedBus(bus, "rabbitmq" if settings.bus.startswith("amqp") else "memory")
        store = TracedLog(store, "sqlite" if settings.store == "sqlite" else "postgresql")
        runtime = TracedRuntime(runtime)
    router = BuiltinRouter(settings.default_organization)
    box = secret_box_from(settings)
    opened = Secrets(views, box)
    gateway = gateway_from(settings, router, users=opened.values)
    deployments = Deployments(store, views, store, runtime, settings)
    ready = ReadyFunctions(views)
    executor = Executor(ready, runtime, opened, deployments, tokens=partial(platform_token, platform_key(box)))
    # The wrappers are the executor they wrap (telemetry/metered.py), as the ports' wrappers are.
    executor = cast(Executor, MeteredExecutor(executor, metrics))
    if tracing.enabled():
        executor = cast(Executor, TracedExecutor(executor))
    health = Health(bus, store, views, (ReadModels.name, Relay.name), ReadModels.name,
                    settings.max_projection_lag, metrics)

    if "images" in groups:
        base_images.register(bus, store, runtime)
        images.register(bus, store, views, runtime, store)
    if "functions" in groups:
        functions.register(bus, store, views, store, runtime, deployments)
    if "secrets" in groups:
        secrets.register(bus, store)
    if "iam" in groups:
        iam.register(bus, store, views)
    if "apis" in groups:
        apis.register(bus, store, views, gateway, settings.default_organization)
    if "events" in groups:
        subscriptions.register(bus, store)
        events.register(bus, views)
    supervisor = None
    if "drivers" in groups:
        driver_types.register(bus, store, views)
        drivers.register(bus, store, views)
        supervisor = DriverSupervisor(store, views, bus, event_sources_from(settings), box)
        supervisor.follow()
    if "runs" in groups:
        runs.register(bus, store, executor, Executors(store))
        follow_functions(bus, ready)
    directory = None
    if settings.role in ("all", "gateway"):
        apis.follow_routes(bus, views, router)
        directory = Directory(views)
        directory.follow(bus)
    return Platform(settings, bus, store, views, runtime, router, box, Projector(store, views),
                    executor, deployments, groups, gateway=gateway, drivers=supervisor, directory=directory,
                    metrics=metrics, health=health)
