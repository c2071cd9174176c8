"""Metrics over HTTP through the http plugin's app: the Prometheus and JSON routes, the request
middleware, and the webhook delivery counters."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from rustqueue_http.app import create_app
from rustqueue_metrics.config import MetricsConfig
from rustqueue_metrics.plugin import MetricsPlugin

from rustqueue_core.builtin.memory import MemoryStorage
from rustqueue_core.engine import RustQueue
from rustqueue_core.plugins import PluginHost


async def test_prometheus_route_serves_text_exposition(metrics_engine: Any, parse: Any) -> None:
    engine, _ = await metrics_engine(scrape_cache_ms=0)
    await engine.push("emails", "send")
    async with AsyncTestClient(create_app(engine)) as client:
        resp = await client.get("/api/v1/metrics/prometheus")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    scrape = parse(resp.text)
    assert scrape.value("rustqueue_jobs_pushed_total") == 1
    assert scrape.value("rustqueue_queue_waiting_jobs", queue="emails") == 1


async def test_http_requests_are_counted_and_timed(metrics_engine: Any, parse: Any) -> None:
    engine, metrics = await metrics_engine()
    async with AsyncTestClient(create_app(engine)) as client:
        assert (await client.post("/api/v1/queues/emails/jobs", json={"name": "send", "data": {}})).status_code == 201
        pulled = await client.get("/api/v1/queues/emails/jobs")
        assert pulled.status_code == 200
        job_id = pulled.json()["jobs"][0]["id"] if "jobs" in pulled.json() else pulled.json()["job"]["id"]
        assert (await client.post(f"/api/v1/jobs/{job_id}/ack", json={})).status_code == 200
        assert (await client.get("/api/v1/jobs/00000000-0000-7000-8000-000000000000")).status_code == 404
    scrape = parse(metrics.render())
    assert scrape.value("rustqueue_http_requests_total", method="POST", status_class="2xx") == 2
    assert scrape.value("rustqueue_http_requests_total", method="GET", status_class="2xx") == 1
    assert scrape.value("rustqueue_http_requests_total", method="GET", status_class="4xx") == 1
    assert scrape.value("rustqueue_http_request_duration_seconds_count", method="POST") == 2
    assert scrape.value("rustqueue_http_request_duration_seconds_bucket", method="GET", le="+Inf") == 2
    for op in ("push", "pull", "ack"):
        assert scrape.value(f"rustqueue_{op}_duration_seconds_count") == 1, op
        assert scrape.value(f"rustqueue_{op}_duration_seconds_bucket", le="+Inf") == 1, op
    assert scrape.value("rustqueue_jobs_completed_total") == 1


async def test_json_route(metrics_engine: Any) -> None:
    engine, _ = await metrics_engine(scrape_cache_ms=0)
    await engine.push("emails", "send")
    async with AsyncTestClient(create_app(engine)) as client:
        body = (await client.get("/api/v1/metrics")).json()
    assert body["ok"] is True
    metrics = body["metrics"]
    assert metrics["jobs_pushed_total"] == 1
    assert metrics["queues"]["emails"] == {
        "waiting": 1,
        "active": 0,
        "delayed": 0,
        "dlq": 0,
        "rate_limit_rejected_total": 0,
    }


async def test_configured_path_and_disabled_prometheus(metrics_engine: Any) -> None:
    engine, _ = await metrics_engine(prometheus_path="/metrics")
    async with AsyncTestClient(create_app(engine)) as client:
        assert (await client.get("/metrics")).status_code == 200
    engine, _ = await metrics_engine(prometheus_enabled=False)
    async with AsyncTestClient(create_app(engine)) as client:
        resp = await client.get("/api/v1/metrics/prometheus")
    assert resp.status_code == 503
    assert resp.text == "Metrics not available"
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"


async def test_routes_answer_503_without_the_lifespan() -> None:
    host = PluginHost.embedded(["http"])
    host.register(MetricsPlugin(MetricsConfig()), "metrics")
    engine = RustQueue(MemoryStorage(), host=host)
    await engine.start()
    try:
        async with AsyncTestClient(create_app(engine)) as client:
            resp = await client.get("/api/v1/metrics/prometheus")
            assert (resp.status_code, resp.text) == (503, "Metrics not available")
            assert (await client.get("/api/v1/health")).status_code == 200
    finally:
        await engine.close()


class _Receiver:
    """Answers 200 to every POST; records the count."""

    def __init__(self) -> None:
        self.count = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


async def test_webhook_delivery_counters(metrics_engine: Any, parse: Any, receiver: _Receiver, tmp_path: Path):
    from rustqueue_webhooks.config import WebhooksConfig
    from rustqueue_webhooks.plugin import WebhooksPlugin

    engine, metrics = await metrics_engine()
    webhooks = WebhooksPlugin(WebhooksConfig(enabled=True, max_retries=0, store_path=str(tmp_path / "w.db")))
    async with webhooks.run(engine) as service:
        await service.create_webhook(receiver.url, ["job_pushed"])
        await service.create_webhook("http://127.0.0.1:9/unreachable", ["job_pushed"])
        await engine.push("emails", "send")
        for _ in range(1000):  # at most 10 s
            if service.delivered_total + service.failed_total >= 2:
                break
            await asyncio.sleep(0.01)
        scrape = parse(metrics.render())
    assert receiver.count == 1
    assert scrape.value("rustqueue_webhooks_delivered_total") == 1
    assert scrape.value("rustqueue_webhooks_delivery_failures_total") == 1


async def test_websocket_clients_gauge_over_a_real_server(metrics_engine: Any, parse: Any) -> None:
    import httpx
    from rustqueue_http.server import serve_http
    from websockets.asyncio.client import connect

    from rustqueue_core.config import Config

    engine, _ = await metrics_engine(plugins=("websocket",))
    config = Config(data={"server": {"host": "127.0.0.1", "http_port": 0}})
    async with serve_http(engine, config) as server, httpx.AsyncClient() as http:
        url = f"http://127.0.0.1:{server.port}/api/v1/metrics/prometheus"

        async def clients() -> float:
            resp = await http.get(url, timeout=10)
            return parse(resp.text).value("rustqueue_websocket_clients_connected")

        assert await clients() == 0
        async with connect(f"ws://127.0.0.1:{server.port}/api/v1/events", open_timeout=10):
            for _ in range(500):  # at most 5 s
                if await clients() == 1:
                    break
                await asyncio.sleep(0.01)
            assert await clients() == 1
            scrape = parse((await http.get(url, timeout=10)).text)
            # The scrapes themselves went through the request middleware.
            assert scrape.value("rustqueue_http_requests_total", method="GET", status_class="2xx") >= 2
