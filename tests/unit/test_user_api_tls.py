"""HTTPS on the user-API port, over real TLS: the configured certificate, and an API's own
certificate chosen by SNI for its hosts."""
import asyncio
import datetime as dt
import ipaddress
import socket
import ssl

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dispatch.gateway.app import create_api_app, create_app
from dispatch.gateway.tls import serve_https

from .test_gateway import ORG, answer, call, reaches, ready_function, seed_image
from .test_user_api import CONTEXT


def self_signed(host: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.timezone.utc)
    alt = [x509.DNSName(host)] + ([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))] if host == "localhost" else [])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def trusting(certificate: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=certificate.decode())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def default_pair(tmp_path):
    cert, key = self_signed("localhost")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    return cert, tmp_path / "cert.pem", tmp_path / "key.pem"


@pytest.fixture
async def https(settings, platform, default_pair):
    """The user-API app on plain HTTP and HTTPS, as `dispatch server --tls-cert --tls-key` runs it."""
    _, cert_file, key_file = default_pair
    tls = settings.model_copy(update={"tls_cert": cert_file, "tls_key": key_file, "api_https_port": free_port(),
                                      "api_port": free_port(), "host": "127.0.0.1"})
    runner = web.AppRunner(create_api_app(tls, platform))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", tls.api_port).start()
    follower = await serve_https(runner, tls, platform)
    yield tls
    follower.cancel()
    await runner.cleanup()


@pytest.fixture
async def client(settings, platform):
    async with TestClient(TestServer(create_app(settings, platform))) as test_client:
        await seed_image(test_client)
        await ready_function(test_client, "context", CONTEXT)
        yield test_client


async def get(url: str, context: ssl.SSLContext | None = None, host: str | None = None):
    async with aiohttp.ClientSession() as session:
        headers = {"Host": host} if host else {}
        async with session.get(url, ssl=context if context else False, headers=headers,
                               server_hostname=host) as response:
            return response.status, await response.json(content_type=None)


async def test_an_https_only_api_answers_over_tls_with_the_configured_certificate(client, https, default_pair):
    body = {"name": "secure", "function": "context", "enabled": True, "uris": ["/secure"], "protocols": ["https"]}
    await answer(await call(client, "POST", "/v1/api", json=body), 200)
    await reaches(client, "/v1/api/secure")
    status, context = await get(f"https://localhost:{https.api_https_port}/{ORG}/secure", trusting(default_pair[0]))
    assert status == 200 and context["scheme"] == "https"
    plain, refused = await get(f"http://127.0.0.1:{https.api_port}/{ORG}/secure")
    assert plain == 426 and refused == {"message": "Please use HTTPS protocol"}


async def test_an_api_with_a_tls_secret_is_served_its_own_certificate_for_its_hosts(client, https, default_pair):
    cert, key = self_signed("api.example.com")
    await answer(await call(client, "POST", "/v1/secret", json={
        "name": "api-cert", "secrets": {"tls.crt": cert.decode(), "tls.key": key.decode()}}), 201)
    body = {"name": "own", "function": "context", "enabled": True, "uris": ["/own"], "hosts": ["api.example.com"],
            "tls": "api-cert"}
    await answer(await call(client, "POST", "/v1/api", json=body), 200)
    await reaches(client, "/v1/api/own")
    url = f"https://127.0.0.1:{https.api_https_port}/own"
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # the certificate table follows route changes within a second
        try:
            status, context = await get(url, trusting(cert), host="api.example.com")
            break
        except aiohttp.ClientConnectorCertificateError:
            assert asyncio.get_running_loop().time() < deadline, "the API's certificate was never served"
            await asyncio.sleep(0.2)
    assert status == 200 and context["host"] == "api.example.com" and context["scheme"] == "https"
    with pytest.raises(aiohttp.ClientConnectorCertificateError):  # another host still gets the default
        await get(f"https://127.0.0.1:{https.api_https_port}/{ORG}/x", trusting(cert), host="other.example.com")
    status, _ = await get(f"https://127.0.0.1:{https.api_https_port}/{ORG}/x", trusting(default_pair[0]),
                          host="localhost")
    assert status == 404
