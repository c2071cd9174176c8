"""The blocking facade (SEMANTICS §7.2): a private loop thread, usable from any thread."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rustqueue_core.engine import RustQueue
from rustqueue_core.errors import Closed, JobNotFound
from rustqueue_core.models import Job
from rustqueue_core.signals import REPEAT_WINDOW_S
from rustqueue_core.sync import SyncRustQueue


@pytest.fixture
def srq() -> Iterator[SyncRustQueue]:
    rq = RustQueue.memory().housekeeping(False).build_sync()
    try:
        yield rq
    finally:
        rq.close()


def test_build_sync_gives_a_started_engine_with_blocking_methods(srq: SyncRustQueue) -> None:
    assert srq.state == "ready"
    job_id = srq.push("q", "n", {"x": 1})
    [job] = srq.claim("q", 1)
    assert job.id == job_id
    srq.ack(job_id, {"ok": True}, token=job.lease_token)
    stored = srq.get_job(job_id)
    assert (stored.state, stored.result) == ("completed", {"ok": True})
    assert srq.pull("q") == []  # aliases work too


def test_engine_errors_cross_the_thread_boundary_typed(srq: SyncRustQueue) -> None:
    with pytest.raises(JobNotFound):
        srq.ack("0190aaaa-0000-7000-8000-000000000000")


def test_safe_from_many_threads(srq: SyncRustQueue) -> None:
    def push_ten(worker: int) -> list[str]:
        return [srq.push("q", "n", {"worker": worker, "i": i}) for i in range(10)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        batches = list(pool.map(push_ten, range(8)))
    ids = [job_id for batch in batches for job_id in batch]
    assert len(set(ids)) == 80
    assert srq.counts("q").waiting == 80


def test_calling_inside_a_running_loop_raises_and_points_to_the_async_api(srq: SyncRustQueue) -> None:
    async def inside() -> None:
        srq.push("q", "n")

    with pytest.raises(RuntimeError, match="async API"):
        asyncio.run(inside())
    assert srq.counts("q").waiting == 0


def test_close_is_idempotent_and_later_calls_raise_closed(tmp_path: Path) -> None:
    with RustQueue.sqlite(str(tmp_path / "jobs.db")).build_sync() as rq:
        rq.push("q", "n")
        loop_thread = rq._thread
    assert rq.closed
    assert not loop_thread.is_alive()
    rq.close()
    with pytest.raises(Closed):
        rq.push("q", "n")
    # The data was flushed: a new facade over the same file sees the job.
    with RustQueue.sqlite(str(tmp_path / "jobs.db")).build_sync() as again:
        assert again.counts("q").waiting == 1


def test_wrapping_an_unstarted_engine_starts_it_on_the_private_loop() -> None:
    engine = RustQueue.memory().create()
    rq = SyncRustQueue(engine)
    try:
        assert rq.state == "ready"
        assert rq.engine is engine
        rq.push("q", "n")
    finally:
        rq.close()
    assert engine.state == "closed"


def test_run_worker_with_a_plain_function_until_the_event_is_set(srq: SyncRustQueue) -> None:
    ids = srq.push_batch("q", [{"name": "n", "data": {"i": i}} for i in range(5)])
    done = threading.Event()
    seen: list[int] = []

    def handler(job: Job) -> int:
        seen.append(job.data["i"])
        if len(seen) == len(ids):
            done.set()
        return job.data["i"] + 100

    stats = srq.run_worker("q", handler, concurrency=2, shutdown=done, poll_interval=0.05)
    assert stats.succeeded == 5
    assert sorted(srq.get_job(i).result for i in ids) == [100, 101, 102, 103, 104]


def test_run_worker_with_an_async_handler_runs_on_the_private_loop(srq: SyncRustQueue) -> None:
    job_id = srq.push("q", "n")
    done = threading.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    async def handler(job: Job) -> str:
        loops.append(asyncio.get_running_loop())
        done.set()
        return "async"

    srq.run_worker("q", handler, shutdown=done, poll_interval=0.05)
    assert srq.get_job(job_id).result == "async"
    assert loops == [srq.loop]


def test_sigterm_on_the_main_thread_drains_the_worker_and_restores_handlers(srq: SyncRustQueue) -> None:
    assert threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    job_id = srq.push("q", "n")
    started = threading.Event()

    def handler(job: Job) -> str:
        started.set()
        time.sleep(0.2)
        return "finished during the grace period"

    def send_sigterm() -> None:
        started.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=send_sigterm)
    killer.start()
    stats = srq.run_worker("q", handler, poll_interval=0.05, grace_period=5)
    killer.join(5)
    assert stats.succeeded == 1
    assert srq.get_job(job_id).state == "completed"
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_forgotten_facade_closes_its_engine_when_collected(tmp_path: Path) -> None:
    import gc

    rq = RustQueue.sqlite(str(tmp_path / "jobs.db")).build_sync()
    rq.push("q", "n")
    engine, thread = rq.engine, rq._thread
    del rq
    gc.collect()
    assert engine.state == "closed"
    assert not thread.is_alive()


def test_an_unclosed_facade_is_closed_cleanly_at_interpreter_exit(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "exit.db"
    script = (
        f"from rustqueue_core import RustQueue\nrq = RustQueue.sqlite({str(db)!r}).build_sync()\nrq.push('q', 'n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, "")
    with RustQueue.sqlite(str(db)).build_sync() as rq:
        assert rq.counts("q").waiting == 1


def test_close_inside_a_running_loop_raises(srq: SyncRustQueue) -> None:
    async def inside() -> None:
        srq.close()

    with pytest.raises(RuntimeError, match="async API"):
        asyncio.run(inside())
    assert not srq.closed


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(60)
def test_the_facade_drives_a_remote_engine_too(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from rustqueue_core.remote import open_remote

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUSTQUEUE_")}
    command = [sys.executable, "-m", "rustqueue_core", "serve", "--storage", "memory://"]
    command += ["--host", "127.0.0.1", "--tcp-port", str(port), "--http-port", str(_free_port())]
    server = subprocess.Popen(
        [*command, "--plugins=tcp,http"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        with SyncRustQueue(open_remote(f"tcp://127.0.0.1:{port}")) as rq:
            ids = [rq.push("remote-q", "n", {"i": i}) for i in range(3)]
            done = threading.Event()
            seen: list[str] = []

            def handler(job: Job) -> int:
                seen.append(job.id)
                if len(seen) == len(ids):
                    done.set()
                return int(job.data["i"]) + 1

            stats = rq.run_worker("remote-q", handler, shutdown=done, poll_interval=0.1)
            assert stats.succeeded == 3
            assert [rq.get_job(i).result for i in ids] == [1, 2, 3]
    finally:
        server.kill()  # memory storage: nothing to flush
        server.wait(10)


def test_a_second_signal_cancels_the_grace_period_and_raises_keyboard_interrupt(srq: SyncRustQueue) -> None:
    job_id = srq.push("q", "n")
    started = threading.Event()
    release = threading.Event()

    def handler(job: Job) -> str:
        started.set()
        release.wait(10)  # still running when both signals arrive, however slow the machine
        return "too late"

    def signal_twice() -> None:
        started.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(REPEAT_WINDOW_S + 0.2)  # a deliberate second signal, not a forwarded copy of the first
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=signal_twice)
    killer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            srq.run_worker("q", handler, poll_interval=0.05, grace_period=30)
    finally:
        release.set()
    killer.join(5)
    job = srq.get_job(job_id)
    assert (job.state, job.attempt, job.result) == ("waiting", 0, None)


def test_a_copy_of_the_first_signal_arriving_at_once_does_not_cut_the_drain_short(srq: SyncRustQueue) -> None:
    """A launcher such as ``uv run`` forwards the Ctrl-C its process group already got: the worker sees the
    same signal twice within milliseconds, and that is one request to stop, drained in full."""
    job_id = srq.push("q", "n")
    started = threading.Event()
    release = threading.Event()

    def handler(job: Job) -> str:
        started.set()
        release.wait(10)
        return "done"

    def signal_with_a_copy() -> None:
        started.wait(5)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(REPEAT_WINDOW_S + 0.3)  # the drain is still waiting for the handler
        release.set()

    killer = threading.Thread(target=signal_with_a_copy)
    killer.start()
    try:
        srq.run_worker("q", handler, poll_interval=0.05, grace_period=30)
    finally:
        release.set()
    killer.join(5)
    job = srq.get_job(job_id)
    assert (job.state, job.result) == ("completed", "done")
