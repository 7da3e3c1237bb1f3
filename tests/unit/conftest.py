import asyncio
import base64
import io
import tarfile

import pytest

from dispatch.handlers.bootstrap import bootstrap
from dispatch.settings import Settings
from tests.fakes import InProcessRuntime

HELLO = b'''def handle(context, payload):
    return {"myField": "Hello, %s from %s" % (payload["name"], payload["place"])}
'''


def source_of(files: dict[str, bytes]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data", resync_seconds=3600)


@pytest.fixture
async def platform(settings):
    runtime = InProcessRuntime()
    running = bootstrap(settings, runtime=runtime)
    await running.start()
    yield running
    await running.close()


async def settled(platform, kind: str, name: str, org: str = "o", timeout: float = 10.0) -> dict:
    """The resource once it is no longer in a transitional status."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await platform.views.get_resource(org, kind, name)
        if found and found["status"] in ("READY", "ERROR"):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{kind} {name} still {found and found['status']}")
        await asyncio.sleep(0.01)
