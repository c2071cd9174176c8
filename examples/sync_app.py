"""The blocking facade: use rustqueue from plain threads, no asyncio in sight.

Run: python examples/sync_app.py
Four threads push jobs at once; then a plain-function worker (run in a thread pool) processes them
and stops when a ``threading.Event`` is set. From the main thread, Ctrl-C or SIGTERM would drain it
gracefully instead.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from rustqueue_core import Job, RustQueue


def resize(job: Job) -> dict[str, int]:
    width = job.data["width"]
    return {"width": width // 2, "height": job.data["height"] // 2}


def main() -> None:
    with RustQueue.memory().build_sync() as rq:

        def upload(user: int) -> list[str]:
            images = [{"width": 800 + i, "height": 600, "user": user} for i in range(5)]
            return [rq.push("images", "resize", image) for image in images]

        with ThreadPoolExecutor(max_workers=4) as pool:
            ids = [job_id for batch in pool.map(upload, range(4)) for job_id in batch]
        print("pushed", len(ids), "jobs from 4 threads")

        done = threading.Event()
        remaining = set(ids)
        lock = threading.Lock()

        def handler(job: Job) -> dict[str, int]:
            result = resize(job)
            with lock:
                remaining.discard(job.id)
                if not remaining:
                    done.set()
            return result

        stats = rq.run_worker("images", handler, concurrency=4, shutdown=done)
        print(f"processed={stats.processed} succeeded={stats.succeeded}")
        first = rq.get_job(ids[0])
        print("first result", first.result)
        print("completed", rq.counts("images").completed)


if __name__ == "__main__":
    main()
