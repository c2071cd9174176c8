"""The push pipeline (SEMANTICS §2.3): one validation pass, one storage insert per batch."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from rustqueue_core.engine_base import EngineBase
from rustqueue_core.errors import DuplicateKey, Overloaded, QueuePaused, RustQueueError, ValidationError
from rustqueue_core.ids import new_ids
from rustqueue_core.memory_pressure import CRITICAL
from rustqueue_core.models import Job, JobOptions, NewJob, Principal, QueueConfig, copy_job
from rustqueue_core.ratelimit import TokenBucket
from rustqueue_core.sortkey import complement, sort_key, sort_key_prefix, timestamp_us
from rustqueue_core.storage import InsertConflict
from rustqueue_core.validation import (
    check_data,
    check_job_name,
    check_options,
    check_priority,
    check_queue_name,
    options_from_mapping,
)

_UNSET: Any = object()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EMPTY_OPTIONS = JobOptions()
_canonical = msgspec.json.Encoder(order="sorted")
_DEAD_PARENT = frozenset({"dlq", "cancelled"})
_STATE_DEBUG = {"dlq": "Dlq", "cancelled": "Cancelled"}

Taken = list[tuple[TokenBucket, int]]
_MAX_CACHED_PLANS = 10_000


class _QueuePlan(msgspec.Struct, kw_only=True):
    config: QueueConfig
    max_attempts: int
    backoff: str
    backoff_delay_ms: int
    timeout_ms: int | None
    ttl_ms: int | None
    remove_on_complete: bool
    remove_on_fail: bool
    plain: _PlainJob | None = None


class _PlainJob(msgspec.Struct, kw_only=True):
    """What a job pushed without options to one queue gets (see ``_build``): every field but the id,
    name, data, times, sort key and content key is the template's. Cached with the queue's plan."""

    template: Job
    allow_duplicates: bool
    ttl_ms: int | None
    key_prefix: bytes
    complement_tail: bool
    ordering: str

    @classmethod
    def of(cls, queue: str, plan: _QueuePlan) -> _PlainJob:
        config = plan.config
        priority: int | str = "" if config.priority_kind == "text" else 0
        key_prefix, complement_tail = sort_key_prefix(config.ordering, priority, False)
        template = Job(
            id="",
            name="",
            queue=queue,
            state="waiting",
            priority=priority,
            created_at=_EPOCH,
            updated_at=_EPOCH,
            max_attempts=plan.max_attempts,
            backoff=plan.backoff,
            backoff_delay_ms=plan.backoff_delay_ms,
            ttl_ms=plan.ttl_ms,
            timeout_ms=plan.timeout_ms,
            lifo=False,
            remove_on_complete=plan.remove_on_complete,
            remove_on_fail=plan.remove_on_fail,
        )
        return cls(
            template=template,
            allow_duplicates=config.allow_duplicates,
            ttl_ms=plan.ttl_ms,
            key_prefix=key_prefix,
            complement_tail=complement_tail,
            ordering=config.ordering,
        )

    def at(self, now: datetime, created_us: int) -> tuple[bytes, datetime | None]:
        """The sort key up to the id, and ``expires_at``, of such jobs created at ``now``."""
        created = created_us.to_bytes(8, "big")
        head = self.key_prefix + (complement(created) if self.complement_tail else created)
        return head, (now + timedelta(milliseconds=self.ttl_ms) if self.ttl_ms else None)


def content_key(name: str, data: Any) -> str:
    """Implicit unique key of a queue with ``allow_duplicates = false`` (SEMANTICS §2.12 rule 4)."""
    return "content:" + hashlib.sha256(_canonical.encode([name, data])).hexdigest()


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def new_job_from_mapping(item: Mapping[str, Any], queue: str | None, index: int | None) -> NewJob:
    """``{"name", "data"?, "options"?: {...}}`` or the flattened form; ``queue`` fills a missing one."""
    raw_options = item.get("options")
    if raw_options is not None and isinstance(raw_options, Mapping):
        options = options_from_mapping(raw_options, index)
    else:
        options = options_from_mapping(item, index)
    return NewJob(
        queue=item.get("queue") or queue or "",
        name=item.get("name", ""),
        data=item.get("data", {}),
        options=options,
    )


class PushMixin(EngineBase):
    # ------------------------------------------------------------------ public API
    async def push(
        self, queue: str, name: str, data: Any = _UNSET, *, principal: Principal | None = None, **options: Any
    ) -> str:
        """Push one job; keywords are ``JobOptions`` keys. Returns its id."""
        opts = options_from_mapping(options, strict=True) if options else JobOptions()
        job = NewJob(queue=queue, name=name, data={} if data is _UNSET else data, options=opts)
        return (await self._push([job], principal, index_names=False))[0]

    async def push_batch(
        self,
        queue: str | None,
        jobs: Sequence[NewJob | Mapping[str, Any]],
        *,
        principal: Principal | None = None,
    ) -> list[str]:
        """Push many jobs atomically (one storage transaction); ids in input order."""
        items: list[NewJob] = []
        for index, item in enumerate(jobs):
            if type(item) is dict:
                items.append(new_job_from_mapping(item, queue, index))
            elif isinstance(item, NewJob):
                if not item.queue and queue:
                    item = msgspec.structs.replace(item, queue=queue)
                items.append(item)
            elif isinstance(item, Mapping):
                items.append(new_job_from_mapping(item, queue, index))
            else:
                raise ValidationError("each job must be a mapping or a NewJob", index=index)
        return await self._push(items, principal, index_names=True)

    async def push_jobs(self, jobs: Sequence[NewJob], *, principal: Principal | None = None) -> list[str]:
        """The one push pipeline (SEMANTICS §2.3) every path ends in."""
        return await self._push(list(jobs), principal, index_names=len(jobs) != 1)

    async def prepare_push(self, jobs: Sequence[NewJob], *, principal: Principal | None = None) -> PreparedPush:
        """Steps 1 to 9 of the push pipeline without the insert, for backends that insert in the caller's
        own transaction (transactional enqueue). Insert ``prepared.jobs`` (at ``prepared.now``), then call
        ``prepared.committed()`` once the transaction commits, or ``prepared.abandoned()`` if it does not;
        an ``InsertConflict`` from the insert becomes ``prepared.conflict(exc)``."""
        self._gate_mutation()
        items = list(jobs)
        now = self.clock.now()
        index_names = len(items) != 1
        built, taken = await self._prepare(items, principal, now, index_names=index_names) if items else ([], [])
        return PreparedPush(self, built, now, taken, index_names)

    # ------------------------------------------------------------------ pipeline
    async def _push(self, items: list[NewJob], principal: Principal | None, *, index_names: bool) -> list[str]:
        self._gate_mutation()
        if not items:
            return []
        now = self.clock.now()
        jobs, taken = await self._prepare(items, principal, now, index_names=index_names)
        prepared = PreparedPush(self, jobs, now, taken, index_names)
        try:
            await self.storage.insert_jobs(jobs, now)
        except InsertConflict as conflict:
            raise prepared.conflict(conflict) from None
        except BaseException:
            prepared.abandoned()
            raise
        prepared.committed()
        return prepared.ids

    def _refund(self, taken: Taken) -> None:
        for bucket, n in taken:
            bucket.refund(n)

    def _after_insert(self, jobs: Sequence[Job], now: datetime) -> None:
        mono = self.clock.monotonic()
        per_queue: dict[str, int] = {}
        for job in jobs:
            per_queue[job.queue] = per_queue.get(job.queue, 0) + 1
        for queue, n in per_queue.items():
            counters = self._counters.of(queue)
            counters.published += n
            counters.publish_rate.add(n, mono)
        self._wake(per_queue.keys())
        for job in jobs:
            if isinstance(job.metadata, dict) and "follow_ups" in job.metadata:
                self._track_followups(job.id)
        if self._has_consumers:
            self._emit([self._event("job.pushed", j.id, j.queue, now, state=j.state, name=j.name) for j in jobs])

    async def _prepare(
        self,
        items: list[NewJob],
        principal: Principal | None,
        now: datetime,
        *,
        index_names: bool,
        completing: frozenset[str] = frozenset(),
    ) -> tuple[list[Job], Taken]:
        """Steps 2 to 9: hook, validation, pressure, pause, rate tokens, build, dependencies.
        Returns the jobs to insert and the tokens taken (refund them if the insert fails)."""
        host = self.host
        if host is not None and getattr(host, "has_before_push", False):
            host.before_push(items, principal)
        configs = self._configs
        queue_sizes: dict[str, int] = {}
        # Names repeat within a batch: an object already checked needs no second look.
        checked_queue: object = _UNSET
        checked_name: object = _UNSET
        for i, item in enumerate(items):
            index = i if index_names else None
            queue = item.queue
            if queue is not checked_queue:
                check_queue_name(queue, index)
                checked_queue = queue
            if item.name is not checked_name:
                check_job_name(item.name, index)
                checked_name = item.name
            check_data(item.data, index)
            opts = item.options
            if opts is not _EMPTY_OPTIONS and opts != _EMPTY_OPTIONS:
                check_options(opts, index)
                if opts.priority is not None:
                    config = configs.get(queue)
                    check_priority(opts.priority, config.priority_kind if config else "numeric", index)
            queue_sizes[queue] = queue_sizes.get(queue, 0) + 1
        if self._memory.level == CRITICAL:
            raise Overloaded()
        for queue in queue_sizes:
            config = configs.get(queue)
            if config is not None and config.paused:
                raise QueuePaused(queue)
        taken = self._take_tokens(queue_sizes)
        try:
            jobs = self._build(items, now)
            if any(job.depends_on for job in jobs):
                await self._resolve_dependencies(jobs, now, index_names, completing)
        except BaseException:
            self._refund(taken)
            raise
        return jobs, taken

    def _take_tokens(self, queue_sizes: Mapping[str, int]) -> Taken:
        taken: Taken = []
        limiter = self._limiter
        mono = self.clock.monotonic()
        for queue, n in queue_sizes.items():
            bucket = limiter.bucket(queue)
            if bucket is None:
                continue
            try:
                bucket.take(n, mono, queue)
            except RustQueueError:
                self._refund(taken)
                self._counters.of(queue).rate_limited += 1
                raise
            taken.append((bucket, n))
        return taken

    def _queue_plan(self, queue: str) -> _QueuePlan:
        """Per-queue constants: ordering and the resolved defaults chain. Cached while the queue's
        config object and the engine's defaults are the same objects (a config change replaces them)."""
        stored = self._configs.get(queue)
        s = self.settings.job_defaults
        cached = self._plan_cache.get(queue)
        if (
            cached is not None
            and cached[0] is stored
            and cached[1] is s
            and (stored is None or cached[2] is stored.job_defaults)
        ):
            hit: _QueuePlan = cached[3]
            return hit
        config = stored or QueueConfig(name=queue)
        q = config.job_defaults
        plan = _QueuePlan(
            config=config,
            max_attempts=_first(q.max_attempts, s.max_attempts, 3),
            backoff=_first(q.backoff, s.backoff, "exponential"),
            backoff_delay_ms=_first(q.backoff_delay_ms, s.backoff_delay_ms, 1000),
            timeout_ms=_first(q.timeout_ms, s.timeout_ms),
            ttl_ms=_first(q.ttl_ms, s.ttl_ms),
            remove_on_complete=bool(_first(q.remove_on_complete, s.remove_on_complete)),
            remove_on_fail=bool(_first(q.remove_on_fail, s.remove_on_fail)),
        )
        plan.plain = _PlainJob.of(queue, plan)
        if len(self._plan_cache) >= _MAX_CACHED_PLANS:
            self._plan_cache.clear()
        self._plan_cache[queue] = (stored, s, None if stored is None else stored.job_defaults, plan)
        return plan

    def _build(self, items: list[NewJob], now: datetime) -> list[Job]:
        created_us = timestamp_us(now)
        ids = new_ids(len(items))
        jobs: list[Job] = []
        plans: dict[str, _QueuePlan] = {}
        # Per queue, the parts of jobs without options (most jobs of a batch) that depend on ``now``.
        plain: dict[str, tuple[_PlainJob, bytes, datetime | None]] = {}
        empty = _EMPTY_OPTIONS
        for (job_id, raw_id), item in zip(ids, items, strict=True):
            o = item.options
            plain_options = o is empty or o == empty
            if plain_options or (
                # options that only override per-job scalars (priority, attempts, backoff, timeout,
                # removal): the template path with those fields set, not the full constructor
                not o.delay_ms
                and o.ttl_ms is None
                and o.unique_key is None
                and not o.tags
                and o.group_id is None
                and not o.lifo
                and o.custom_id is None
                and o.metadata is None
                and not o.depends_on
                and o.flow_id is None
            ):
                entry = plain.get(item.queue)
                if entry is None:
                    plan = plans.get(item.queue)
                    if plan is None:
                        plan = plans[item.queue] = self._queue_plan(item.queue)
                    assert plan.plain is not None
                    entry = plain[item.queue] = (plan.plain, *plan.plain.at(now, created_us))
                spec, key_head, expires_at = entry
                # A copy of the queue's template with the per-job fields set: cheaper than the constructor.
                job = copy_job(spec.template)
                job.id = job_id
                job.name = item.name
                job.data = item.data
                job.created_at = now
                job.updated_at = now
                job.logs = []
                job.tags = []
                job.depends_on = []
                job.expires_at = expires_at
                if plain_options or o.priority is None:
                    job.sort_key = key_head + (complement(raw_id) if spec.complement_tail else raw_id)
                else:
                    job.priority = o.priority
                    job.sort_key = sort_key(spec.ordering, o.priority, False, created_us, raw_id)
                if not plain_options:
                    if o.max_attempts is not None:
                        job.max_attempts = o.max_attempts
                    if o.backoff is not None:
                        job.backoff = o.backoff
                    if o.backoff_delay_ms is not None:
                        job.backoff_delay_ms = o.backoff_delay_ms
                    if o.timeout_ms is not None:
                        job.timeout_ms = o.timeout_ms
                    if o.remove_on_complete is not None:
                        job.remove_on_complete = o.remove_on_complete
                    if o.remove_on_fail is not None:
                        job.remove_on_fail = o.remove_on_fail
                if not spec.allow_duplicates:
                    job.unique_key = content_key(item.name, item.data)
                jobs.append(job)
                continue
            plan = plans.get(item.queue)
            if plan is None:
                plan = plans[item.queue] = self._queue_plan(item.queue)
            config = plan.config
            priority: int | str = (
                o.priority if o.priority is not None else ("" if config.priority_kind == "text" else 0)
            )
            lifo = bool(o.lifo)
            delay_ms = o.delay_ms or 0
            max_attempts = o.max_attempts if o.max_attempts is not None else plan.max_attempts
            backoff = o.backoff if o.backoff is not None else plan.backoff
            backoff_delay_ms = o.backoff_delay_ms if o.backoff_delay_ms is not None else plan.backoff_delay_ms
            timeout_ms = o.timeout_ms if o.timeout_ms is not None else plan.timeout_ms
            ttl_ms = o.ttl_ms if o.ttl_ms is not None else plan.ttl_ms
            remove_on_complete = o.remove_on_complete if o.remove_on_complete is not None else plan.remove_on_complete
            remove_on_fail = o.remove_on_fail if o.remove_on_fail is not None else plan.remove_on_fail
            unique_key = o.unique_key
            if unique_key is None and not config.allow_duplicates:
                unique_key = content_key(item.name, item.data)
            depends_on = list(dict.fromkeys(o.depends_on)) if o.depends_on else []
            jobs.append(
                Job(
                    id=job_id,
                    custom_id=o.custom_id,
                    name=item.name,
                    queue=item.queue,
                    data=item.data,
                    state="delayed" if delay_ms > 0 else "waiting",
                    priority=priority,
                    delay_until=now + timedelta(milliseconds=delay_ms) if delay_ms > 0 else None,
                    created_at=now,
                    updated_at=now,
                    max_attempts=max_attempts,
                    backoff=backoff,
                    backoff_delay_ms=backoff_delay_ms,
                    ttl_ms=ttl_ms,
                    timeout_ms=timeout_ms,
                    unique_key=unique_key,
                    tags=list(o.tags) if o.tags else [],
                    group_id=o.group_id,
                    metadata=o.metadata,
                    depends_on=depends_on,
                    flow_id=o.flow_id,
                    lifo=lifo,
                    remove_on_complete=remove_on_complete,
                    remove_on_fail=remove_on_fail,
                    expires_at=now + timedelta(milliseconds=ttl_ms) if ttl_ms else None,
                    sort_key=sort_key(config.ordering, priority, lifo, created_us, raw_id),
                )
            )
        return jobs

    async def _resolve_dependencies(
        self, jobs: list[Job], now: datetime, index_names: bool, completing: frozenset[str]
    ) -> None:
        """Parents exist and are alive, depth within ``max_dag_depth``; blocked while one is pending."""
        cache: dict[str, Job | None] = {}
        await self._fetch_into(cache, {p for job in jobs for p in job.depends_on})
        max_depth = self.settings.max_dag_depth
        for i, job in enumerate(jobs):
            if not job.depends_on:
                continue
            index = i if index_names else None
            pending = False
            for parent_id in job.depends_on:
                parent = cache.get(parent_id)
                if parent is None:
                    raise ValidationError(f"Dependency parent job '{parent_id}' not found", index=index)
                if parent.state in _DEAD_PARENT:
                    raise ValidationError(
                        f"Dependency parent job '{parent_id}' is in terminal state '{_STATE_DEBUG[parent.state]}'",
                        index=index,
                    )
                if parent.state != "completed" and parent_id not in completing:
                    pending = True
            if pending and await self._depth_exceeds(job.depends_on, cache, max_depth, completing):
                raise ValidationError(f"Dependency chain exceeds maximum depth of {max_depth}", index=index)
            if pending:
                job.state = "blocked"

    async def _fetch_into(self, cache: dict[str, Job | None], ids: Iterable[str]) -> None:
        missing = [i for i in ids if i not in cache]
        if missing:
            for job_id, job in zip(missing, await self.storage.get_jobs(missing), strict=True):
                cache[job_id] = job

    async def _depth_exceeds(
        self, parents: list[str], cache: dict[str, Job | None], max_depth: int, completing: frozenset[str]
    ) -> bool:
        def pending(job_id: str) -> bool:
            job = cache.get(job_id)
            return job is not None and job.state != "completed" and job_id not in completing

        frontier = [p for p in parents if pending(p)]
        seen = set(frontier)
        depth = 0
        while frontier:
            depth += 1
            if depth > max_depth:
                return True
            upward = []
            for job_id in frontier:
                job = cache[job_id]
                assert job is not None
                for grand in job.depends_on:
                    if grand not in seen:
                        seen.add(grand)
                        upward.append(grand)
            await self._fetch_into(cache, upward)
            frontier = [g for g in upward if pending(g)]
        return False


