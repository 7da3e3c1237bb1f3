"""Chooses the adapters named by the settings. The real-service ones are imported only when
chosen, so the embedded default needs neither aio-pika nor asyncpg at run time."""
import os
import socket
from typing import Any, Awaitable, Callable

from dispatch.bus.memory import InMemoryBus
from dispatch.bus.ports import MessageBus
from dispatch.drivers.ports import APIGateway, FunctionRuntime
from dispatch.drivers.router import BuiltinRouter
from dispatch.errors import Rejected
from dispatch.settings import Settings
from dispatch.store.sealing import SecretBox

HANDLER_GROUPS = ("images", "functions", "runs", "apis", "secrets", "events", "drivers", "iam")
ROLES = ("all", "gateway", "handlers")


def bus_from(settings: Settings) -> MessageBus:
    if settings.bus == "memory":
        return InMemoryBus()
    if settings.bus.startswith(("amqp://", "amqps://")):
        from dispatch.bus.rabbitmq import RabbitMQBus

        return RabbitMQBus(settings.bus, namespace=settings.namespace)
    raise Rejected(f"unknown bus {settings.bus!r}: use 'memory' or an amqp:// URL")


def store_from(settings: Settings) -> tuple[Any, Any]:
    """The event log / blob store and the read models on top of it."""
    if settings.store == "sqlite":
        from dispatch.store.sqlite import SQLiteStore
        from dispatch.store.sqlite_views import SQLiteViews

        store = SQLiteStore(settings.database_path)
        return store, SQLiteViews(store)
    if settings.store.startswith(("postgresql://", "postgres://")):
        from dispatch.store.postgres import PostgresStore
        from dispatch.store.postgres_views import PostgresViews

        postgres = PostgresStore(settings.store, schema=settings.namespace.replace("-", "_"))
        return postgres, PostgresViews(postgres)
    raise Rejected(f"unknown store {settings.store!r}: use 'sqlite' or a postgresql:// URL")


def runtime_from(settings: Settings) -> FunctionRuntime:
    if settings.runtime == "kubernetes":
        from dispatch.drivers.kubernetes import DEFAULT_SERVICE_URL, KubernetesRuntime, options_from

        return KubernetesRuntime(options_from(settings), kubeconfig=settings.kubeconfig,
                                 service_url=settings.kubernetes_service_url or DEFAULT_SERVICE_URL)
    if settings.runtime == "docker":
        from dispatch.drivers.docker import DockerRuntime, installation_owner

        # Embedded, the data directory is the installation: a restart takes over its containers.
        owner = installation_owner(settings.data_dir) if settings.store == "sqlite" else None
        return DockerRuntime(settings.data_dir / "docker", namespace=settings.namespace, url=settings.docker_url,
                             owner=owner, max_replicas=settings.max_workers_per_function,
                             idle_seconds=settings.idle_seconds, max_log_bytes=settings.max_log_bytes,
                             max_queued_runs=settings.max_queued_runs, tmp_mb=settings.function_tmp_mb)
    from dispatch.drivers.local import LocalRuntime  # it knows about processes: only when chosen

    root = settings.data_dir / "runtime"
    # Embedded, one process owns the data directory; distributed, several may share a host.
    own = None if settings.store == "sqlite" else root / f"functions-{socket.gethostname()}-{os.getpid()}"
    # Function processes must not read the data directory (the log, the secret key): its owner's alone.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    return LocalRuntime(root, max_workers=settings.max_workers_per_function,
                        max_log_bytes=settings.max_log_bytes, functions_dir=own,
                        idle_seconds=settings.idle_seconds, max_queued_runs=settings.max_queued_runs,
                        maven_settings=settings.maven_settings, sandbox=settings.sandbox)


def gateway_from(settings: Settings, router: BuiltinRouter,
                 users: Callable[[str, str], Awaitable[dict[str, str]]] | None = None) -> APIGateway:
    """The built-in router serves every API on the user-API port; with Kong, the APIs are also
    registered in Kong, which proxies to that port, and the users of basic APIs' secrets
    (`users(organization, secret)`: their opened values) become Kong consumers."""
    if settings.api_gateway == "builtin":
        return router
    if settings.api_gateway != "kong":
        raise Rejected(f"unknown api gateway {settings.api_gateway!r}: use 'builtin' or 'kong'")
    if not settings.kong_admin_url:
        raise Rejected("--api-gateway kong needs --kong-admin-url, e.g. http://127.0.0.1:8001")
    from dispatch.drivers.kong import KongGateway

    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
    upstream = settings.kong_upstream_url or f"http://{host}:{settings.api_port}"
    return KongGateway(settings.kong_admin_url, upstream, settings.namespace, users=users)


def event_sources_from(settings: Settings) -> Any:
    """The sources of event drivers: the built-in types, and custom types on the Docker engine
    when one is configured (the docker runtime's, or DISPATCH_DOCKER_URL)."""
    from dispatch.drivers.events.builtin import EventSources
    from dispatch.drivers.events.docker import DockerDrivers, NoEngine, reachable_address

    if settings.runtime == "docker" or settings.docker_url:
        address = settings.driver_address or reachable_address(local=settings.bus == "memory")
        return EventSources(DockerDrivers(settings.docker_url, settings.namespace, address))
    return EventSources(NoEngine("custom driver types run their image on a Docker engine, and none is configured: "
                                 "start the server with --runtime docker, or set DISPATCH_DOCKER_URL"))


def secret_box_from(settings: Settings) -> SecretBox:
    """Processes sharing a store must share the key: give it in the settings, or share the file."""
    if settings.secret_key:
        return SecretBox(settings.secret_key.encode())
    return SecretBox.from_file(settings.secret_key_file or settings.data_dir / "secret.key")


def handler_groups(settings: Settings) -> set[str]:
    if settings.role not in ROLES:
        raise Rejected(f"unknown role {settings.role!r}: use one of {', '.join(ROLES)}")
    if settings.role == "gateway":
        return set()
    wanted = {g.strip() for g in settings.handlers.split(",") if g.strip()}
    if wanted == {"all"}:
        return set(HANDLER_GROUPS)
    unknown = wanted - set(HANDLER_GROUPS)
    if unknown:
        raise Rejected(f"unknown handler groups {', '.join(sorted(unknown))}: choose from {', '.join(HANDLER_GROUPS)}")
    return wanted
