"""``rustqueue_authorize`` decides per request: a plugin can deny an action on a queue with 403."""

from __future__ import annotations

from typing import Any

import rustqueue_http.plugin as http_plugin
from litestar.testing import AsyncTestClient
from rustqueue_http.app import create_app, request_action

from rustqueue_core import hookimpl
from rustqueue_core.builtin.memory import MemoryStorage
from rustqueue_core.engine import RustQueue
from rustqueue_core.models import Principal
from rustqueue_core.plugins import PluginHost


class ReadOnlyReports:
    """Denies pushes to the ``reports`` queue; abstains on everything else."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    @hookimpl
    def rustqueue_authorize(self, principal: Principal, action: str, queue: str | None) -> bool | None:
        self.asked.append((action, queue))
        return False if (action, queue) == ("push", "reports") else None


def test_request_actions_match_the_tcp_names() -> None:
    assert request_action("POST", "/api/v1/queues/q/jobs") == ("push", "q")
    assert request_action("GET", "/api/v1/queues/q/jobs") == ("pull", "q")
    assert request_action("POST", "/api/v1/jobs/x/ack") == ("ack", None)
    assert request_action("POST", "/api/v1/jobs/x/fail") == ("fail", None)
    assert request_action("POST", "/api/v1/schedules") == ("schedule", None)
    assert request_action("GET", "/api/v1/queues/q/stats") == ("read", "q")
    assert request_action("POST", "/api/v1/queues/q/pause") == ("admin", "q")


async def test_a_denied_action_answers_403_and_others_pass() -> None:
    policy = ReadOnlyReports()
    host = PluginHost.embedded([http_plugin, policy])
    engine: Any = await RustQueue(MemoryStorage(), host=host).start()
    try:
        async with AsyncTestClient(create_app(engine)) as client:
            denied = await client.post("/api/v1/queues/reports/jobs", json={"name": "n", "data": {}})
            assert denied.status_code == 403
            assert denied.json()["error"]["code"] == "FORBIDDEN"
            allowed = await client.post("/api/v1/queues/emails/jobs", json={"name": "n", "data": {}})
            assert allowed.status_code == 201
            assert (await client.get("/api/v1/queues")).status_code == 200
        assert ("push", "reports") in policy.asked and ("read", None) in policy.asked
        assert await engine.counts("reports") == (await engine.counts("nothing"))  # nothing was stored
    finally:
        await engine.close()
