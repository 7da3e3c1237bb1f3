"""The composition root: builds the adapters from settings and wires the handler groups this
process runs to the bus."""
from functools import partial

from dispatch.bus.ports import MessageBus
from dispatch.drivers.ports import FunctionRuntime
from dispatch.drivers.router import BuiltinRouter
from dispatch.iam.directory import Directory
from dispatch.iam.keys import platform_key
from dispatch.iam.tokens import platform_token
from dispatch.settings import Settings
from dispatch.store.projector import Projector

from . import apis, base_images, driver_types, drivers, events, functions, iam, images, runs, secrets, subscriptions
from .adapters import bus_from, event_sources_from, gateway_from, handler_groups, runtime_from, secret_box_from, store_from
from .claims import Executors
from .driver_supervisor import DriverSupervisor
from .deployments import Deployments
from .execution import Executor, Secrets
from .platform import Platform
from .ready import ReadyFunctions, follow_functions


def bootstrap(settings: Settings, bus: MessageBus | None = None,
              runtime: FunctionRuntime | None = None) -> Platform:
    groups = handler_groups(settings)
    bus = bus or bus_from(settings)
    store, views = store_from(settings)
    runtime = runtime or runtime_from(settings)
    router = BuiltinRouter(settings.default_organization)
    box = secret_box_from(settings)
    opened = Secrets(views, box)
    gateway = gateway_from(settings, router, users=opened.values)
    deployments = Deployments(store, views, store, runtime, settings)
    ready = ReadyFunctions(views)
    executor = Executor(ready, runtime, opened, deployments, tokens=partial(platform_token, platform_key(box)))

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
                    executor, deployments, groups, gateway=gateway, drivers=supervisor, directory=directory)
