"""No credential in any process's command line or in a function's environment: the bus and store
URLs a server is given stay out of /proc/<pid>/cmdline, which every local user can read."""
import json
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from .cluster import AMQP, DATABASE
from .conftest import PYTHON_IMAGE, Server

pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq, pytest.mark.postgres]

PEEK = """import os
def handle(ctx, payload):
    return {"environ": dict(os.environ)}
"""


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "guest"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


def tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in tree(int(child)))]


def test_the_servers_processes_and_its_functions_show_no_password(tmp_path):
    if not (AMQP and DATABASE):
        pytest.skip("needs DISPATCH_TEST_AMQP_URL and DISPATCH_TEST_DATABASE_URL")
    if urlsplit(AMQP).password != "guest":
        pytest.skip("the broker under test does not use the guest account")
    secret = f"pw-{uuid.uuid4().hex[:8]}"  # the local PostgreSQL trusts local connections: any password works
    store = with_password(DATABASE, secret)
    namespace = f"t{uuid.uuid4().hex[:10]}"
    (tmp_path / "peek.py").write_text(PEEK)
    (tmp_path / "seed.yaml").write_text(PYTHON_IMAGE
                                        + "---\nkind: Function\nname: peek\nimage: py\nsourcePath: peek.py\n")
    server = Server(tmp_path / "data", seed=tmp_path / "seed.yaml",
                    extra=("--bus", AMQP, "--store", store, "--namespace", namespace)).start()
    try:
        server.wait_status("/v1/function/peek")
        run = json.loads(server.cli("exec", "peek", "--wait").stdout)
        environ = json.dumps(run["output"]["environ"])
        assert secret not in environ and "guest:guest" not in environ and "DISPATCH_" not in environ
        for pid in tree(server.process.pid):
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert secret not in command_line and "guest:guest" not in command_line, command_line
        assert "postgresql://" in Path(f"/proc/{server.process.pid}/cmdline").read_text()  # shown, masked
    finally:
        server.stop()
        server.cli("admin", "drop", "--bus", AMQP, "--store", DATABASE, "--namespace", namespace, "--yes")
