"""HTTPS on the user-API port: the configured certificate for every host, and an API's own
certificate (its `tls` secret: `tls.crt` and `tls.key`, PEM) for the API's hosts, chosen by the
name the client asks for (SNI)."""
import asyncio
import os
import ssl
import tempfile

import structlog
from aiohttp import web

from dispatch.drivers.router import host_matches
from dispatch.errors import Unavailable
from dispatch.settings import Settings

log = structlog.get_logger("dispatch.tls")
REFRESH_SECONDS = 10.0


def context_of(certificate: bytes, key: bytes) -> ssl.SSLContext:
    """A server context from PEM bytes; ssl loads only from files, so they pass through a private
    temporary file that is removed at once."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "pair.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(certificate.rstrip() + b"\n" + key)
        context.load_cert_chain(path)
    return context


class Certificates:
    def __init__(self, settings: Settings, platform) -> None:
        self.platform = platform
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        assert settings.tls_cert is not None  # HTTPS is served only when it is set
        try:
            self.context.load_cert_chain(settings.tls_cert, settings.tls_key)
        except (OSError, ssl.SSLError) as error:
            raise Unavailable(f"cannot load --tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: "
                              f"{getattr(error, 'strerror', None) or error}") from None
        self.context.sni_callback = self._choose
        self._hosts: list[tuple[tuple[str, ...], ssl.SSLContext]] = []
        self._opened: dict[tuple[str, str], tuple[dict, ssl.SSLContext | None]] = {}
        self._version = -1

    def _choose(self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if not server_name:
            return None
        name = server_name.lower()
        for hosts, context in self._hosts:
            if host_matches(hosts, name):
                connection.context = context
                break
        return None

    async def refresh(self) -> None:
        """Rebuild the host table from the routes served and the current secrets."""
        hosts = []
        for route in self.platform.router.routes():
            if route.tls and route.hosts:
                context = await self._load(route.organization, route.tls)
                if context is not None:
                    hosts.append((route.hosts, context))
        self._hosts = hosts

    async def _load(self, organization: str, name: str) -> ssl.SSLContext | None:
        secret = await self.platform.views.get_resource(organization, "Secret", name)
        sealed = (secret or {}).get("secrets") or {}
        cached = self._opened.get((organization, name))
        if cached is not None and cached[0] == sealed:
            return cached[1]
        context = None
        try:
            values = self.platform.box.open(sealed)
            context = context_of(values["tls.crt"].encode(), values["tls.key"].encode())
        except (KeyError, ValueError, ssl.SSLError) as error:
            log.warning("tls secret unusable", organization=organization, secret=name,
                        reason=f"missing {error}" if isinstance(error, KeyError) else str(error))
        self._opened[(organization, name)] = (sealed, context)
        return context

    async def follow(self) -> None:
        """Refresh when the routes change, and every few seconds for changed secrets."""
        idle = 0.0
        while True:
            if self.platform.router.version != self._version or idle >= REFRESH_SECONDS:
                self._version, idle = self.platform.router.version, 0.0
                try:
                    await self.refresh()
                except Exception as error:  # noqa: BLE001 - a store hiccup must not end HTTPS for good
                    log.warning("tls refresh failed", reason=str(error))
            await asyncio.sleep(0.5)
            idle += 0.5


async def serve_https(runner: web.AppRunner, settings: Settings, platform) -> asyncio.Task:
    """Adds the HTTPS listener to the user-API app's runner; the task keeps certificates current."""
    certificates = Certificates(settings, platform)
    await certificates.refresh()
    try:
        await web.TCPSite(runner, settings.host, settings.api_https_port, ssl_context=certificates.context).start()
    except OSError as error:
        raise Unavailable(f"cannot listen on {settings.host}:{settings.api_https_port}: "
                          f"{error.strerror or error}") from None
    return asyncio.ensure_future(certificates.follow())
