"""The PostgreSQL storage backend (SEMANTICS §5): many processes and hosts on one database.

One statement per batch (see ``sql``): claims are ``UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)``,
acks and transitions are batched compare-and-sets on state and lease credential with an outcome per
item. Claims and acks of rows in the row cache (``rowcache``) return only what the cache cannot know.
"""

from __future__ import annotations

import operator
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from rustqueue_core.models import Job, QueueConfig, QueueCounts, Schedule, copy_job
from rustqueue_core.storage import (
    LEASE_LOST,
    NOT_FOUND,
    OK,
    Change,
    ChangeOutcome,
    CompleteItem,
    CompleteOutcome,
    JobFilter,
    state_mismatch,
)
from rustqueue_postgres.base import PostgresBase
from rustqueue_postgres.filters import build_filter
from rustqueue_postgres.sql import JSON_COLUMNS

_encode = msgspec.json.encode
_decode_any = msgspec.json.decode
_decode_job = msgspec.json.Decoder(Job).decode
_decode_jobs = msgspec.json.Decoder(list[Job]).decode
_decode_pairs = msgspec.json.Decoder(list[tuple[str, str]]).decode
_decode_config = msgspec.json.Decoder(QueueConfig).decode
_decode_schedule = msgspec.json.Decoder(Schedule).decode
_COUNT_FIELDS = frozenset(QueueCounts.__struct_fields__)


def _in_claim_order(jobs: list[Job]) -> list[Job]:
    jobs.sort(key=_sort_key_of)
    return jobs


_sort_key_of = operator.attrgetter("sort_key")
_first = operator.itemgetter(0)


def _tokens(n: int) -> bytes:
    """``n`` fresh 128-bit lease tokens (16 bytes each, back to back) from one call to the OS random
    source; the claim gives the row of rank ``rn`` the ``rn``-th, as 32 hex digits."""
    return secrets.token_bytes(16 * n)


def _cas_outcome(row: Any, lease_token: str | None, consumer_id: str | None, expected: frozenset[str]) -> str:
    if row is None:
        return NOT_FOUND
    if row["state"] not in expected:
        return state_mismatch(row["state"])
    if (lease_token is not None and row["lease_token"] != lease_token) or (
        consumer_id is not None and row["worker_id"] != consumer_id
    ):
        return LEASE_LOST
    return state_mismatch(row["state"])  # changed again by a racing writer


