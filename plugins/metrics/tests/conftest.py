"""Fixtures of the metrics tests: an engine with the metrics lifespan entered, and a scrape parser."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from rustqueue_metrics.config import MetricsConfig
from rustqueue_metrics.plugin import MetricsPlugin

from rustqueue_core.builtin.memory import MemoryStorage
from rustqueue_core.clock import ManualClock
from rustqueue_core.engine import RustQueue
from rustqueue_core.plugins import PluginHost
from rustqueue_core.settings import EngineSettings


class Scrape:
    """Parsed exposition: ``families[name]`` and ``value(sample_name, **labels)``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample_name: str, **labels: str) -> float:
        for family in self.families.values():
            for sample in family.samples:
                if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        raise KeyError(f"{sample_name} {labels} not in scrape")


@pytest.fixture
def parse() -> Callable[[str | bytes], Scrape]:
    def parse_text(text: str | bytes) -> Scrape:
        return Scrape(text.decode() if isinstance(text, bytes) else text)

    return parse_text


@pytest_asyncio.fixture
async def metrics_engine() -> AsyncIterator[Callable[..., Any]]:
    """``await metrics_engine(**config)`` → (engine, metrics): a started engine over memory storage with
    the http plugin's hook spec loaded and the metrics lifespan entered; a manual clock, housekeeping off."""
    stack = contextlib.AsyncExitStack()

    async def start(plugins: tuple[Any, ...] = (), **config: Any) -> tuple[RustQueue, Any]:
        plugin = MetricsPlugin(MetricsConfig(**config))
        host = PluginHost.embedded(["http", *plugins])
        host.register(plugin, "metrics")
        engine = RustQueue(MemoryStorage(), host=host, clock=ManualClock(), settings=EngineSettings(housekeeping=False))
        await engine.start()
        stack.push_async_callback(engine.close)
        metrics = await stack.enter_async_context(plugin.run(engine))
        return engine, metrics

    async with stack:
        yield start
