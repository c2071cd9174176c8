"""Blocking facade over the async engine (SEMANTICS §7.2).

``SyncRustQueue`` owns a private event loop on a background thread and runs every engine call there,
so it can be used from plain scripts, WSGI apps and any number of threads::

    with RustQueue.sqlite("jobs.db").build_sync() as rq:
        rq.push("emails", "send", {"to": "a@b.c"})
        rq.run_worker("emails", send_email, concurrency=4)   # blocks; Ctrl-C or SIGTERM drains

Every async method of ``RustQueue`` is available under the same name and blocks until done. Calling
it from inside a running event loop raises ``RuntimeError``: blocking would stall that loop, so use
the async API there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from rustqueue_core.errors import Closed
from rustqueue_core.signals import ShutdownSignals

if TYPE_CHECKING:
    from rustqueue_core.engine import RustQueue
    from rustqueue_core.models import WorkerStats

__all__ = ["SyncRustQueue"]

T = TypeVar("T")

EngineSource = Any  # a RustQueue, or a callable returning one (or an awaitable of one)

#: The state of an engine (embedded or remote) whose ``start()`` has not run yet.
_UNSTARTED_STATE = "starting"


class SyncRustQueue:
    """A blocking ``RustQueue``: same method names, no ``await``. Safe to share between threads.

    Build with ``RustQueue.memory().build_sync()`` (or ``.sqlite(path)``, ``.open(url)``), or wrap an
    engine object: ``SyncRustQueue(engine)`` starts it on the private loop unless it is already ready.
    Close with ``close()`` or use it as a context manager.
    """

    def __init__(self, engine: EngineSource) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        # The thread gets the loop only, never ``self``, so a forgotten facade can be collected.
        self._thread = threading.Thread(target=_run_loop, args=(self._loop,), name="rustqueue-sync-loop", daemon=True)
        self._thread.start()
        try:
            self._engine: RustQueue = self._submit(_open_engine(engine))
        except BaseException:
            _stop_loop(self._loop, self._thread)
            raise
        # Closes the engine at interpreter exit (or collection) if the owner never called close(),
        # so a durable store is still flushed. close() runs it explicitly.
        self._close_grace = [30.0]
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._thread, self._engine, self._close_grace)
        self._finalizer.atexit = False
        _close_before_interpreter_shutdown(self._finalizer)

    @classmethod
    def from_builder(cls, builder: Any) -> SyncRustQueue:
        """Build and start the engine of ``builder`` on a new private loop (``builder.build_sync()``)."""
        return cls(builder.build)

    # ------------------------------------------------------------------ loop plumbing
    def _submit(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop and block until it finishes."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def _guard(self, name: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                f"SyncRustQueue.{name}() was called from a running event loop, which it would block; "
                f"use the async API instead (await rq.{name}(...) on a RustQueue)"
            )
        if self._closed:
            raise Closed()

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call engine method ``name`` on the private loop and return its (awaited) result."""
        self._guard(name)
        return self._submit(_invoke(getattr(self._engine, name), args, kwargs))

    def __getattr__(self, name: str) -> Any:
        engine = self.__dict__.get("_engine")
        if engine is None or name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(engine, name)
        if not callable(attr):
            return attr

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self.call(name, *args, **kwargs)

        blocking.__name__ = name
        blocking.__qualname__ = f"SyncRustQueue.{name}"
        blocking.__doc__ = getattr(attr, "__doc__", None)
        return blocking

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        engine = self.__dict__.get("_engine")
        if engine is not None:
            names.update(n for n in dir(engine) if not n.startswith("_"))
        return sorted(names)

    @property
    def engine(self) -> RustQueue:
        """The async engine (use it only from the facade's loop, e.g. inside async handlers)."""
        return self._engine

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    # ------------------------------------------------------------------ worker
    def run_worker(
        self,
        queue: str,
        handler: Any,
        *,
        shutdown: threading.Event | None = None,
        **options: Any,
    ) -> WorkerStats:
        """Run a worker until ``shutdown`` is set, blocking the calling thread (SEMANTICS §7.3).

        Plain-function handlers run in the worker's thread pool; async handlers on the private loop.
        From the main thread, SIGINT and SIGTERM start a graceful shutdown (a second one cancels the
        remaining jobs at once, releasing them, and raises ``KeyboardInterrupt``); the previous signal
        handlers are restored afterwards. Options are those of ``RustQueue.run_worker``.
        """
        self._guard("run_worker")
        stop = shutdown if shutdown is not None else threading.Event()
        holder: dict[str, asyncio.Task[Any]] = {}

        async def runner() -> WorkerStats:
            task = asyncio.current_task()
            assert task is not None
            holder["task"] = task
            run = getattr(self._engine, "run_worker", None)
            if run is None:
                from rustqueue_core.worker import run_worker

                return await run_worker(self._engine, queue, handler, shutdown=stop, **options)
            result: WorkerStats = await run(queue, handler, shutdown=stop, **options)
            return result

        forced = threading.Event()

        def cancel_now() -> None:
            forced.set()
            task = holder.get("task")
            if task is not None:
                self._loop.call_soon_threadsafe(task.cancel)

        restore = _install_signal_handlers(stop, cancel_now)
        try:
            future = asyncio.run_coroutine_threadsafe(runner(), self._loop)
            while True:
                try:
                    # A short timeout keeps the main thread responsive to signal handlers.
                    return future.result(timeout=0.25)
                except concurrent.futures.TimeoutError:
                    continue
                except concurrent.futures.CancelledError:
                    if forced.is_set():
                        raise KeyboardInterrupt from None
                    raise
        finally:
            restore()

    # ------------------------------------------------------------------ lifecycle
    def close(self, grace: float = 30.0) -> None:
        """Close the engine (draining workers), then stop the private loop. Idempotent."""
        if not self._closed:
            self._guard("close")  # also refuses its own loop thread, where it would deadlock
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._close_grace[0] = grace
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> SyncRustQueue:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else getattr(self.__dict__.get("_engine"), "state", "?")
        return f"<SyncRustQueue {state}>"


