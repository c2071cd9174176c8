"""``[dashboard]`` settings, auth on the dashboard's routes, and the lifespan's sampler and log capture."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import rustqueue_auth.plugin as auth_plugin
from litestar.testing import AsyncTestClient
from rustqueue_dashboard.settings import DashboardConfig, dashboard_config
from rustqueue_dashboard.state import dashboard_lifespan, state_for
from rustqueue_http.app import create_app

from rustqueue_core.config import Config
from rustqueue_core.errors import ConfigError

from .conftest import close_engine, make_engine


async def test_disabled_dashboard_adds_no_routes() -> None:
    engine = await make_engine(config={"dashboard": {"enabled": False}})
    try:
        async with AsyncTestClient(create_app(engine)) as client:
            assert (await client.get("/dashboard")).status_code == 404
            assert (await client.get("/dashboard/api/overview")).status_code == 404
            assert (await client.get("/api/v1/health")).status_code == 200
    finally:
        await close_engine(engine)


async def test_path_prefix_moves_pages_assets_and_api() -> None:
    engine = await make_engine(config={"dashboard": {"path_prefix": "ops/ui/"}})
    try:
        async with AsyncTestClient(create_app(engine)) as client:
            page = await client.get("/ops/ui")
            assert page.status_code == 200
            assert '<meta name="rq-prefix" content="/ops/ui">' in page.text
            assert 'src="/ops/ui/js/app.js' in page.text
            assert (await client.get("/ops/ui/js/api.js")).status_code == 200
            assert (await client.get("/ops/ui/api/overview")).json()["ok"] is True
            assert (await client.get("/dashboard")).status_code == 404
    finally:
        await close_engine(engine)


@pytest.mark.parametrize("prefix", ["/dashboard", "/console"])
async def test_auth_protects_the_page_its_assets_and_the_api(prefix: str) -> None:
    auth = {"enabled": True, "tokens": ["t0k3n"], "max_failures": 100}  # many refusals from one client
    config = {"auth": auth, "dashboard": {"path_prefix": prefix}}
    engine = await make_engine([auth_plugin], config=config)
    try:
        async with AsyncTestClient(create_app(engine)) as client:
            for path in (prefix, f"{prefix}/", f"{prefix}/index.html", f"{prefix}/js/app.js", f"{prefix}/nope.css"):
                denied = await client.get(path)
                assert denied.status_code == 401, path
                assert denied.json() == {
                    "ok": False,
                    "error": {"code": "UNAUTHORIZED", "message": "Missing Authorization header", "details": None},
                }
            headers = {"Authorization": "Bearer t0k3n"}
            page = await client.get(prefix, headers=headers)
            assert page.status_code == 200 and f'<meta name="rq-prefix" content="{prefix}">' in page.text
            assert (await client.get(f"{prefix}/js/app.js", headers=headers)).status_code == 200
            assert (await client.get(f"{prefix}/nope.css", headers=headers)).status_code == 404
            # A browser opening the page gets a sign-in page; the cookie it sets opens the page and assets.
            browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
            sign_in = await client.get(prefix, headers=browser)
            assert sign_in.status_code == 401 and sign_in.headers["content-type"].startswith("text/html")
            assert 'id="token-input"' in sign_in.text and "rustqueue_token=" in sign_in.text
            assert f'Path=" + {json.dumps(prefix)}' in sign_in.text
            wrong = await client.get(prefix, headers={**browser, "Cookie": "rustqueue_token=nope"})
            assert wrong.status_code == 401 and "not accepted" in wrong.text
            with_cookie = await client.get(prefix, headers={**browser, "Cookie": "rustqueue_token=t0k3n"})
            assert with_cookie.status_code == 200 and 'src="' in with_cookie.text
            assert (
                await client.get(f"{prefix}/js/api.js", headers={"Cookie": "rustqueue_token=t0k3n"})
            ).status_code == 200
            # The cookie opens static files only: every data route still requires the header.
            for path in (f"{prefix}/api/overview", "/api/v1/queues"):
                refused = await client.get(path, headers={"Cookie": "rustqueue_token=t0k3n"})
                assert refused.status_code == 401, path
            denied = await client.get(f"{prefix}/api/overview")
            assert denied.json()["error"]["message"] == "Missing Authorization header"
            wrong_header = await client.post(
                f"{prefix}/api/queues", json={"name": "q"}, headers={"Authorization": "Bearer no"}
            )
            assert wrong_header.status_code == 401
            assert not [q for q in await engine.queues() if q.name == "q"]
            assert (await client.get(f"{prefix}/api/overview", headers=headers)).status_code == 200
            session = (await client.get(f"{prefix}/api/session", headers=headers)).json()
            assert session == {"ok": True, "principal": "token-0", "anonymous": False}
            created = await client.post(f"{prefix}/api/queues", json={"name": "q"}, headers=headers)
            assert created.status_code == 201
    finally:
        await close_engine(engine)


async def test_without_auth_the_page_and_assets_are_public() -> None:
    engine = await make_engine()
    try:
        async with AsyncTestClient(create_app(engine)) as client:
            assert (await client.get("/dashboard")).status_code == 200
            assert (await client.get("/dashboard/js/app.js")).status_code == 200
    finally:
        await close_engine(engine)


def test_config_validation() -> None:
    assert dashboard_config(None) == DashboardConfig()
    config = dashboard_config(Config(data={"dashboard": {"path_prefix": "admin", "log_level": "warning"}}))
    assert config.path_prefix == "/admin" and config.log_level_number == logging.WARNING
    for bad in ({"path_prefix": "/"}, {"path_prefix": "/api/v1/x"}, {"sample_interval_s": 0}, {"log_level": "LOUD"}):
        with pytest.raises(ConfigError):
            dashboard_config(Config(data={"dashboard": bad}))


async def test_lifespan_samples_in_the_background_and_captures_logs() -> None:
    engine = await make_engine()
    try:
        config = DashboardConfig(sample_interval_s=0.2, series_points=5)
        state = state_for(engine, config)
        await engine.push("bg", "task", {})
        root = logging.getLogger()
        async with dashboard_lifespan(engine, config) as running:
            assert running is state and state.sampling_in_background
            assert state.logs in root.handlers
            for _ in range(100):
                if len(state.sampler.points_of("bg")) >= 3:
                    break
                await asyncio.sleep(0.05)
            points = state.sampler.points_of("bg")
            assert len(points) >= 3 and points[-1]["pending"] == 1
            logging.getLogger("rustqueue.test").warning("captured while serving")
            lines, _ = state.logs.since(0, 100)
            assert "captured while serving" in [line["message"] for line in lines]
        assert not state.sampling_in_background
        assert state.logs not in root.handlers
        for _ in range(5):
            await state.sampler.sample()
        assert len(state.sampler.points_of("bg")) == 5  # bounded by series_points
    finally:
        await close_engine(engine)


async def test_series_forgets_deleted_queues(client: AsyncTestClient[Any]) -> None:
    await client.post("/api/v1/queues/gone/jobs", json={"name": "t", "data": {}})
    assert (await client.get("/dashboard/api/queues/gone/series")).json()["points"]
    await client.delete("/api/v1/queues/gone")
    state = state_for(client.app.state["rustqueue_engine"])
    await state.sampler.sample()
    assert state.sampler.points_of("gone") == []


def test_the_sign_in_page_escapes_what_it_embeds() -> None:
    from rustqueue_dashboard.assets import sign_in_page

    page = sign_in_page("/ops</script><script>alert(1)//", "denied <b>now</b>").decode()
    assert "</script><script>alert(1)" not in page
    assert "denied &lt;b&gt;now&lt;/b&gt;" in page
