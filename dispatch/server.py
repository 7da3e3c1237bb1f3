"""Runs the embedded server: the platform plus its two HTTP ports, until SIGINT or SIGTERM."""
import asyncio
import contextlib
import fcntl
import ipaddress
import os
import signal
from pathlib import Path
from typing import Awaitable, Callable, Iterator

import structlog
from aiohttp import web

from dispatch.errors import Unavailable
from dispatch.gateway.accepted import AcceptedRuns
from dispatch.gateway.app import create_api_app, create_app
from dispatch.gateway.auth import authority_for, users_for
from dispatch.gateway.logs import app_runner
from dispatch.gateway.tls import serve_https
from dispatch.handlers.bootstrap import bootstrap
from dispatch.handlers.retention import prune_once
from dispatch.iam.admin import Admin, first_start
from dispatch.settings import Settings
from dispatch.telemetry import tracing
from dispatch.telemetry.health import health_app
from dispatch.telemetry.logs import configure_logging
from dispatch.telemetry.tracing import configure_tracing, shutdown_tracing

log = structlog.get_logger("dispatch.server")


@contextlib.contextmanager
def exclusive(data_dir: Path, doing: str) -> Iterator[None]:
    """One process at a time owns a data directory: two servers on one event log would run every
    reaction twice, and rebuilding views under a running server would race its projections."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "dispatch.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "another process"
            raise Unavailable(f"cannot {doing}: {data_dir} is in use by a running dispatch server "
                              f"(pid {owner}); stop it first or use another --data-dir") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield


async def _listen(app: web.Application, host: str, port: int, logged: bool = True) -> web.AppRunner:
    runner = app_runner(app) if logged else web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        await runner.cleanup()
        raise Unavailable(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return runner


Ready = Callable[[Admin | None], Awaitable[None]]


async def serve(settings: Settings, on_ready: Ready | None = None) -> None:
    """`on_ready` gets the installation's administrator when this process holds its key."""
    configure_logging(settings.log_level)
    check_exposure(settings)
    users_for(settings)  # a half or malformed OIDC configuration fails before anything starts
    traced = configure_tracing("dispatch" if settings.role == "all" else f"dispatch-{settings.role}")
    try:
        if settings.store != "sqlite":
            await _serve(settings, on_ready)  # processes of a distributed installation share nothing local
            return
        with exclusive(settings.data_dir, "start the server"):
            await _serve(settings, on_ready)
    finally:
        if traced:  # what is still buffered is exported before the process ends
            await asyncio.get_running_loop().run_in_executor(None, shutdown_tracing)


async def _serve(settings: Settings, on_ready: Ready | None) -> None:
    platform = bootstrap(settings)
    await platform.start()
    runners = []
    try:
        # With a bootstrap key, whoever holds its private half bootstraps (dispatch manage bootstrap).
        admin = await first_start(platform, settings.default_organization, settings.data_dir) \
            if settings.role == "all" and not settings.skip_auth and settings.bootstrap_public_key is None else None
        accepted = AcceptedRuns()
        authority = authority_for(settings, platform) if platform.serves_http else None
        listening = ((create_app(settings, platform, accepted, authority), settings.port),
                     (create_api_app(settings, platform, accepted), settings.api_port)) if platform.serves_http else ()
        for app, port in listening:
            runners.append(await _listen(app, settings.host, port))
        if runners and settings.tls_cert and settings.tls_key:
            platform.tasks.append(await serve_https(runners[1], settings, platform))
        if settings.health_port:  # probes and scrapes, every few seconds: not logged
            runners.append(await _listen(health_app(platform.health, platform.metrics), settings.host,
                                         settings.health_port, logged=False))
        log.info("started", role=settings.role, handlers=sorted(platform.groups), bus=_safe(settings.bus),
                 store=_safe(settings.store), api=f"http://{settings.host}:{settings.port}" if listening else None,
                 user_apis=f"http://{settings.host}:{settings.api_port}" if listening else None,
                 health=f"http://{settings.host}:{settings.health_port}" if settings.health_port else None,
                 data_dir=str(settings.data_dir), tracing=tracing.enabled())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            await on_ready(admin)
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()
        await platform.close()
        log.info("stopped")


def check_exposure(settings: Settings) -> None:
    """Refuse to serve without authentication beyond this machine; say where the API is exposed."""
    loopback = is_loopback(settings.host)
    if settings.skip_auth:
        if not loopback:
            raise Unavailable(f"--skip-auth serves the management API to anyone who reaches it: it binds loopback "
                              f"addresses only, not {settings.host}")
        log.warning("authentication is off (--skip-auth): every local process, and every function, may read every "
                    "secret and change anything")
    elif not loopback and settings.role in ("all", "gateway"):  # a handlers process serves no API
        log.warning("the management API is exposed beyond this machine", address=f"{settings.host}:{settings.port}",
                    public_names=settings.public_names or None)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _safe(url: str) -> str:
    """A URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}:***@{host}"


async def rebuild_views(settings: Settings) -> dict[str, int]:
    """Replay the whole log into fresh read models (the server must not be running), then drop
    the runs past the run retention."""
    lock = exclusive(settings.data_dir, "rebuild the views") if settings.store == "sqlite" else contextlib.nullcontext()
    with lock:
        platform = bootstrap(settings)
        await platform.store.start()
        try:
            position = await platform.projector.rebuild()
            if settings.run_retention:
                await prune_once(platform.views, settings.run_retention)
            dump = await platform.views.dump()
            return {"position": position, "resources": len(dump["resources"]), "runs": len(dump["runs"]),
                    "audit": len(dump["audit"])}
        finally:
            await platform.store.close()


async def drop_installation(settings: Settings) -> None:
    """Delete everything an installation keeps on its broker and database: every exchange and
    queue of its namespace, its PostgreSQL schema. For tearing down test and bench installations;
    the servers must be stopped."""
    platform = bootstrap(settings.model_copy(update={"role": "all", "handlers": "all"}))
    destroy = getattr(platform.bus, "destroy", None)
    if destroy is not None:
        await destroy()
    if settings.store != "sqlite":
        await platform.store.start()
        try:
            async with platform.store.connection() as conn:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{platform.store.schema}" CASCADE')
        finally:
            await platform.store.close()
