"""Group commit for the SQLite backend: one writer connection, many callers per COMMIT.

Callers submit write operations (plain functions of a ``sqlite3.Connection``). Everything submitted
runs in ONE ``BEGIN IMMEDIATE`` transaction per group (each operation isolated by a SAVEPOINT when the
group holds more than one, so a failing operation undoes only itself); each caller's future resolves
only after that COMMIT. Concurrent calls therefore share commits, and every call returns after its
effects are committed.

Two executors share the one connection (serialised by a lock):

* the **loop fast path**: operations submitted from the owning event loop during one loop iteration
  form a group that runs on the loop thread at the next one. A group that is a crowd by then (at least
  ``GATHER_MIN_GROUP`` operations: a server serving requests from many connections, whose handlers
  reach the storage a few awaits apart) waits while each iteration brings it more operations, up to
  ``GATHER_ITERATIONS`` more iterations, so they share one COMMIT; a lone operation, or a producer and
  a consumer taking turns, is committed at once. It never waits for a lock:
  ``BEGIN IMMEDIATE`` is tried without a busy timeout, and a busy file hands the group to the thread.
  Used with ``synchronous=NORMAL``, where a COMMIT does not fsync. This avoids two thread hand-offs
  per call, which cost more than a small claim or ack.
* the **writer thread** drains a queue of operations (from other threads or loops, from busy fast-path
  groups, and every write with ``synchronous=FULL``, whose fsync must not block the loop), waiting
  for other processes' write locks with a bounded retry.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("rustqueue.storage.sqlite")

T = TypeVar("T")
WriteFn = Callable[..., Any]
#: ``merge(conn, [args, ...]) -> [result, ...]`` runs several calls of one operation as one.
MergeFn = Callable[[sqlite3.Connection, list[tuple[Any, ...]]], list[Any]]

#: Largest number of operations committed together (bounds latency of the first caller in a group).
MAX_GROUP = 512
#: Extra loop iterations a fast-path group may wait while each one brings it more operations. A
#: COMMIT and its BEGIN cost more than an iteration, and fewer, larger groups also write fewer WAL
#: pages; the bound keeps the first caller's added latency to a few iterations.
GATHER_ITERATIONS = 3
#: Fewest operations a group must hold when it is due to wait for more. Two callers taking turns (a
#: producer and a consumer in one process) have nobody else to wait for, and an idle loop iteration
#: is a cost to them.
GATHER_MIN_GROUP = 3
#: How long a write waits for another process's write lock before failing.
DEFAULT_BUSY_TIMEOUT_S = 30.0


def is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def connect(path: Path | str, *, synchronous: str, busy_timeout_s: float, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with the backend's pragmas.
    ``busy_timeout_s = 0`` makes lock waits fail at once (the caller retries)."""
    conn = sqlite3.connect(
        str(path),
        timeout=min(busy_timeout_s, 5.0),
        isolation_level=None,
        check_same_thread=False,
        cached_statements=512,
    )
    conn.execute(f"PRAGMA busy_timeout = {int(min(busy_timeout_s, 5.0) * 1000)}")
    if not readonly:
        _retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"), busy_timeout_s)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -16000")
    conn.execute("PRAGMA foreign_keys = OFF")
    return conn


def _retry_busy(fn: Callable[[], T], budget_s: float) -> T:
    """Run ``fn``, retrying while another process holds a lock, for up to ``budget_s`` seconds."""
    deadline = time.monotonic() + budget_s
    delay = 0.001
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


class _Op:
    __slots__ = ("args", "fn", "future", "loop")

    def __init__(
        self, fn: WriteFn, args: tuple[Any, ...], future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop
    ):
        self.fn = fn
        self.args = args
        self.future = future
        self.loop = loop


_STOP = object()

#: Commits between background checkpoints (a checkpoint also runs at least every second when busy).
CHECKPOINT_EVERY_COMMITS = 256
#: WAL length (frames, 4 KB pages each) past which the checkpointer restarts the log. Under steady
#: writes a PASSIVE checkpoint never catches up with the writer, so the WAL only grows; every page read
#: then searches one more wal-index hash table per 4,096 frames, and claims and acks slow down as the
#: file grows (past 0.6 GB was seen). A RESTART checkpoint holds writers back while it copies the last
#: frames, so the next commit starts the log from its beginning (and ``journal_size_limit`` truncates
#: the file).
WAL_RESTART_FRAMES = 16_384
#: How long the RESTART checkpoint waits for the writer's current transaction to end.
RESTART_WAIT_MS = 250


