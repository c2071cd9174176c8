"""The outbox and the registry are durable: both survive a restart of the plugin."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rustqueue_webhooks import verify_signature
from rustqueue_webhooks.config import StaticWebhook, WebhooksConfig
from rustqueue_webhooks.service import WebhookService

from rustqueue_core.errors import ConfigError


async def test_webhooks_survive_a_restart(service_factory: Any, receiver: Any) -> None:
    first = await service_factory()
    hook = await first.create_webhook(receiver.url, ["job.completed"], ["emails"], "s")
    await first.stop()
    second = await service_factory()
    (again,) = second.list_webhooks()
    assert again.to_wire() == hook.to_wire()
    assert again.secret == "s"


async def test_buffered_events_are_flushed_at_stop_and_sent_after_restart(
    service_factory: Any, receiver: Any, make_event: Any
) -> None:
    first = await service_factory()
    await first.create_webhook(receiver.url, secret="k")
    receiver.default = "hang"
    first.on_events([make_event("job.completed", job_id="in-flight")])
    await receiver.wait_for(1)  # this one is in flight when the plugin stops
    first.on_events([make_event("job.completed", job_id="buffered")])  # not yet written
    await first.stop()
    assert first.delivered_total == 0

    receiver.default = 200
    second = await service_factory()
    reqs = await receiver.wait_for(3)
    await asyncio.sleep(0.1)
    ids = sorted(r.json()["data"]["job_id"] for r in reqs[1:])
    assert ids == ["buffered", "in-flight"]
    assert all(verify_signature("k", r.body, r.headers["x-rustqueue-signature"]) for r in reqs)
    assert second.delivered_total == 2
    assert await second.outbox_counts() == {}


async def test_retry_schedule_is_kept_across_restart(service_factory: Any, receiver: Any, make_event: Any) -> None:
    receiver.script = [500]
    first = await service_factory(retry_base_delay_ms=300)
    hook = await first.create_webhook(receiver.url)
    first.on_events([make_event("job.completed")])
    await receiver.wait_for(1)

    async def attempt_recorded() -> bool:
        rows = await first.list_deliveries(hook.id, "pending")
        return bool(rows) and rows[0].attempts == 1

    for _ in range(1000):  # at most 10 s
        if await attempt_recorded():
            break
        await asyncio.sleep(0.01)
    await first.stop()
    second = await service_factory(retry_base_delay_ms=300)
    (pending,) = await second.list_deliveries(hook.id, "pending")
    assert pending.attempts == 1 and pending.last_status == 500
    reqs = await receiver.wait_for(2)
    assert reqs[1].at - reqs[0].at >= 0.29


async def test_static_endpoints_are_registered_and_pruned(tmp_path: Path, receiver: Any, make_event: Any) -> None:
    path = str(tmp_path / "w.db")
    endpoint = StaticWebhook(url=receiver.url, events=["job.completed"], queues=["emails"], secret="x")
    config = WebhooksConfig(enabled=True, store_path=path, endpoints=[endpoint]).validate()
    service = WebhookService(config, path)
    await service.start()
    try:
        (hook,) = service.list_webhooks()
        assert hook.origin == "config" and hook.events == ["job_completed"]
        service.on_events([make_event("job.completed")])
        (req,) = await receiver.wait_for(1)
        assert req.headers["x-rustqueue-webhook-id"] == hook.id
        assert verify_signature("x", req.body, req.headers["x-rustqueue-signature"])
        api_hook = await service.create_webhook(receiver.url)
    finally:
        await service.stop()

    # Same config → same id; removing the endpoint from the config removes it, API ones stay.
    service = WebhookService(config, path)
    await service.start()
    assert {h.id for h in service.list_webhooks()} == {hook.id, api_hook.id}
    await service.stop()
    service = WebhookService(WebhooksConfig(enabled=True, store_path=path), path)
    await service.start()
    assert [h.id for h in service.list_webhooks()] == [api_hook.id]
    await service.stop()


def test_config_validation_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="max_concurrency"):
        WebhooksConfig(max_concurrency=0).validate()
    with pytest.raises(ConfigError, match=r"endpoints\[0\]: url must be"):
        WebhooksConfig(endpoints=[StaticWebhook(url="ftp://x")]).validate()
    with pytest.raises(ConfigError, match="unknown event"):
        WebhooksConfig(endpoints=[StaticWebhook(url="http://x", events=["job.exploded"])]).validate()


async def test_disabled_service_opens_nothing(tmp_path: Path) -> None:
    path = tmp_path / "never.db"
    service = WebhookService(WebhooksConfig(enabled=False), str(path))
    await service.start()
    assert not service.running
    service.on_events([])
    await service.stop()
    assert not path.exists()


async def test_an_unusable_store_fails_start_cleanly(tmp_path: Path) -> None:
    folder = tmp_path / "is-a-directory"
    folder.mkdir()
    service = WebhookService(WebhooksConfig(enabled=True), str(folder))
    with pytest.raises(Exception, match="unable to open database file"):
        await service.start()
    assert not service.running
    await service.stop()  # nothing to stop


async def test_store_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "w.db"
    service = WebhookService(WebhooksConfig(enabled=True), str(path))
    await service.start()
    await service.stop()
    assert _exists(path)


def _exists(path: Path) -> bool:
    return path.exists()
