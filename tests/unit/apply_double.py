"""A stand-in Kubernetes API server on a real local port over TLS (Helm's client, as kubectl's,
sends a bearer token over HTTPS only), for `dispatch install`: it answers the
version, the core group's resource list and reads of namespaces and Secrets (what Helm's `lookup`
asks), creates namespaces, and stores what server-side apply sends (PATCH with
application/apply-patch+yaml), recording every request. Other requests answer 404 or 415 as a
real API server would."""
import base64
import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TOKEN = "install-test-token"
CORE_RESOURCES = [{"name": "namespaces", "namespaced": False, "kind": "Namespace", "verbs": ["get", "create"]},
                  {"name": "secrets", "namespaced": True, "kind": "Secret", "verbs": ["get", "patch"]}]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any


@dataclass
class Cluster:
    url: str = ""
    certificate: bytes = b""
    """PEM certificate of the server, which the kubeconfig names as its authority."""
    requests: list[Request] = field(default_factory=list)
    stored: dict[str, dict] = field(default_factory=dict)
    """Path of each object -> what was applied or created there."""

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test", "preferences": {},
            "clusters": [{"name": "test", "cluster": {
                "server": self.url, "certificate-authority-data": base64.b64encode(self.certificate).decode()}}],
            "users": [{"name": "test", "user": {"token": TOKEN}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}))
        return path

    def applied(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PATCH"]


def _handler(cluster: Cluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _status(self, code: int, reason: str, message: str) -> None:
            self._answer(code, {"apiVersion": "v1", "kind": "Status", "status": "Failure", "message": message,
                                "reason": reason, "code": code, "metadata": {}})

        def _handle(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            content_type = self.headers.get("Content-Type", "")
            body = json.loads(raw) if raw else None
            cluster.requests.append(Request(self.command, url.path, parse_qs(url.query), content_type, body))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._status(401, "Unauthorized", "Unauthorized")
            if (self.command, url.path) == ("GET", "/version"):
                return self._answer(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
            if (self.command, url.path) == ("GET", "/api/v1"):
                return self._answer(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                                          "resources": CORE_RESOURCES})
            if self.command == "GET":
                found = cluster.stored.get(url.path)
                return self._answer(200, found) if found else self._status(404, "NotFound", f"{url.path} not found")
            if (self.command, url.path) == ("POST", "/api/v1/namespaces"):
                cluster.stored[f"/api/v1/namespaces/{body['metadata']['name']}"] = body
                return self._answer(201, body)
            if self.command == "PATCH":
                if content_type != "application/apply-patch+yaml":
                    return self._status(415, "UnsupportedMediaType", f"{content_type} is not supported here")
                existed = url.path in cluster.stored
                cluster.stored[url.path] = body
                return self._answer(200 if existed else 201, body)
            return self._status(405, "MethodNotAllowed", f"{self.command} is not allowed here")

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    return Handler


def serve() -> Iterator[Cluster]:
    cluster = Cluster()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(cluster))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    key, cluster.certificate = _self_signed()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "cert.pem").write_bytes(cluster.certificate + key)
        context.load_cert_chain(Path(folder) / "cert.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    cluster.url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield cluster
    finally:
        server.shutdown()
        server.server_close()


def _self_signed() -> tuple[bytes, bytes]:
    """A key and a certificate for 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-double")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem_key, certificate.public_bytes(serialization.Encoding.PEM)
