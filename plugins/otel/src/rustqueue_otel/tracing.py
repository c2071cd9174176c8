"""OpenTelemetry traces and metrics for rustqueue.

* A producer span per push call (one per batch), whose context is written into each job's metadata under
  ``metadata["otel"]`` as W3C ``traceparent``/``tracestate``, so the trace crosses to whichever worker runs it.
* A consumer span per job run (worker middleware, composed once per worker start), parented by the
  producer's context read back from the job.
* Counters per event batch: jobs pushed / completed / retried / dead-lettered / cancelled, by queue.

Providers: explicit ones passed to :class:`OtelPlugin`, else the global providers when the application has
set them, else providers built from the standard ``OTEL_*`` environment variables (``serve``).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind, Status, StatusCode

from rustqueue_core import hookimpl
from rustqueue_core.models import Job, JobEvent, NewJob, Principal, WorkerInfo

logger = logging.getLogger("rustqueue.otel")

METADATA_KEY = "otel"
INSTRUMENTATION = "rustqueue"

#: Engine event kind → counter name.
COUNTED_EVENTS = {
    "job.pushed": "rustqueue.jobs.pushed",
    "job.completed": "rustqueue.jobs.completed",
    "job.retrying": "rustqueue.jobs.retried",
    "job.dlq": "rustqueue.jobs.dead_lettered",
    "job.cancelled": "rustqueue.jobs.cancelled",
    "job.claimed": "rustqueue.jobs.claimed",
}

Middleware = Callable[[Job, Callable[[Job], Awaitable[Any]]], Awaitable[Any]]


def _providers_from_environment() -> tuple[trace.TracerProvider, metrics.MeterProvider]:
    """SDK providers configured by the standard variables: ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_EXPORTER`` /
    ``OTEL_METRICS_EXPORTER`` (``otlp`` default, ``console``, ``none``) and the OTLP endpoint variables."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        MetricReader,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "rustqueue")})
    tracer_provider = TracerProvider(resource=resource)
    traces = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if traces == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif traces == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    readers: list[MetricReader] = []
    metrics_exporter = os.environ.get("OTEL_METRICS_EXPORTER", "otlp").strip().lower()
    if metrics_exporter == "console":
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    elif metrics_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    return tracer_provider, MeterProvider(resource=resource, metric_readers=readers)


def _global_provider_is_set() -> bool:
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


#: Any of these set means the operator asked for export; without them the plugin stays on the global
#: (no-op unless the application installed one) providers instead of sending to a collector nobody runs.
EXPORT_VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)


def _export_requested() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name) for name in EXPORT_VARIABLES)


class OtelPlugin:
    """Per-host plugin state. Pass providers to trace into your own pipeline (tests use in-memory ones)."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._owned: list[Any] = []
        build_own = tracer_provider is None and meter_provider is None and not _global_provider_is_set()
        if build_own and _export_requested():
            tracer_provider, meter_provider = _providers_from_environment()
            self._owned = [tracer_provider, meter_provider]
        self.tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION, meter_provider=meter_provider)
        self.counters = {
            name: meter.create_counter(name, unit="{job}", description=f"jobs per engine event {kind}")
            for kind, name in COUNTED_EVENTS.items()
        }
        self.run_duration = meter.create_histogram(
            "rustqueue.job.run.duration", unit="s", description="time a worker spent running a job"
        )

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def rustqueue_before_push(self, jobs: Sequence[NewJob], principal: Principal | None) -> None:
        if not jobs:
            return
        queues = sorted({job.queue for job in jobs})
        attributes: dict[str, Any] = {
            "messaging.system": "rustqueue",
            "messaging.operation.type": "send",
            "messaging.destination.name": queues[0] if len(queues) == 1 else ",".join(queues),
            "messaging.batch.message_count": len(jobs),
        }
        with self.tracer.start_as_current_span(
            f"send {attributes['messaging.destination.name']}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            inject(carrier)
        if not carrier:
            return
        for job in jobs:
            metadata = job.options.metadata
            if metadata is None:
                job.options.metadata = {METADATA_KEY: dict(carrier)}
            elif isinstance(metadata, dict) and METADATA_KEY not in metadata:
                metadata[METADATA_KEY] = dict(carrier)

    @hookimpl
    def rustqueue_worker_middleware(self, queue: str, worker: WorkerInfo) -> Middleware:
        tracer = self.tracer
        run_duration = self.run_duration

        async def traced(job: Job, call_next: Callable[[Job], Awaitable[Any]]) -> Any:
            carrier = job.metadata.get(METADATA_KEY) if isinstance(job.metadata, Mapping) else None
            parent = extract(carrier) if isinstance(carrier, Mapping) else None
            attributes: dict[str, str | int] = {
                "messaging.system": "rustqueue",
                "messaging.operation.type": "process",
                "messaging.destination.name": job.queue,
                "messaging.message.id": job.id,
                "rustqueue.job.name": job.name,
                "rustqueue.job.attempt": job.attempt,
                "rustqueue.consumer_id": worker.consumer_id,
            }
            token = otel_context.attach(parent) if parent is not None else None
            try:
                with tracer.start_as_current_span(
                    f"process {job.queue}", kind=SpanKind.CONSUMER, attributes=attributes
                ) as span:
                    import time

                    started = time.perf_counter()
                    try:
                        result = await call_next(job)
                    except BaseException as exc:
                        span.record_exception(exc)
                        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                        run_duration.record(time.perf_counter() - started, {"queue": job.queue, "outcome": "error"})
                        raise
                    run_duration.record(time.perf_counter() - started, {"queue": job.queue, "outcome": "ok"})
                    return result
            finally:
                if token is not None:
                    otel_context.detach(token)

        return traced

    @hookimpl
    def rustqueue_jobs_changed(self, events: Sequence[JobEvent]) -> None:
        tally: Counter[tuple[str, str]] = Counter(
            (event.kind, event.queue) for event in events if event.kind in COUNTED_EVENTS
        )
        for (kind, queue), count in tally.items():
            self.counters[COUNTED_EVENTS[kind]].add(count, {"queue": queue})

    def shutdown(self) -> None:
        for provider in self._owned:
            try:
                provider.shutdown()
            except Exception:  # shutting down an exporter must never fail the server's stop
                logger.exception("OpenTelemetry provider shutdown failed")
        self._owned = []
