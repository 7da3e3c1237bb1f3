"""/healthz, /readyz and /metrics: on the health port without a token, on the management port
/readyz open and /metrics for a global grant."""
import pytest
from aiohttp.test_utils import TestClient, TestServer

from dispatch.telemetry.health import health_app

from .metrics_text import samples, value
from .test_auth import account, admin, client, request  # noqa: F401 - fixtures
from .test_gateway import answer


@pytest.fixture
async def health_port(platform):
    async with TestClient(TestServer(health_app(platform.health, platform.metrics))) as test_client:
        yield test_client


async def test_the_health_port_answers_alive_ready_and_metrics_without_a_token(health_port):
    assert await answer(await health_port.get("/healthz"), 200) == {"alive": True}
    ready = await answer(await health_port.get("/readyz"), 200)
    assert ready["ready"] is True and ready["checks"] == {"bus": "ok", "store": "ok", "projections": "ok"}
    assert ready["lag"] == {"views": 0, "relay": 0}
    scraped = await health_port.get("/metrics")
    assert scraped.status == 200 and scraped.content_type == "text/plain"
    found = samples(await scraped.text())
    assert value(found, "dispatch_bus_messages_total", direction="dead_lettered", kind="command") == 0
    assert value(found, "dispatch_projection_lag_events", projection="views") == 0


async def test_readyz_answers_503_naming_a_disconnected_bus(platform, health_port):
    await platform.bus.close()
    refused = await answer(await health_port.get("/readyz"), 503)
    assert refused["ready"] is False and refused["checks"]["bus"] == "the message bus is not connected"
    assert await answer(await health_port.get("/healthz"), 200) == {"alive": True}  # unready, not dead


async def test_readyz_answers_503_when_the_read_models_fall_behind_the_log(platform, health_port):
    head = await platform.store.last_position()
    await platform.views.set_tracking("views", 0)  # as if their projection had stopped at the start
    platform.health.max_lag = head - 1
    refused = await answer(await health_port.get("/readyz"), 503)
    assert refused["checks"]["projections"] == f"the read models are {head} events behind the log (at most {head - 1})"


async def test_readyz_is_open_on_the_management_port_and_metrics_need_a_global_grant(client, admin):
    ready = await answer(await client.get("/readyz"), 200)
    assert ready["ready"] is True
    assert (await request(client, "GET", "/metrics", None, "dispatch")).status == 401
    tenant = await account(client, admin.token(), "dispatch", "tenant-admin",
                           [{"subjects": ["tenant-admin"], "resources": ["*"], "actions": ["*"]}])
    refused = await answer(await request(client, "GET", "/metrics", tenant), 403)
    assert "only a global policy grants them" in refused["message"]
    scraper = await account(client, admin.token(), "dispatch", "scraper",
                            [{"subjects": ["scraper"], "resources": ["metrics"], "actions": ["get"]}], global_=True)
    for token in (scraper, admin.token()):
        allowed = await request(client, "GET", "/metrics", token)
        assert allowed.status == 200 and "dispatch_http_requests_total" in await allowed.text()
