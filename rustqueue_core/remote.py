"""A remote engine: the engine's public async API over a rustqueue server.

``open_remote("tcp://host:6789?token=…")`` or ``open_remote("http://host:6790")`` returns an unstarted
:class:`RemoteRustQueue`; ``await rq.start()`` (or ``async with``) connects. Results are the same
msgspec structs the embedded engine returns and errors the same typed classes, so the worker runtime
(``run_worker``, ``dispatch_next``) and applications run unchanged against a server.

Over TCP, long-polling claims (``wait=…``) use connections of their own: answers on one connection
come back in order, so a waiting claim must not hold up the heartbeats and acks of running jobs.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from rustqueue_core.client import AsyncRustQueueClient, AsyncTcpClient
from rustqueue_core.client.tcp import parse_tcp_url
from rustqueue_core.errors import ScheduleNotFound
from rustqueue_core.models import (
    BatchResult,
    FailResult,
    FlowInfo,
    Health,
    ItemResult,
    Job,
    NewJob,
    Principal,
    QueueCounts,
    QueueInfo,
    QueueStats,
    Schedule,
    WorkerStats,
)

if TYPE_CHECKING:
    from rustqueue_core.workflow import WorkerRegistry

_UNSET: Any = object()
_MAX_IDLE_WAITERS = 8


def open_remote(
    url: str, *, token: str | None = None, worker_registry: WorkerRegistry | None = None
) -> RemoteRustQueue:
    """A remote engine (not yet connected) for ``tcp://host:port[?token=…]`` or
    ``http(s)://host:port[?token=…]``. ``await rq.start()`` or ``async with rq`` connects."""
    return RemoteRustQueue(url, token=token, worker_registry=worker_registry)


def _to_job(value: Mapping[str, Any]) -> Job:
    return msgspec.convert(value, Job)


def _to_schedule(value: Mapping[str, Any]) -> Schedule:
    return msgspec.convert(value, Schedule)


def _counts(value: Mapping[str, Any]) -> QueueCounts:
    return msgspec.convert(value, QueueCounts)


def _batch(answer: Mapping[str, Any]) -> BatchResult:
    results = [
        ItemResult(
            id=item["id"],
            ok=bool(item.get("ok")),
            error_code=(item.get("error") or {}).get("code"),
            error_message=(item.get("error") or {}).get("message"),
        )
        for item in answer.get("results", [])
    ]
    failed = sum(1 for r in results if not r.ok)
    return BatchResult(ok=len(results) - failed, failed=failed, results=results)


def _fail_result(answer: Mapping[str, Any]) -> FailResult:
    will_retry = bool(answer.get("will_retry", answer.get("retry", False)))
    next_at = answer.get("next_attempt_at")
    state = answer.get("state") or ("delayed" if next_at else ("waiting" if will_retry else "dlq"))
    return msgspec.convert(
        {"will_retry": will_retry, "next_attempt_at": next_at, "state": state}, FailResult, strict=False
    )


