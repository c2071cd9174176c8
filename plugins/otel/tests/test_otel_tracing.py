"""Traces cross from producer to worker through job metadata; counters follow event batches."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from rustqueue_otel.tracing import METADATA_KEY, OtelPlugin

from rustqueue_core.builtin.memory import MemoryStorage
from rustqueue_core.engine import RustQueue
from rustqueue_core.plugins import PluginHost


@pytest.fixture
def telemetry() -> tuple[InMemorySpanExporter, InMemoryMetricReader, OtelPlugin]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    plugin = OtelPlugin(tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader]))
    return exporter, reader, plugin


async def _engine(plugin: OtelPlugin) -> RustQueue:
    host = PluginHost.embedded([plugin])
    rq = RustQueue(MemoryStorage(), host=host)
    await rq.start()
    return rq


def _metric_points(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    points: dict[tuple[str, str], int] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    queue = str(point.attributes.get("queue", ""))
                    if hasattr(point, "value"):
                        points[(metric.name, queue)] = int(point.value)
    return points


async def test_trace_crosses_from_producer_to_worker(telemetry) -> None:
    exporter, _reader, plugin = telemetry
    rq = await _engine(plugin)
    try:
        job_id = await rq.push("emails", "send", {"to": "a@b.c"}, metadata={"tenant": "t1"})
        stored = await rq.get_job(job_id)
        assert stored is not None
        assert stored.metadata["tenant"] == "t1"
        assert "traceparent" in stored.metadata[METADATA_KEY]

        done = asyncio.Event()

        async def handler(job):  # type: ignore[no-untyped-def]
            done.set()
            return {"ok": True}

        stop = asyncio.Event()
        worker = asyncio.create_task(rq.run_worker("emails", handler, shutdown=stop, poll_interval=0.05))
        await asyncio.wait_for(done.wait(), 10)
        for _ in range(200):
            job = await rq.get_job(job_id)
            if job is not None and job.state == "completed":
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(worker, 10)
    finally:
        await rq.close()

    spans = exporter.get_finished_spans()
    producer = [s for s in spans if s.kind == SpanKind.PRODUCER]
    consumer = [s for s in spans if s.kind == SpanKind.CONSUMER]
    assert len(producer) == 1 and len(consumer) == 1
    assert consumer[0].context.trace_id == producer[0].context.trace_id
    assert consumer[0].parent is not None and consumer[0].parent.span_id == producer[0].context.span_id
    assert consumer[0].attributes["messaging.message.id"] == job_id
    assert consumer[0].status.status_code != StatusCode.ERROR


async def test_batch_push_is_one_span_and_keeps_non_object_metadata(telemetry) -> None:
    exporter, _reader, plugin = telemetry
    rq = await _engine(plugin)
    try:
        ids = await rq.push_batch(
            "q",
            [
                {"name": "a", "data": 1},
                {"name": "b", "data": 2, "options": {"metadata": ["not", "an", "object"]}},
            ],
        )
        jobs = await rq.get_jobs(ids)
    finally:
        await rq.close()
    producer = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    assert len(producer) == 1
    assert producer[0].attributes["messaging.batch.message_count"] == 2
    assert jobs[0] is not None and METADATA_KEY in jobs[0].metadata
    assert jobs[1] is not None and jobs[1].metadata == ["not", "an", "object"]


async def test_failing_job_span_records_error_and_counters_follow_events(telemetry) -> None:
    exporter, reader, plugin = telemetry
    rq = await _engine(plugin)
    try:
        job_id = await rq.push("q", "boom", {}, max_attempts=1)
        seen = asyncio.Event()

        async def handler(job):  # type: ignore[no-untyped-def]
            seen.set()
            raise RuntimeError("kaput")

        stop = asyncio.Event()
        worker = asyncio.create_task(rq.run_worker("q", handler, shutdown=stop, poll_interval=0.05))
        await asyncio.wait_for(seen.wait(), 10)
        for _ in range(200):
            job = await rq.get_job(job_id)
            if job is not None and job.state == "dlq":
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(worker, 10)
    finally:
        await rq.close()
    consumer = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert len(consumer) == 1
    assert consumer[0].status.status_code == StatusCode.ERROR
    assert "kaput" in (consumer[0].status.description or "")
    points = _metric_points(reader)
    assert points[("rustqueue.jobs.pushed", "q")] == 1
    assert points[("rustqueue.jobs.dead_lettered", "q")] == 1
