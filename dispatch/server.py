"""Runs the embedded server: the platform plus its two HTTP ports, until SIGINT or SIGTERM."""
import asyncio
import signal
from typing import Awaitable, Callable

import structlog
from aiohttp import web

from dispatch.gateway.app import create_api_app, create_app
from dispatch.gateway.logs import configure_logging
from dispatch.handlers.bootstrap import bootstrap
from dispatch.settings import Settings

log = structlog.get_logger("dispatch.server")


async def serve(settings: Settings, on_ready: Callable[[], Awaitable[None]] | None = None) -> None:
    configure_logging(settings.log_level)
    platform = bootstrap(settings)
    await platform.start()
    runners = []
    try:
        for app, port in ((create_app(settings, platform), settings.port),
                          (create_api_app(settings, platform), settings.api_port)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, settings.host, port).start()
            runners.append(runner)
        log.info("listening", api=f"http://{settings.host}:{settings.port}",
                 user_apis=f"http://{settings.host}:{settings.api_port}", data_dir=str(settings.data_dir))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            await on_ready()
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()
        await platform.close()
        log.info("stopped")


async def rebuild_views(settings: Settings) -> dict[str, int]:
    """Replay the whole log into fresh read models (the server must not be running)."""
    platform = bootstrap(settings)
    await platform.store.start()
    try:
        position = await platform.projector.rebuild()
        dump = await platform.views.dump()
        return {"position": position, "resources": len(dump["resources"]), "runs": len(dump["runs"])}
    finally:
        await platform.store.close()