class PostgresStorage(PostgresBase):
    """The ``postgres`` backend. Build with :func:`open_postgres` or through the plugin's factory."""

    # ------------------------------------------------------------------ reads
    async def get_jobs(self, ids: Sequence[str]) -> list[Job | None]:
        if not ids:
            return []

        async def work(raw: Any) -> list[Job | None]:
            text = await raw.fetchval(self.sql.get_jobs, list(ids))
            found = {j.id: j for j in _decode_jobs(text)} if text else {}
            return [found.get(i) for i in ids]

        return await self._run(work, atomic=False)

    # ------------------------------------------------------------------ claim
    async def claim(
        self,
        queue: str,
        n: int,
        now: datetime,
        *,
        consumer_id: str | None,
        lease_ms: int,
        group_limit: int | None = None,
    ) -> list[Job]:
        if n <= 0:
            return []
        n = min(n, self.capabilities.max_batch)
        if group_limit is not None:
            return await self._claim_grouped(queue, n, now, consumer_id, lease_ms, group_limit)

        tokens = _tokens(n)

        async def work(raw: Any) -> list[Job]:
            rows = await raw.fetch(self.sql.claim_for(n), queue, now, consumer_id, tokens, lease_ms, self._writer)
            if not rows:
                return []
            return await self._claimed(raw, rows, now, consumer_id, tokens, lease_ms)

        return await self._run(work, atomic=False)

    async def _claimed(
        self, raw: Any, rows: list[Any], now: datetime, consumer_id: str | None, tokens: bytes, lease_ms: int
    ) -> list[Job]:
        """Jobs of claim rows ``(rn, id, rev, json)`` in claim order: rows sent whole are decoded,
        the others are cached jobs with the claim's changes (or, when the cache misses, read)."""
        if len(rows) > 1:
            rows.sort(key=_first)
        cache = self._cache
        pop, put = cache.pop, cache.put
        lease_until = now + timedelta(milliseconds=lease_ms)
        jobs: list[Job] = []
        unknown: list[int] = []
        for rn, job_id, rev, text in rows:
            if text is not None:
                job = _decode_job(text)
            else:
                entry = pop(job_id)
                if entry is None or entry[0] + 1 != rev:
                    unknown.append(len(jobs))
                    jobs.append(None)  # type: ignore[arg-type]
                    continue
                job = copy_job(entry[1])
                job.state = "active"
                job.started_at = now
                job.updated_at = now
                job.deliveries += 1
                job.worker_id = consumer_id
                job.lease_token = tokens[16 * rn - 16 : 16 * rn].hex()
                job.lease_ms = lease_ms
                job.lease_expires_at = lease_until
                timeout = job.timeout_ms
                job.deadline_at = now + timedelta(milliseconds=timeout) if timeout is not None and timeout > 0 else None
                job.last_heartbeat = None
                job.delay_until = None
            put(job_id, rev, job)
            jobs.append(copy_job(job))
        if unknown:
            ids = [rows[i][1] for i in unknown]
            text = await raw.fetchval(self.sql.get_jobs, ids)
            found = {j.id: j for j in _decode_jobs(text)} if text else {}
            for i, job_id in zip(unknown, ids, strict=True):
                jobs[i] = found[job_id]
        return jobs

    async def _claim_grouped(
        self, queue: str, n: int, now: datetime, consumer_id: str | None, lease_ms: int, limit: int
    ) -> list[Job]:
        async def work(raw: Any) -> list[Job]:
            # Claims with a group limit on one queue take turns, so two claimers never both see a
            # group below its limit and overfill it.
            await raw.execute(self.sql.group_lock, f"rustqueue:group:{self.schema}:{queue}")
            taken: list[Job] = []
            scan = n * 4 + 32
            while len(taken) < n:
                want = n - len(taken)
                row = await raw.fetchrow(
                    self.sql.claim_grouped,
                    queue,
                    now,
                    want,
                    consumer_id,
                    _tokens(want),
                    lease_ms,
                    limit,
                    scan,
                )
                got = _in_claim_order(_decode_jobs(row[0])) if row[0] else []
                taken.extend(got)
                if row[1] < scan or len(got) == want:
                    break
                scan *= 4  # the window was full of jobs of saturated groups: look further
            return taken

        return await self._run(work)

    # ------------------------------------------------------------------ complete / transition
    async def complete(self, items: Sequence[CompleteItem], now: datetime) -> list[CompleteOutcome]:
        if not items:
            return []
        cache_get = self._cache.get
        idxs: list[int] = []
        ids: list[str] = []
        expects: list[int | None] = []
        snapshots: list[Job | None] = [None] * len(items)
        plain = True
        seen: set[str] = set()
        for i, it in enumerate(items):
            job_id = it.id
            if job_id in seen:
                continue
            seen.add(job_id)
            idxs.append(i)
            ids.append(job_id)
            if plain and (it.result is not None or it.lease_token is not None or it.consumer_id is not None):
                plain = False
            entry = cache_get(job_id)
            if entry is None:
                expects.append(None)
            else:
                expects.append(entry[0] + 1)
                snapshots[i] = entry[1]
        args: tuple[Any, ...]
        if plain:
            statement, args = self.sql.complete_plain, (ids, expects, now)
        else:
            results = [_encode(items[i].result).decode() for i in idxs]
            tokens = [items[i].lease_token for i in idxs]
            consumers = [items[i].consumer_id for i in idxs]
            statement, args = self.sql.complete, (idxs, ids, results, tokens, consumers, expects, now)

        attempts = 0

        async def work(raw: Any) -> list[CompleteOutcome]:
            nonlocal attempts
            attempts += 1
            rows = await raw.fetch(statement, *args)
            outcomes: list[CompleteOutcome | None] = [None] * len(items)
            spawns: list[Job] = []
            owners: list[tuple[int, int]] = []  # (item index, spawn index) per entry of spawns
            forget = self._cache.forget
            for position, children, text in rows:
                idx = idxs[position] if plain else position
                item = items[idx]
                if text is None:
                    snapshot = snapshots[idx]
                    assert snapshot is not None
                    job = copy_job(snapshot)
                    job.state = "completed"
                    job.result = None if item.result is None else _decode_any(_encode(item.result))
                    job.completed_at = now
                    job.updated_at = now
                    job.lease_token = None
                    job.lease_expires_at = None
                    job.lease_ms = None
                    job.deadline_at = None
                    job.last_heartbeat = None
                else:
                    job = _decode_job(text)
                for k, spawn in enumerate(item.spawned):
                    spawns.append(spawn)
                    owners.append((idx, k))
                outcomes[idx] = CompleteOutcome(id=job.id, outcome=OK, job=job, blocked_children=children)
            forget(ids)
            if spawns:
                skipped = await self._insert(raw.fetchrow, raw.fetch, spawns, skip_held=True, json_as_text=True)
                for spawn_index, holder in skipped:
                    idx, k = owners[spawn_index]
                    outcome = outcomes[idx]
                    assert outcome is not None
                    outcome.skipped.append((k, holder))
            rest = [i for i in range(len(items)) if outcomes[i] is None]
            if rest:
                view = {r["id"]: r for r in await raw.fetch(self.sql.cas_view, [items[i].id for i in rest])}
                if attempts > 1:
                    await self._recommitted(raw, items, rest, view, set(idxs), now, outcomes)
                for i in rest:
                    if outcomes[i] is not None:
                        continue
                    item = items[i]
                    verdict = _cas_outcome(view.get(item.id), item.lease_token, item.consumer_id, frozenset({"active"}))
                    outcomes[i] = CompleteOutcome(id=item.id, outcome=verdict)
            return [o for o in outcomes if o is not None]

        return await self._run(work, atomic=any(item.spawned for item in items))

    async def _recommitted(
        self,
        raw: Any,
        items: Sequence[CompleteItem],
        rest: list[int],
        view: dict[str, Any],
        primary: set[int],
        now: datetime,
        outcomes: list[CompleteOutcome | None],
    ) -> None:
        """On a retry after a lost connection: items the lost attempt already completed (the row is
        completed at this very call's timestamp) succeeded; they are not reported as acked twice. Only
        an item's first occurrence counts: a repeated id in one call still sees the job completed."""
        done = [
            i
            for i in rest
            if i in primary
            and (row := view.get(items[i].id)) is not None
            and row["state"] == "completed"
            and row["completed_at"] == now
        ]
        if not done:
            return
        ids = [items[i].id for i in done]
        text = await raw.fetchval(self.sql.get_jobs, ids)
        found = {j.id: j for j in _decode_jobs(text)} if text else {}
        children = {r[0]: list(r[1]) for r in await raw.fetch(self.sql.blocked_children, ids)}
        for i in done:
            job = found.get(items[i].id)
            if job is not None:
                outcomes[i] = CompleteOutcome(id=job.id, outcome=OK, job=job, blocked_children=children.get(job.id, []))
        self._cache.forget(items[i].id for i in done)

    def _transition_statement(self, fields: tuple[str, ...]) -> str:
        sql = self._transition_sql.get(fields)
        if sql is None:
            sql = self._transition_sql[fields] = self.sql.transition(fields)
        return sql

    async def transition(self, changes: Sequence[Change], now: datetime) -> list[ChangeOutcome]:
        if not changes:
            return []
        # Rounds keep the order of changes to one id; within a round, one statement per field set.
        rounds: list[dict[tuple[str, ...], list[int]]] = []
        seen: dict[str, int] = {}
        for index, change in enumerate(changes):
            level = seen.get(change.id, 0)
            seen[change.id] = level + 1
            if level == len(rounds):
                rounds.append({})
            fields = tuple(sorted(f for f in change.updates if f != "updated_at"))
            rounds[level].setdefault(fields, []).append(index)

        async def work(raw: Any) -> list[ChangeOutcome]:
            outcomes: list[ChangeOutcome | None] = [None] * len(changes)
            for groups in rounds:
                for fields, indexes in groups.items():
                    batch = []
                    for i in indexes:
                        c = changes[i]
                        entry: dict[str, Any] = {
                            "idx": i,
                            "id": c.id,
                            "expected": sorted(c.expected),
                            "lease_token": c.lease_token,
                            "consumer_id": c.consumer_id,
                        }
                        for name in fields:
                            value = c.updates[name]
                            entry[f"u_{name}"] = _encode(value).decode() if name in JSON_COLUMNS else value
                        batch.append(entry)
                    row = await raw.fetchrow(
                        self._transition_statement(fields), _encode(batch).decode(), now, *self._notify_args
                    )
                    if row[0]:
                        for idx, job in zip(row[1], _decode_jobs(row[0]), strict=True):
                            outcomes[idx] = ChangeOutcome(id=job.id, outcome=OK, job=job)
                    self._cache.forget([changes[i].id for i in indexes])
                    failed = [i for i in indexes if outcomes[i] is None]
                    if failed:
                        view = {r["id"]: r for r in await raw.fetch(self.sql.cas_view, [changes[i].id for i in failed])}
                        for i in failed:
                            c = changes[i]
                            verdict = _cas_outcome(view.get(c.id), c.lease_token, c.consumer_id, c.expected)
                            outcomes[i] = ChangeOutcome(id=c.id, outcome=verdict)
            return [o for o in outcomes if o is not None]

        return await self._run(work, atomic=len(rounds) > 1 or len(rounds[0]) > 1)

    async def promote_due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        if limit <= 0:
            return []

        async def work(raw: Any) -> list[tuple[str, str]]:
            row = await raw.fetchrow(self.sql.promote_due, now, limit, *self._notify_args)
            return _decode_pairs(row[0]) if row[0] else []

        return await self._run(work, atomic=False)

    # ------------------------------------------------------------------ queries
    async def find_jobs(self, filter: JobFilter, limit: int, cursor: str | None = None) -> tuple[list[Job], str | None]:
        if limit == 0:
            return [], None
        query = build_filter(self.sql.jobs, filter, cursor, limit, select=True)

        async def work(raw: Any) -> tuple[list[Job], str | None]:
            text = await raw.fetchval(query.sql, *query.args)
            jobs = query.in_order(_decode_jobs(text)) if text else []
            if 0 <= limit < len(jobs):
                jobs = jobs[:limit]
                return jobs, query.cursor_of(jobs[-1])
            return jobs, None

        return await self._run(work, atomic=False)

    async def count_jobs(self, queues: Sequence[str] | None = None) -> dict[str, QueueCounts]:
        async def work(raw: Any) -> list[Any]:
            if queues is None:
                return list(await raw.fetch(self.sql.count_all))
            return list(await raw.fetch(self.sql.count_some, list(queues)))

        counts: dict[str, dict[str, int]] = {}
        for queue, state, number in await self._run(work, atomic=False):
            per = counts.setdefault(queue, {})
            key = "waiting" if state == "created" else state
            if key in _COUNT_FIELDS:
                per[key] = per.get(key, 0) + number
        return {q: QueueCounts(**per) for q, per in sorted(counts.items()) if any(per.values())}

    async def delete_jobs(
        self, ids: Sequence[str] | None = None, filter: JobFilter | None = None, limit: int = 1000
    ) -> list[Job]:
        if ids is not None:
            if not ids:
                return []
            filter = JobFilter(ids=list(ids))
            limit = -1
        elif filter is None:
            return []
        query = build_filter(self.sql.jobs, filter, None, limit, select=False)

        async def work(raw: Any) -> list[Job]:
            text = await raw.fetchval(query.sql, *query.args)
            return _decode_jobs(text) if text else []

        return await self._run(work, atomic=False)

    async def rename_queue(self, old: str, new: str, now: datetime) -> int:
        async def work(raw: Any) -> int:
            row = await raw.fetchrow(self.sql.rename_jobs, old, new, now, *self._notify_args)
            config = await raw.fetchval(self.sql.get_config, old)
            if config is not None:
                moved = msgspec.structs.replace(_decode_config(config), name=new)
                await raw.execute(self.sql.delete_config, old)
                await raw.execute(self.sql.put_config, new, _encode(moved).decode())
            return int(row[0])

        return await self._run(work)

    async def queue_names(self) -> list[str]:
        async def work(raw: Any) -> list[str]:
            return [r[0] for r in await raw.fetch(self.sql.queue_names)]

        return await self._run(work, atomic=False)

    # ------------------------------------------------------------------ queue configs
    async def get_queue_configs(self) -> dict[str, QueueConfig]:
        async def work(raw: Any) -> list[Any]:
            return list(await raw.fetch(self.sql.get_configs))

        configs = [_decode_config(r[0]) for r in await self._run(work, atomic=False)]
        return {c.name: c for c in configs}

    async def put_queue_config(self, config: QueueConfig) -> None:
        payload = _encode(config).decode()

        async def work(raw: Any) -> None:
            await raw.execute(self.sql.put_config, config.name, payload)

        await self._run(work, atomic=False)

    async def delete_queue_config(self, name: str) -> None:
        async def work(raw: Any) -> None:
            await raw.execute(self.sql.delete_config, name)

        await self._run(work, atomic=False)

    # ------------------------------------------------------------------ schedules
    async def put_schedule(self, schedule: Schedule) -> None:
        payload = _encode(schedule).decode()

        async def work(raw: Any) -> None:
            await raw.execute(self.sql.put_schedule, schedule.name, schedule.paused, schedule.next_run_at, payload)

        await self._run(work, atomic=False)

    async def get_schedule(self, name: str) -> Schedule | None:
        async def work(raw: Any) -> str | None:
            value = await raw.fetchval(self.sql.get_schedule, name)
            return None if value is None else str(value)

        text = await self._run(work, atomic=False)
        return None if text is None else _decode_schedule(text)

    async def list_schedules(self, active_only: bool = False) -> list[Schedule]:
        sql = self.sql.list_active_schedules if active_only else self.sql.list_schedules

        async def work(raw: Any) -> list[Any]:
            return list(await raw.fetch(sql))

        return [_decode_schedule(r[0]) for r in await self._run(work, atomic=False)]

    async def delete_schedule(self, name: str) -> bool:
        async def work(raw: Any) -> bool:
            return await raw.fetchval(self.sql.delete_schedule, name) is not None

        return await self._run(work, atomic=False)

    async def fire_schedule(
        self,
        name: str,
        expected_next_run_at: datetime | None,
        updates: dict[str, Any],
        jobs: Sequence[Job],
        now: datetime,
    ) -> bool:
        self._check_batch_unique(jobs)

        async def work(raw: Any) -> bool:
            text = await raw.fetchval(self.sql.lock_schedule, name)
            if text is None:
                return False
            current = _decode_schedule(text)
            if current.next_run_at != expected_next_run_at:
                return False
            updated = msgspec.structs.replace(current, **updates)
            await raw.execute(
                self.sql.put_schedule, name, updated.paused, updated.next_run_at, _encode(updated).decode()
            )
            if jobs:
                await self._insert(raw.fetchrow, raw.fetch, jobs, skip_held=False, json_as_text=True)
            return True

        return await self._run(work)


async def open_postgres(url: str, **options: Any) -> PostgresStorage:
    """Build and open a :class:`PostgresStorage` (convenience for embedding and scripts)."""
    storage = PostgresStorage(url, options)
    await storage.open()
    return storage