class _Checkpointer:
    """Copies the WAL back into the database file from its own connection and thread.

    The writer connection has ``wal_autocheckpoint`` off: an automatic checkpoint runs inside the
    COMMIT that crosses the threshold and fsyncs there, which would stall that caller (and, on the loop
    fast path, the event loop) for a disk flush. A PASSIVE checkpoint from another connection copies
    committed frames without blocking writers or readers; the WAL restarts from its beginning once a
    checkpoint has caught up.
    """

    def __init__(self, path: Path | str, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._wake = threading.Event()
        self._stopping = False
        #: completed RESTART checkpoints (the WAL started over)
        self.restarts = 0
        self._thread = threading.Thread(target=self._run, name=f"rustqueue-sqlite-checkpoint:{path}", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _restart(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            self.restarts += 0 if busy else 1
            log.debug("WAL restart: busy=%s frames=%s copied=%s", busy, frames, copied)
        finally:
            conn.execute("PRAGMA busy_timeout = 0")

    def _run(self) -> None:
        conn = connect(self._path, synchronous=self._synchronous, busy_timeout_s=0.0, readonly=True)
        try:
            while not self._stopping:
                self._wake.wait(1.0)
                self._wake.clear()
                try:
                    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if row is not None and row[1] > WAL_RESTART_FRAMES:
                        self._restart(conn)
                except sqlite3.Error as exc:  # busy with another process's checkpoint: next time
                    log.debug("checkpoint skipped: %s", exc)
        finally:
            conn.close()


def _resolve(done: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in done:
        if future.done():
            continue  # the caller was cancelled; its effects are committed all the same
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class GroupCommitWriter:
    """The single writer of one SQLite file in this process."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        on_open: Callable[[sqlite3.Connection], None] | None = None,
        merge: dict[WriteFn, MergeFn] | None = None,
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._on_open = on_open
        self._merge: dict[WriteFn, MergeFn] = dict(merge or {})
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._conn_lock = threading.Lock()
        self._fast_path = synchronous.upper() != "FULL"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Op] = []
        self._flush_scheduled = False
        #: pending operations seen by the last gathering check, and iterations waited so far
        self._gathered = 0
        self._gather_rounds = 0
        #: operations handed to the thread and not yet finished; while any exist, new ones follow them
        self._thread_backlog = 0
        self._checkpointer: _Checkpointer | None = None
        self._since_checkpoint = 0
        self._backlog_lock = threading.Lock()
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self.commits = 0
        self.operations = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"rustqueue-sqlite-writer:{self.path}", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._ready.wait)
        if self._open_error is not None:
            self._thread.join()
            self._thread = None
            raise self._open_error

    async def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        if self._pending:
            self._flush_pending()  # calls submitted before close still commit
        self._queue.put(_STOP)
        await asyncio.to_thread(thread.join)
        self._thread = None
        closed = RuntimeError("SQLite storage is closed")
        while True:  # anything queued after the stop marker was never run
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                break
            if op is not _STOP:
                self._deliver([op], [(False, closed)])

    @property
    def running(self) -> bool:
        return self._thread is not None

    async def submit(self, fn: WriteFn, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` inside the next group transaction; return after its COMMIT."""
        if self._thread is None:
            raise RuntimeError("SQLite storage is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        op = _Op(fn, args, future, loop)
        if self._fast_path and loop is self._loop and self._thread_backlog == 0:
            self._pending.append(op)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._gathered = GATHER_MIN_GROUP - 1
                self._gather_rounds = 0
                loop.call_soon(self._gather)
        else:
            self._to_thread([op])
        return await future

    def _to_thread(self, ops: list[_Op]) -> None:
        with self._backlog_lock:
            self._thread_backlog += len(ops)
        for op in ops:
            self._queue.put(op)

    # ------------------------------------------------------------------ loop fast path
    def _gather(self) -> None:
        """Run the pending group, or wait one more iteration if it grew since the last look (at the
        first look: if it holds at least ``GATHER_MIN_GROUP`` operations)."""
        pending = len(self._pending)
        if pending > self._gathered and self._gather_rounds < GATHER_ITERATIONS and pending < MAX_GROUP:
            self._gathered = pending
            self._gather_rounds += 1
            assert self._loop is not None
            self._loop.call_soon(self._gather)
            return
        self._flush_pending()

    def _flush_pending(self) -> None:
        self._flush_scheduled = False
        group, self._pending = self._pending, []
        if not group:
            return
        conn = self._conn
        if conn is None or self._thread_backlog or not self._conn_lock.acquire(blocking=False):
            self._to_thread(group)
            return
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                self._to_thread(group)  # another process writes: let the thread wait for it
                return
            outcomes = self._execute_group(conn, group)
        except BaseException as exc:
            outcomes = [(False, exc)] * len(group)
        finally:
            self._conn_lock.release()
        for op, (ok, value) in zip(group, outcomes, strict=True):
            if op.future.done():
                continue
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(value)

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        try:
            conn = connect(self.path, synchronous=self._synchronous, busy_timeout_s=self._busy_timeout_s)
            if self._on_open is not None:
                on_open = self._on_open
                _retry_busy(lambda: on_open(conn), self._busy_timeout_s)
            # lock waits are retried explicitly (never inside a call on the loop thread)
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer thread does it
            conn.execute("PRAGMA journal_size_limit = 67108864")
            self._checkpointer = _Checkpointer(self.path, self._synchronous)
            self._conn = conn
        except BaseException as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if first is _STOP:
                    break
                group: list[_Op] = [first]
                while len(group) < MAX_GROUP:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stopping = True
                        break
                    group.append(nxt)
                with self._conn_lock:
                    self._run_group(conn, group)
                with self._backlog_lock:
                    self._thread_backlog -= len(group)
        finally:
            with self._conn_lock:
                self._conn = None
                if self._checkpointer is not None:
                    self._checkpointer.stop()
                    self._checkpointer = None
                try:
                    conn.execute("PRAGMA optimize")
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                except sqlite3.Error:
                    pass  # another process is reading or checkpointing: it will catch up
                conn.close()

    def _begin(self, conn: sqlite3.Connection) -> None:
        _retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"), self._busy_timeout_s)

    def _run_group(self, conn: sqlite3.Connection, group: list[_Op]) -> None:
        try:
            self._begin(conn)
        except BaseException as exc:
            self._deliver(group, [(False, exc)] * len(group))
            return
        self._deliver(group, self._execute_group(conn, group))

    def _execute_group(self, conn: sqlite3.Connection, group: list[_Op]) -> list[tuple[bool, Any]]:
        """Run ``group`` inside the open transaction and commit; one outcome per operation."""
        outcomes: list[tuple[bool, Any]] = []
        if len(group) == 1:
            op = group[0]
            try:
                outcomes.append((True, op.fn(conn, *op.args)))
            except BaseException as exc:
                self._rollback(conn)
                return [(False, exc)]
        else:
            optimistic = self._run_optimistic(conn, group)
            if optimistic is not None:
                return optimistic
            for merge, run in self._runs(group):
                merged = self._run_merged(conn, merge, run) if merge is not None and len(run) > 1 else None
                outcomes.extend(merged if merged is not None else (self._run_isolated(conn, op) for op in run))
        return self._commit(conn, outcomes)

    def _commit(self, conn: sqlite3.Connection, outcomes: list[tuple[bool, Any]]) -> list[tuple[bool, Any]]:
        """COMMIT the group whose operations had ``outcomes``; if it fails, every operation failed."""
        try:
            conn.execute("COMMIT")
        except BaseException as exc:
            self._rollback(conn)
            return [(False, exc)] * len(outcomes)
        self._committed(len(outcomes))
        return outcomes

    def _runs(self, group: list[_Op]) -> Iterator[tuple[MergeFn | None, list[_Op]]]:
        """``group`` cut into runs: consecutive calls of one mergeable operation, or single calls."""
        start = 0
        while start < len(group):
            fn = group[start].fn
            end = start + 1
            merge = self._merge.get(fn)
            if merge is not None:
                while end < len(group) and group[end].fn is fn:
                    end += 1
            yield merge, group[start:end]
            start = end

    def _run_optimistic(self, conn: sqlite3.Connection, group: list[_Op]) -> list[tuple[bool, Any]] | None:
        """The whole group under one SAVEPOINT, then COMMIT, instead of one SAVEPOINT per operation
        (operations rarely fail). If one raises, the group's effects are rolled back (the write lock is
        kept) and ``None`` makes the caller run the group again with each operation isolated: operations
        are functions of the database state, which is then what it was, so they decide the same way."""
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("SAVEPOINT grp")
        try:
            for merge, run in self._runs(group):
                if merge is not None and len(run) > 1:
                    outcomes.extend((True, value) for value in merge(conn, [op.args for op in run]))
                else:
                    op = run[0]
                    outcomes.append((True, op.fn(conn, *op.args)))
        except BaseException:
            conn.execute("ROLLBACK TO grp")
            conn.execute("RELEASE grp")
            return None
        conn.execute("RELEASE grp")
        return self._commit(conn, outcomes)

    def _committed(self, operations: int) -> None:
        self.commits += 1
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY_COMMITS and self._checkpointer is not None:
            self._since_checkpoint = 0
            self._checkpointer.nudge()
        self.operations += operations

    @staticmethod
    def _run_isolated(conn: sqlite3.Connection, op: _Op) -> tuple[bool, Any]:
        """One operation of a group, under a SAVEPOINT so its failure undoes only itself."""
        conn.execute("SAVEPOINT op")
        try:
            value = op.fn(conn, *op.args)
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            except sqlite3.Error:
                pass
            return (False, exc)
        conn.execute("RELEASE op")
        return (True, value)

    @staticmethod
    def _run_merged(conn: sqlite3.Connection, merge: MergeFn, run: list[_Op]) -> list[tuple[bool, Any]] | None:
        """Consecutive calls of one mergeable operation as a single statement batch (100 concurrent
        single pushes become one ``executemany``). If the merged form fails, nothing of it remains and
        ``None`` sends the calls through one by one, so each gets its own outcome."""
        conn.execute("SAVEPOINT merged")
        try:
            values = merge(conn, [op.args for op in run])
        except Exception:
            conn.execute("ROLLBACK TO merged")
            conn.execute("RELEASE merged")
            return None
        conn.execute("RELEASE merged")
        return [(True, value) for value in values]

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback failed")

    @staticmethod
    def _deliver(group: list[_Op], outcomes: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for op, (ok, value) in zip(group, outcomes, strict=True):
            by_loop.setdefault(op.loop, []).append((op.future, ok, value))
        for loop, done in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, done)
            except RuntimeError:
                pass  # the caller's loop is closed: nobody is waiting any more
