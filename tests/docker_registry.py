"""A container registry for the tests that push and pull images: Debian's docker-registry (the
CNCF distribution registry, registry API v2) on a free port of 127.0.0.1, storing in a folder of its
own, without authentication. A Docker engine speaks plain HTTP to a registry on 127.0.0.0/8 without
being told to. Installed when missing and the tests run as root (tests/debian.py); `Unavailable`
says why it cannot run here."""
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests import debian
from tests.debian import Unavailable

PROGRAM = "/usr/bin/docker-registry"
MANIFEST_TYPES = ", ".join(["application/vnd.docker.distribution.manifest.v2+json",
                            "application/vnd.oci.image.manifest.v1+json",
                            "application/vnd.docker.distribution.manifest.list.v2+json"])

__all__ = ["Registry", "Unavailable"]


class Registry:
    def __init__(self, root: Path):
        self.root = root
        self.address = ""
        """host:port, as image references name it."""
        self._process: subprocess.Popen | None = None

    def start(self) -> "Registry":
        if not Path(PROGRAM).exists():
            debian.install("docker-registry")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{probe.getsockname()[1]}"
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(yaml.safe_dump({
            "version": 0.1, "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "storage")}, "delete": {"enabled": True}},
            "http": {"addr": self.address}}))
        log = (self.root / "registry.log").open("w")
        self._process = subprocess.Popen([PROGRAM, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise Unavailable(f"docker-registry did not start: {(self.root / 'registry.log').read_text()[-300:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        self._process = None
        shutil.rmtree(self.root / "storage", ignore_errors=True)

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest the registry gives `repository:reference` (a tag or a digest), None when it has none."""
        request = urllib.request.Request(f"http://{self.address}/v2/{repository}/manifests/{reference}",
                                         method="HEAD", headers={"Accept": MANIFEST_TYPES})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def tags(self, repository: str) -> list[str]:
        with urllib.request.urlopen(f"http://{self.address}/v2/{repository}/tags/list", timeout=10) as response:
            return json.load(response).get("tags") or []

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False