def _new_job_item(job: NewJob | Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    if isinstance(job, NewJob):
        options = {k: v for k, v in msgspec.structs.asdict(job.options).items() if v is not None}
        item: dict[str, Any] = {"name": job.name, "data": job.data}
        if options:
            item["options"] = options
        return job.queue, item
    return job.get("queue"), dict(job)


def _lease_targets(ids: str | Sequence[Any], token: str | None) -> list[dict[str, Any]]:
    if isinstance(ids, str):
        return [{"id": ids, "lease_token": token} if token else {"id": ids}]
    out: list[dict[str, Any]] = []
    for item in ids:
        if isinstance(item, str):
            out.append({"id": item})
        else:
            entry = {"id": item["id"]}
            tok = item.get("token") or item.get("lease_token")
            if tok:
                entry["lease_token"] = tok
            out.append(entry)
    return out


class RemoteRustQueue:
    """The engine API served by a remote rustqueue server (TCP or HTTP)."""

    #: No in-process plugin host: hooks run on the server.
    host: Any = None

    def __init__(self, url: str, *, token: str | None = None, worker_registry: WorkerRegistry | None = None):
        self.url = url
        self.worker_registry = worker_registry
        self.state = "starting"
        parsed = urllib.parse.urlsplit(url)
        self.scheme = parsed.scheme
        self._tcp: AsyncTcpClient | None = None
        self._http: AsyncRustQueueClient | None = None
        self._idle_waiters: list[AsyncTcpClient] = []
        self._busy_waiters: set[AsyncTcpClient] = set()
        if parsed.scheme == "tcp":
            host, port, url_token = parse_tcp_url(url)
            self._tcp_args = (host, port, token or url_token)
            self._tcp = AsyncTcpClient(*self._tcp_args)
        elif parsed.scheme in ("http", "https"):
            query = urllib.parse.parse_qs(parsed.query)
            base = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path, "", ""))
            self._http = AsyncRustQueueClient(base, token=token or query.get("token", [None])[0])
        else:
            raise ValueError(f"unsupported remote URL {url!r}: use tcp://host:port or http://host:port")

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> RemoteRustQueue:
        if self._tcp is not None:
            await self._tcp.connect()
        else:
            await self._api.health()
        self.state = "ready"
        return self

    async def close(self, grace: float = 30.0) -> None:
        if self.state == "closed":
            return
        if getattr(self, "_rustqueue_workers", None):
            from rustqueue_core.worker import drain_workers

            await drain_workers(self, grace)
        self.state = "closed"
        for waiter in [*self._idle_waiters, *self._busy_waiters]:
            await waiter.close()
        self._idle_waiters.clear()
        if self._tcp is not None:
            await self._tcp.close()
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> RemoteRustQueue:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def _api(self) -> Any:
        """The client for ordinary calls (both clients share method names and shapes)."""
        return self._tcp if self._tcp is not None else self._http

    # ------------------------------------------------------------------ push
    async def push(
        self, queue: str, name: str, data: Any = _UNSET, *, principal: Principal | None = None, **options: Any
    ) -> str:
        payload = {} if data is _UNSET else data
        if self._tcp is not None:
            return str(await self._tcp.push(queue, name, payload, **options))
        assert self._http is not None
        return await self._http.push(queue, name, payload, **options)

    async def push_batch(
        self,
        queue: str | None,
        jobs: Sequence[NewJob | Mapping[str, Any]],
        *,
        principal: Principal | None = None,
    ) -> list[str]:
        if not jobs:
            return []
        groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for index, job in enumerate(jobs):
            job_queue, item = _new_job_item(job)
            target = job_queue or queue
            if target is None:
                raise ValueError(f"jobs[{index}] has no queue")
            item.pop("queue", None)
            groups.setdefault(target, []).append((index, item))
        ids: list[str] = [""] * len(jobs)
        for target, items in groups.items():
            pushed = await self._api.push_batch(target, [item for _, item in items])
            for (index, _), job_id in zip(items, pushed, strict=True):
                ids[index] = job_id
        return ids

    async def push_jobs(self, jobs: Sequence[NewJob], *, principal: Principal | None = None) -> list[str]:
        return await self.push_batch(None, jobs)

    # ------------------------------------------------------------------ delivery
    async def claim(
        self,
        queue: str,
        n: int = 1,
        *,
        consumer_id: str | None = None,
        lease_ms: int | None = None,
        wait: float | None = None,
    ) -> list[Job]:
        wait_ms = int(wait * 1000) if wait else None
        if self._tcp is None or not wait_ms:
            raw = await self._api.pull(queue, n, wait_ms=wait_ms, consumer_id=consumer_id, lease_ms=lease_ms)
            return [_to_job(j) for j in raw]
        waiter = self._idle_waiters.pop() if self._idle_waiters else AsyncTcpClient(*self._tcp_args)
        self._busy_waiters.add(waiter)
        try:
            raw = await waiter.pull(queue, n, wait_ms=wait_ms, consumer_id=consumer_id, lease_ms=lease_ms)
        finally:
            self._busy_waiters.discard(waiter)
            if self.state != "closed" and len(self._idle_waiters) < _MAX_IDLE_WAITERS:
                self._idle_waiters.append(waiter)
            else:
                await waiter.close()
        return [_to_job(j) for j in raw]

    pull = claim

    async def ack(
        self, job_id: str, result: Any = None, *, token: str | None = None, consumer_id: str | None = None
    ) -> None:
        await self._api.ack(job_id, result, lease_token=token)

    async def ack_batch(self, items: Sequence[tuple[str, Any] | str | Mapping[str, Any]]) -> BatchResult:
        return _batch(await self._api.ack_batch(items))

    async def fail(
        self,
        job_id: str,
        error: str,
        *,
        token: str | None = None,
        consumer_id: str | None = None,
        retry_delay_ms: int | None = None,
        dead: bool = False,
    ) -> FailResult:
        answer = await self._api.fail(job_id, error, lease_token=token, retry_delay_ms=retry_delay_ms, dead=dead)
        return _fail_result(answer)

    async def nack(
        self,
        job_id: str,
        *,
        token: str | None = None,
        consumer_id: str | None = None,
        requeue: bool = True,
        reason: str | None = None,
    ) -> FailResult:
        if self._tcp is not None:
            answer = await self._tcp.nack(
                job_id, requeue=requeue, reason=reason, lease_token=token, consumer_id=consumer_id
            )
        else:
            assert self._http is not None
            answer = await self._http.nack(job_id, requeue=requeue, reason=reason, lease_token=token)
        return _fail_result(answer)

    async def release(
        self, ids: str | Sequence[Any], *, token: str | None = None, consumer_id: str | None = None
    ) -> BatchResult:
        targets = _lease_targets(ids, token)
        if self._tcp is not None and len(targets) > 1:
            return _batch(await self._tcp.release([t["id"] for t in targets], consumer_id=consumer_id))
        return await self._one_by_one(targets, "release")

    async def heartbeat(
        self, ids: str | Sequence[Any], *, token: str | None = None, consumer_id: str | None = None
    ) -> BatchResult:
        targets = _lease_targets(ids, token)
        if self._tcp is not None:
            if isinstance(ids, str):
                return await self._one_by_one(targets, "heartbeat")
            return _batch(await self._tcp.heartbeat(targets, consumer_id=consumer_id))
        return await self._one_by_one(targets, "heartbeat")

    async def _one_by_one(self, targets: list[dict[str, Any]], method: str) -> BatchResult:
        from rustqueue_core.errors import RustQueueError

        results: list[ItemResult] = []
        call = getattr(self._api, method)
        for target in targets:
            try:
                await call(target["id"], lease_token=target.get("lease_token"))
                results.append(ItemResult(id=target["id"], ok=True))
            except RustQueueError as exc:
                results.append(ItemResult(id=target["id"], ok=False, error_code=exc.code, error_message=exc.message))
        failed = sum(1 for r in results if not r.ok)
        return BatchResult(ok=len(results) - failed, failed=failed, results=results)

    async def renew(
        self,
        job_id: str,
        lease_ms: int | None = None,
        *,
        token: str | None = None,
        consumer_id: str | None = None,
    ) -> Job:
        if self._tcp is not None:
            await self._tcp.renew(job_id, lease_ms, lease_token=token, consumer_id=consumer_id)
        else:
            assert self._http is not None
            await self._http.heartbeat(job_id, lease_token=token)
        job = await self.get_job(job_id)
        if job is None:
            from rustqueue_core.errors import JobNotFound

            raise JobNotFound(job_id)
        return job

    async def progress(
        self,
        job_id: str,
        value: int,
        message: str | None = None,
        *,
        token: str | None = None,
        consumer_id: str | None = None,
    ) -> None:
        await self._api.progress(job_id, value, message, lease_token=token)

    async def cancel(self, job_id: str) -> None:
        await self._api.cancel(job_id)

    # ------------------------------------------------------------------ inspection and admin
    async def get_job(self, job_id: str) -> Job | None:
        raw = await self._api.get_job(job_id)
        return _to_job(raw) if raw is not None else None

    async def get_jobs(self, ids: Sequence[str]) -> list[Job | None]:
        return [await self.get_job(job_id) for job_id in ids]

    async def dlq(self, queue: str, limit: int = 50) -> list[Job]:
        return [_to_job(j) for j in await self._api.get_dlq_jobs(queue, limit)]

    async def flow(self, flow_id: str) -> FlowInfo:
        answer = await self._api.get_flow(flow_id)
        jobs = [_to_job(j) for j in answer.get("jobs", [])]
        return FlowInfo(flow_id=answer.get("flow_id", flow_id), jobs=jobs, summary=dict(answer.get("summary", {})))

    async def queues(self) -> list[QueueInfo]:
        return [QueueInfo(name=q["name"], counts=_counts(q["counts"])) for q in await self._api.list_queues()]

    async def counts(self, queue: str) -> QueueCounts:
        return _counts(await self._api.get_queue_stats(queue))

    async def stats(self, queue: str | None = None) -> list[QueueStats]:
        infos = await self.queues()
        if queue is not None:
            infos = [q for q in infos if q.name == queue] or [QueueInfo(name=queue, counts=await self.counts(queue))]
        return [
            QueueStats(name=q.name, counts=q.counts, pending=q.counts.waiting, locked=q.counts.active) for q in infos
        ]

    async def pause_queue(self, name: str, *, consume: bool = False) -> None:
        await self._api.pause_queue(name)

    async def resume_queue(self, name: str) -> None:
        await self._api.resume_queue(name)

    # ------------------------------------------------------------------ schedules
    async def create_schedule(self, schedule: Mapping[str, Any] | None = None, **fields: Any) -> Schedule:
        body = {**(schedule or {}), **fields}
        options = body.get("job_options")
        if isinstance(options, msgspec.Struct):
            body["job_options"] = {k: v for k, v in msgspec.structs.asdict(options).items() if v is not None}
        created = await self._api.create_schedule(body)
        if isinstance(created, Mapping) and created:
            return _to_schedule(created)
        return await self.get_schedule(body["name"])

    async def get_schedule(self, name: str) -> Schedule:
        raw = await self._api.get_schedule(name)
        if raw is None:
            raise ScheduleNotFound(name)
        return _to_schedule(raw)

    async def list_schedules(self) -> list[Schedule]:
        return [_to_schedule(s) for s in await self._api.list_schedules()]

    async def delete_schedule(self, name: str) -> bool:
        await self._api.delete_schedule(name)
        return True

    async def pause_schedule(self, name: str) -> Schedule:
        await self._api.pause_schedule(name)
        return await self.get_schedule(name)

    async def resume_schedule(self, name: str) -> Schedule:
        await self._api.resume_schedule(name)
        return await self.get_schedule(name)

    # ------------------------------------------------------------------ health, workers
    async def health(self) -> Health:
        answer = await self._api.health()
        return Health(
            status=str(answer.get("status", "healthy")),
            state=str(answer.get("state", "ready")),
            version=str(answer.get("version", "")),
            uptime_seconds=int(answer.get("uptime_seconds", 0)),
        )

    async def run_worker(self, queue: str, handler: Any, **kwargs: Any) -> WorkerStats:
        from rustqueue_core.worker import run_worker

        return await run_worker(self, queue, handler, **kwargs)

    async def dispatch_next(self, queue: str) -> str | None:
        from rustqueue_core.worker import dispatch_next

        return await dispatch_next(self, queue, self.worker_registry)
