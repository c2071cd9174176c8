"""HTTP clients of the rustqueue server (``/api/v1``), on the standard library and msgspec.

``RustQueueClient`` is synchronous, keeps one keep-alive connection per thread and offers the methods
of the original Python SDK (same names, arguments and return shapes) plus the rustqueue additions.
``AsyncRustQueueClient`` has the same methods as coroutines; it runs requests on a small private
thread pool, so a slow request never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import msgspec

from rustqueue_core.client._common import (
    RustQueueConnectionError,
    ack_item,
    drop_none,
    error_from_wire,
    pulled_jobs,
    raise_for_body,
)
from rustqueue_core.errors import RustQueueError

_T = TypeVar("_T")
_NO_BODY: Any = object()
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()
_RETRYABLE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    http.client.BadStatusLine,
)


def _enc(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


class RustQueueClient:
    """Synchronous HTTP client. Thread-safe: each thread uses its own keep-alive connection."""

    def __init__(self, base_url: str = "http://localhost:6790", token: str | None = None, timeout: float = 30):
        parsed = urllib.parse.urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {parsed.scheme!r} (expected http or https)")
        self.base_url = base_url.rstrip("/")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname or "localhost"
        self._port = parsed.port or (443 if self._https else 80)
        self._prefix = parsed.path.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._headers = headers

    # ------------------------------------------------------------------ transport
    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
            self._local.used = False
            with self._lock:
                self._connections.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
        self._local.conn = None

    def request(self, method: str, path: str, body: Any = _NO_BODY, query: Mapping[str, Any] | None = None) -> Any:
        """Send one request; return the decoded JSON answer or raise the typed error it carries."""
        target = self._prefix + path
        if query:
            target += "?" + urllib.parse.urlencode(drop_none(query))
        payload = None if body is _NO_BODY else _ENCODER.encode(body)
        for attempt in (1, 2):
            conn = self._connection()
            reused = bool(getattr(self._local, "used", False))
            try:
                conn.request(method, target, body=payload, headers=self._headers)
                response = conn.getresponse()
                status, reason, data = response.status, response.reason, response.read()
                self._local.used = True
                if response.will_close:
                    self._drop_connection()
                break
            except _RETRYABLE as exc:
                self._drop_connection()
                # A kept-alive connection the server closed while idle: retry once on a new one.
                if reused and attempt == 1:
                    continue
                raise RustQueueConnectionError(f"connection to {self.base_url} failed: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                raise RustQueueConnectionError(f"connection to {self.base_url} failed: {exc}") from exc
        return _decode_answer(status, reason, data)

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> RustQueueClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ jobs
    def push(self, queue: str, name: str, data: Any = None, **options: Any) -> str:
        """Push one job; keywords are job options (priority, delay_ms, max_attempts, backoff, …)."""
        body = {"name": name, "data": {} if data is None else data, **drop_none(options)}
        return str(self.request("POST", f"/api/v1/queues/{_enc(queue)}/jobs", body)["id"])

    def push_batch(self, queue: str, jobs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Push many jobs atomically; each item is ``{"name", "data", **options}``."""
        body = [_flatten_push_item(item) for item in jobs]
        return list(self.request("POST", f"/api/v1/queues/{_enc(queue)}/jobs", body)["ids"])

    def pull(
        self,
        queue: str,
        count: int = 1,
        *,
        wait_ms: int | None = None,
        consumer_id: str | None = None,
        lease_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"wait_ms": wait_ms, "consumer_id": consumer_id, "lease_ms": lease_ms}
        if count != 1:
            query["count"] = count
        return pulled_jobs(self.request("GET", f"/api/v1/queues/{_enc(queue)}/jobs", query=query))

    def ack(self, job_id: str, result: Any = None, *, lease_token: str | None = None) -> None:
        body = drop_none({"result": result, "lease_token": lease_token})
        self.request("POST", f"/api/v1/jobs/{_enc(job_id)}/ack", body)

    def ack_batch(self, items: Sequence[Any]) -> dict[str, Any]:
        """Ack many jobs in one request; answers ``{ok, acked, failed, results}``."""
        return dict(self.request("POST", "/api/v1/jobs/ack-batch", {"items": [ack_item(i) for i in items]}))

    def fail(
        self,
        job_id: str,
        error: str,
        *,
        lease_token: str | None = None,
        retry_delay_ms: int | None = None,
        dead: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = drop_none({"error": error, "lease_token": lease_token, "retry_delay_ms": retry_delay_ms})
        if dead:
            body["dead"] = True
        answer = self.request("POST", f"/api/v1/jobs/{_enc(job_id)}/fail", body)
        return {"retry": answer.get("retry", False), "next_attempt_at": answer.get("next_attempt_at")}

    def nack(
        self, job_id: str, *, requeue: bool = True, reason: str | None = None, lease_token: str | None = None
    ) -> dict[str, Any]:
        """Give a job back without backoff (``requeue``) or dead-letter it; expressed through the fail
        route (``retry_delay_ms=0`` or ``dead``), which every server version has."""
        error = reason or "nacked"
        if requeue:
            return self.fail(job_id, error, lease_token=lease_token, retry_delay_ms=0)
        return self.fail(job_id, error, lease_token=lease_token, dead=True)

    def release(self, job_id: str, *, lease_token: str | None = None) -> None:
        self.request("POST", f"/api/v1/jobs/{_enc(job_id)}/release", drop_none({"lease_token": lease_token}))

    def cancel(self, job_id: str) -> None:
        self.request("POST", f"/api/v1/jobs/{_enc(job_id)}/cancel", {})

    def progress(
        self, job_id: str, progress: int, message: str | None = None, *, lease_token: str | None = None
    ) -> None:
        body = drop_none({"progress": progress, "message": message, "lease_token": lease_token})
        self.request("POST", f"/api/v1/jobs/{_enc(job_id)}/progress", body)

    def heartbeat(self, job_id: str, *, lease_token: str | None = None) -> None:
        self.request("POST", f"/api/v1/jobs/{_enc(job_id)}/heartbeat", drop_none({"lease_token": lease_token}))

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", f"/api/v1/jobs/{_enc(job_id)}").get("job")  # type: ignore[no-any-return]
        except RustQueueError as exc:
            if exc.code in ("JOB_NOT_FOUND", "NOT_FOUND"):
                return None
            raise

    def get_flow(self, flow_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v1/flows/{_enc(flow_id)}"))

    # ------------------------------------------------------------------ queues
    def list_queues(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/v1/queues").get("queues", []))

    def get_queue_stats(self, queue: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v1/queues/{_enc(queue)}/stats").get("counts", {}))

    def get_dlq_jobs(self, queue: str, limit: int = 100) -> list[dict[str, Any]]:
        answer = self.request("GET", f"/api/v1/queues/{_enc(queue)}/dlq", query={"limit": limit})
        return list(answer.get("jobs", []))

    def pause_queue(self, queue: str) -> None:
        self.request("POST", f"/api/v1/queues/{_enc(queue)}/pause", {})

    def resume_queue(self, queue: str) -> None:
        self.request("POST", f"/api/v1/queues/{_enc(queue)}/resume", {})

    # ------------------------------------------------------------------ schedules
    def create_schedule(self, schedule: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        body = {**(schedule or {}), **fields}
        return dict(self.request("POST", "/api/v1/schedules", body).get("schedule", {}))

    def list_schedules(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/v1/schedules").get("schedules", []))

    def get_schedule(self, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", f"/api/v1/schedules/{_enc(name)}").get("schedule")  # type: ignore[no-any-return]
        except RustQueueError as exc:
            if exc.code in ("SCHEDULE_NOT_FOUND", "NOT_FOUND"):
                return None
            raise

    def delete_schedule(self, name: str) -> None:
        self.request("DELETE", f"/api/v1/schedules/{_enc(name)}")

    def pause_schedule(self, name: str) -> None:
        self.request("POST", f"/api/v1/schedules/{_enc(name)}/pause", {})

    def resume_schedule(self, name: str) -> None:
        self.request("POST", f"/api/v1/schedules/{_enc(name)}/resume", {})

    # ------------------------------------------------------------------ server
    def health(self) -> dict[str, Any]:
        return dict(self.request("GET", "/api/v1/health"))


class AsyncRustQueueClient:
    """Asynchronous HTTP client with the methods of :class:`RustQueueClient` as coroutines."""

    def __init__(
        self,
        base_url: str = "http://localhost:6790",
        token: str | None = None,
        timeout: float = 30,
        *,
        max_connections: int = 8,
    ) -> None:
        self.sync = RustQueueClient(base_url, token=token, timeout=timeout)
        self._executor = ThreadPoolExecutor(max_workers=max_connections, thread_name_prefix="rustqueue-http")

    async def _run(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def request(
        self, method: str, path: str, body: Any = _NO_BODY, query: Mapping[str, Any] | None = None
    ) -> Any:
        return await self._run(self.sync.request, method, path, body, query)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._executor.shutdown(wait=True)
        self.sync.close()

    async def __aenter__(self) -> AsyncRustQueueClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def push(self, queue: str, name: str, data: Any = None, **options: Any) -> str:
        return await self._run(self.sync.push, queue, name, data, **options)

    async def push_batch(self, queue: str, jobs: Sequence[Mapping[str, Any]]) -> list[str]:
        return await self._run(self.sync.push_batch, queue, jobs)

    async def pull(self, queue: str, count: int = 1, **kwargs: Any) -> list[dict[str, Any]]:
        return await self._run(self.sync.pull, queue, count, **kwargs)

    async def ack(self, job_id: str, result: Any = None, *, lease_token: str | None = None) -> None:
        await self._run(self.sync.ack, job_id, result, lease_token=lease_token)

    async def ack_batch(self, items: Sequence[Any]) -> dict[str, Any]:
        return await self._run(self.sync.ack_batch, items)

    async def fail(self, job_id: str, error: str, **kwargs: Any) -> dict[str, Any]:
        return await self._run(self.sync.fail, job_id, error, **kwargs)

    async def nack(self, job_id: str, **kwargs: Any) -> dict[str, Any]:
        return await self._run(self.sync.nack, job_id, **kwargs)

    async def release(self, job_id: str, *, lease_token: str | None = None) -> None:
        await self._run(self.sync.release, job_id, lease_token=lease_token)

    async def cancel(self, job_id: str) -> None:
        await self._run(self.sync.cancel, job_id)

    async def progress(self, job_id: str, progress: int, message: str | None = None, **kwargs: Any) -> None:
        await self._run(self.sync.progress, job_id, progress, message, **kwargs)

    async def heartbeat(self, job_id: str, *, lease_token: str | None = None) -> None:
        await self._run(self.sync.heartbeat, job_id, lease_token=lease_token)

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        return await self._run(self.sync.get_job, job_id)

    async def get_flow(self, flow_id: str) -> dict[str, Any]:
        return await self._run(self.sync.get_flow, flow_id)

    async def list_queues(self) -> list[dict[str, Any]]:
        return await self._run(self.sync.list_queues)

    async def get_queue_stats(self, queue: str) -> dict[str, Any]:
        return await self._run(self.sync.get_queue_stats, queue)

    async def get_dlq_jobs(self, queue: str, limit: int = 100) -> list[dict[str, Any]]:
        return await self._run(self.sync.get_dlq_jobs, queue, limit)

    async def pause_queue(self, queue: str) -> None:
        await self._run(self.sync.pause_queue, queue)

    async def resume_queue(self, queue: str) -> None:
        await self._run(self.sync.resume_queue, queue)

    async def create_schedule(self, schedule: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        return await self._run(self.sync.create_schedule, schedule, **fields)

    async def list_schedules(self) -> list[dict[str, Any]]:
        return await self._run(self.sync.list_schedules)

    async def get_schedule(self, name: str) -> dict[str, Any] | None:
        return await self._run(self.sync.get_schedule, name)

    async def delete_schedule(self, name: str) -> None:
        await self._run(self.sync.delete_schedule, name)

    async def pause_schedule(self, name: str) -> None:
        await self._run(self.sync.pause_schedule, name)

    async def resume_schedule(self, name: str) -> None:
        await self._run(self.sync.resume_schedule, name)

    async def health(self) -> dict[str, Any]:
        return await self._run(self.sync.health)


def _flatten_push_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """HTTP push items carry options flattened; accept a nested ``options`` too."""
    flat = {key: value for key, value in item.items() if key != "options"}
    flat.setdefault("data", {})
    for key, value in (item.get("options") or {}).items():
        flat.setdefault(key, value)
    return flat


def _decode_answer(status: int, reason: str, data: bytes) -> Any:
    if not data.strip():
        if status >= 400:
            raise error_from_wire("HTTP_ERROR", f"HTTP {status}: {reason}", status)
        return {"ok": True}
    try:
        body = _DECODER.decode(data)
    except msgspec.DecodeError:
        if status >= 400:
            raise error_from_wire("HTTP_ERROR", f"HTTP {status}: {reason}", status) from None
        raise error_from_wire("PARSE_ERROR", f"Invalid JSON response: {data[:200]!r}", status) from None
    raise_for_body(body, status)
    if status >= 400:
        raise error_from_wire("HTTP_ERROR", f"HTTP {status}: {reason}", status)
    return body
