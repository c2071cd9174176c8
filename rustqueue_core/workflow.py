"""Multi-engine dispatch (``WorkerRegistry``) and the in-process ``Workflow`` runtime (SEMANTICS §7.4, §7.5).

A ``WorkerRegistry`` maps engine names to processor factories and queues to default engines; a job's
``metadata.engine`` overrides its queue's route. A ``Workflow`` chains async steps in memory: sequential
stages and fan-outs joined in step order. It is not durable; durable pipelines use DAG flows and
follow-ups.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from rustqueue_core.errors import ValidationError
from rustqueue_core.models import Job

__all__ = [
    "JobProcessor",
    "UnroutableJob",
    "WorkerRegistry",
    "Workflow",
    "WorkflowJoin",
    "WorkflowStep",
]


# =========================================================================== registry


@runtime_checkable
class JobProcessor(Protocol):
    """What a registered factory returns: one processor per job."""

    async def process(self, job: Job) -> Any: ...


ProcessorFactory = Callable[[], JobProcessor]


class UnroutableJob(ValidationError):
    """A claimed job that no registered engine can process. Workers fail it with ``fail_reason``
    verbatim instead of the usual ``<Type>: <message>`` text, so the stored error is the bare reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.fail_reason = message


def _unrouted_message(queue: str) -> str:
    return f"No worker route matched queue '{queue}' (metadata.engine or queue route required)"


def _unknown_engine_message(engine: str) -> str:
    return f"No worker factory registered for engine '{engine}'"


class WorkerRegistry:
    """Engine factories by name and default engines by queue.

    ``register_engine("ocr", OcrProcessor)`` then ``route_queue("scans", "ocr")``; a job may name
    another engine in ``metadata.engine``. Names are case-insensitive. One registry may serve several
    engines and workers; it is only read after setup.
    """

    def __init__(self) -> None:
        self._factories: dict[str, ProcessorFactory] = {}
        self._routes: dict[str, str] = {}

    def register_engine(self, name: str, factory: ProcessorFactory) -> WorkerRegistry:
        """Register (or replace) the factory of engine ``name``; ``factory()`` builds a processor."""
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("engine name must be a non-empty string")
        if not callable(factory):
            raise ValidationError(f"factory for engine '{name}' must be callable")
        self._factories[name.strip().lower()] = factory
        return self

    def route_queue(self, queue: str, engine: str) -> WorkerRegistry:
        """Send jobs of ``queue`` without ``metadata.engine`` to ``engine`` (registered first)."""
        key = engine.strip().lower()
        if key not in self._factories:
            raise ValidationError(_unknown_engine_message(key))
        self._routes[queue] = key
        return self

    @property
    def engines(self) -> list[str]:
        return sorted(self._factories)

    @property
    def routes(self) -> dict[str, str]:
        return dict(self._routes)

    def can_route(self, queue: str) -> bool:
        """Whether jobs of ``queue`` can possibly be routed: the queue has a route, or some engine is
        registered that a job's ``metadata.engine`` may name. Checked before claiming (D10)."""
        return queue in self._routes or bool(self._factories)

    def resolve_engine(self, queue: str, metadata: Any) -> str | None:
        """``metadata.engine`` (lowercased) first, then the queue's route; None when neither exists."""
        if isinstance(metadata, Mapping):
            named = metadata.get("engine")
            if isinstance(named, str) and named.strip():
                return named.strip().lower()
        return self._routes.get(queue)

    def resolve(self, job: Job) -> JobProcessor:
        """A fresh processor for ``job``; raises :class:`UnroutableJob` when none applies."""
        engine = self.resolve_engine(job.queue, job.metadata)
        if engine is None:
            raise UnroutableJob(_unrouted_message(job.queue))
        factory = self._factories.get(engine)
        if factory is None:
            raise UnroutableJob(_unknown_engine_message(engine))
        return factory()

    def check_queue(self, queue: str) -> None:
        """Raise ``VALIDATION_ERROR`` before any claim when ``queue`` can never be routed."""
        if not self.can_route(queue):
            raise ValidationError(_unrouted_message(queue))

    async def process(self, job: Job) -> Any:
        """Resolve a processor for ``job`` and run it: usable directly as a ``run_worker`` handler."""
        return await self.resolve(job).process(job)

    async def __call__(self, job: Job) -> Any:
        return await self.process(job)