class PreparedPush:
    """Validated, built jobs waiting for their insert (``PushMixin.prepare_push``). Exactly one of
    ``committed`` / ``abandoned`` takes effect; later calls do nothing."""

    __slots__ = ("_done", "_engine", "_index_names", "_taken", "jobs", "now")

    def __init__(self, engine: PushMixin, jobs: list[Job], now: datetime, taken: Taken, index_names: bool) -> None:
        self._engine = engine
        self.jobs = jobs
        self.now = now
        self._taken = taken
        self._index_names = index_names
        self._done = False

    @property
    def ids(self) -> list[str]:
        return [job.id for job in self.jobs]

    def committed(self) -> None:
        """The insert is durable: count, wake claimers, emit ``job.pushed``."""
        if not self._done:
            self._done = True
            self._engine._after_insert(self.jobs, self.now)

    def abandoned(self) -> None:
        """The insert did not happen (or rolled back): give the rate tokens back."""
        if not self._done:
            self._done = True
            self._engine._refund(self._taken)

    def conflict(self, conflict: InsertConflict) -> DuplicateKey:
        """Abandon and return the ``DuplicateKey`` error an ``InsertConflict`` means for the caller."""
        self.abandoned()
        return DuplicateKey(conflict.key, conflict.holder_id, index=conflict.index if self._index_names else None)