#: Finalizers of live facades. Interpreter shutdown stops thread pools before ``atexit`` handlers
#: run, and closing an engine may need one (storage threads), so these run earlier, from a
#: ``threading`` exit hook.
_LIVE_FINALIZERS: set[weakref.finalize] = set()  # type: ignore[type-arg]
_exit_hook_installed = False
_exit_hook_lock = threading.Lock()


def _close_before_interpreter_shutdown(finalizer: weakref.finalize) -> None:  # type: ignore[type-arg]
    global _exit_hook_installed
    with _exit_hook_lock:
        _LIVE_FINALIZERS.difference_update([f for f in _LIVE_FINALIZERS if not f.alive])
        _LIVE_FINALIZERS.add(finalizer)
        if _exit_hook_installed:
            return
        _exit_hook_installed = True
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - every supported Python has it
        import atexit

        atexit.register(_run_live_finalizers)
    else:
        register(_run_live_finalizers)


def _run_live_finalizers() -> None:
    for finalizer in list(_LIVE_FINALIZERS):
        try:
            finalizer()
        except Exception as exc:  # at exit there is nobody left to raise to
            print(f"rustqueue: closing an engine at exit failed: {exc!r}", file=sys.stderr)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


def _shutdown(loop: asyncio.AbstractEventLoop, thread: threading.Thread, engine: Any, grace: list[float]) -> None:
    """Close ``engine`` on ``loop``, then stop the loop and its thread. Holds no facade reference."""
    if loop.is_running():
        try:
            close = asyncio.run_coroutine_threadsafe(engine.close(grace[0]), loop)
            close.result(timeout=grace[0] + 30.0)
        finally:
            _stop_loop(loop, thread)


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if loop.is_closed():
        return
    if loop.is_running():
        try:
            asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop).result(timeout=5)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    if not loop.is_running():
        loop.close()


async def _invoke(method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = method(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _open_engine(source: EngineSource) -> RustQueue:
    """Resolve ``source`` to an engine on the private loop and start it unless it already runs."""
    from rustqueue_core.engine import RustQueue

    engine: Any = source
    if not isinstance(source, RustQueue) and callable(source) and not hasattr(source, "claim"):
        engine = source()
    if inspect.isawaitable(engine):
        engine = await engine
    if getattr(engine, "state", None) == _UNSTARTED_STATE and hasattr(engine, "start"):
        started = engine.start()
        if inspect.isawaitable(started):
            started = await started
        if started is not None:
            engine = started
    return engine  # type: ignore[no-any-return]


def _install_signal_handlers(stop: threading.Event, cancel_now: Callable[[], None]) -> Callable[[], None]:
    """SIGINT/SIGTERM set ``stop``; a second one calls ``cancel_now`` (a repeat of the first within
    ``REPEAT_WINDOW_S`` is the same request). Main thread only; returns a function restoring the previous
    handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}

    signals = ShutdownSignals()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if signals.classify(signum) == "same":
            return  # a launcher's copy of the first signal, not a second request
        if stop.is_set():
            cancel_now()
        else:
            stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, on_signal)
        except (ValueError, OSError):
            continue

    def restore() -> None:
        for sig, handler in previous.items():
            try:
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            except (ValueError, OSError):
                pass

    return restore