# =========================================================================== workflow


@runtime_checkable
class WorkflowStep(Protocol):
    """A step object: ``engine`` names what runs it (informational), ``execute`` does the work."""

    engine: str

    async def execute(self, input: Any) -> Any: ...


@runtime_checkable
class WorkflowJoin(Protocol):
    """Combines a fan-out's outputs, given in step order."""

    async def join(self, outputs: list[Any]) -> Any: ...


StepLike = WorkflowStep | Callable[[Any], Awaitable[Any]]
JoinLike = WorkflowJoin | Callable[[list[Any]], Awaitable[Any]]


def _step_callable(step: Any) -> Callable[[Any], Any]:
    execute = getattr(step, "execute", None)
    if callable(execute):
        return execute  # type: ignore[no-any-return]
    if callable(step):
        return step  # type: ignore[no-any-return]
    raise TypeError(f"workflow step must be an async callable or have an execute() method, got {step!r}")


def _join_callable(join: Any) -> Callable[[list[Any]], Any]:
    method = getattr(join, "join", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    if callable(join):
        return join  # type: ignore[no-any-return]
    raise TypeError(f"workflow join must be an async callable or have a join() method, got {join!r}")


async def _call(fn: Callable[[Any], Any], value: Any) -> Any:
    result = fn(value)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _collect(outputs: list[Any]) -> list[Any]:
    return outputs


class _Stage:
    __slots__ = ("join", "steps")

    def __init__(self, steps: list[Callable[[Any], Any]], join: Callable[[list[Any]], Any] | None) -> None:
        self.steps = steps
        self.join = join  # None marks a sequential stage


class Workflow:
    """In-process pipeline: ``Workflow().then(a).fan_out([b, c]).then(d)``; ``await wf.execute(x)``.

    Stages run in order, each output feeding the next. A fan-out runs its steps concurrently, each on
    its own deep copy of the input, and joins their outputs in step order (default: the list). The
    first error cancels the stage's other steps and propagates unchanged.
    """

    def __init__(self) -> None:
        self._stages: list[_Stage] = []

    def __len__(self) -> int:
        return len(self._stages)

    def then(self, step: StepLike) -> Workflow:
        self._stages.append(_Stage([_step_callable(step)], None))
        return self

    def fan_out(self, steps: Sequence[StepLike]) -> Workflow:
        return self.fan_out_with_join(steps, _collect)

    def fan_out_with_join(self, steps: Sequence[StepLike], join: JoinLike) -> Workflow:
        steps = list(steps)
        if not steps:
            raise ValueError("fan_out requires at least one step")
        self._stages.append(_Stage([_step_callable(s) for s in steps], _join_callable(join)))
        return self

    async def execute(self, input: Any = None) -> Any:
        value = input
        for stage in self._stages:
            if stage.join is None:
                value = await _call(stage.steps[0], value)
            else:
                outputs = await _run_parallel(stage.steps, value)
                value = await _call(stage.join, outputs)
        return value


async def _run_parallel(steps: list[Callable[[Any], Any]], value: Any) -> list[Any]:
    tasks = [asyncio.ensure_future(_call(step, copy.deepcopy(value))) for step in steps]
    try:
        pending: set[asyncio.Future[Any]] = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            # Several may fail in the same wake-up: report the earliest step among them.
            failed = [t for t in tasks if t in done and not t.cancelled() and t.exception() is not None]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
        return [t.result() for t in tasks]
    finally:
        unfinished = [t for t in tasks if not t.done()]
        for task in unfinished:
            task.cancel()
        if unfinished:
            # Siblings must be gone before the error propagates (D22); their own errors are moot.
            await asyncio.gather(*unfinished, return_exceptions=True)
