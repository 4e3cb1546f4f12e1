"""LoopThread: the one background thread that owns the asyncio event loop.

ib_async is an asyncio library whose blocking helpers spin the *caller's*
event loop, which fails from worker threads ("There is no current event
loop") and inside Jupyter ("This event loop is already running"). So every
ib_async object lives on one loop in one daemon thread, and callers cross in
with ``asyncio.run_coroutine_threadsafe(...).result(timeout)``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .errors import RequestTimeoutError

__all__ = ["LoopThread", "in_daemon_thread", "shared_loop"]

log = logging.getLogger(__name__)
T = TypeVar("T")


async def _await(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


class _Slot:
    """Where the loop thread leaves a result for the one thread waiting on it."""

    __slots__ = ("done", "value", "error", "task")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[Any] | None = None

    def finish(self, value: Any, error: BaseException | None) -> None:
        self.value, self.error = value, error
        self.done.set()

    def from_task(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self.finish(None, RequestTimeoutError("the request was cancelled"))
        else:
            error = task.exception()
            self.finish(None if error else task.result(), error)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


class LoopThread:
    """An asyncio event loop running forever in a daemon thread.

    Threading contract: :meth:`run` may be called from any thread except the
    loop thread itself; it blocks the caller until the coroutine finishes or
    the timeout passes. The coroutine is *built* inside the loop thread (the
    caller passes a zero-argument factory), because ib_async creates its
    request futures at call time and they must belong to this loop.
    """

    def __init__(self, name: str = "ib-nice-funcs-loop") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._shutdown_hooks: list[Callable[[], Awaitable[Any]]] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started on first use."""
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            loop = self._start()
        return loop

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None and self._thread is not None and self._thread.is_alive():
                return self._loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def main() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                try:
                    loop.run_forever()
                finally:
                    loop.close()

            thread = threading.Thread(target=main, name=self._name, daemon=True)
            thread.start()
            if not ready.wait(5.0):  # pragma: no cover - a thread that cannot start
                raise RuntimeError("the ib_nice_funcs event-loop thread did not start")
            self._loop, self._thread = loop, thread
            return loop

    def in_loop_thread(self) -> bool:
        """True when called from the loop thread itself."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, factory: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Schedule ``factory()`` on the loop; return a concurrent future at once."""

        async def invoke() -> T:
            return await factory()

        return asyncio.run_coroutine_threadsafe(invoke(), self.loop)

    def run(self, factory: Callable[[], Awaitable[T]], timeout: float, what: str = "request") -> T:
        """Run ``factory()`` on the loop thread and wait for its result.

        Blocks the calling thread for at most ``timeout`` seconds.

        Args:
            factory: zero-argument callable returning an awaitable; called in
                the loop thread.
            timeout: seconds to wait; the coroutine is cancelled after it.
            what: words for the timeout message, e.g. ``"price of AAPL"``.

        Raises:
            RequestTimeoutError: no result within ``timeout``.
            RuntimeError: called from the loop thread (it would deadlock).
            Exception: whatever the coroutine raised.
        """
        if self.in_loop_thread():
            raise RuntimeError(
                "a blocking ib_nice_funcs call was made from its own event-loop thread; "
                "use ib_nice_funcs.aio (the coroutine API) inside callbacks"
            )
        # A leaner bridge than run_coroutine_threadsafe (one task, no chained
        # futures): the hop is benchmarked against a bare in-loop await.
        loop = self.loop
        slot = _Slot()

        def start() -> None:
            try:
                slot.task = loop.create_task(_await(factory))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                slot.finish(None, exc)
                return
            slot.task.add_done_callback(slot.from_task)

        loop.call_soon_threadsafe(start)
        if not slot.done.wait(timeout):
            loop.call_soon_threadsafe(slot.cancel)
            raise _timeout_error(what, timeout) from None
        if slot.error is not None:
            raise slot.error
        return slot.value

    async def run_async(self, factory: Callable[[], Awaitable[T]], timeout: float,
                        what: str = "request") -> T:
        """Await ``factory()`` run on the loop thread, from another event loop.

        The coroutine version of :meth:`run` for callers with their own loop
        (``ib_nice_funcs.aio``): no thread waits, the caller's loop is woken
        when the result is ready (``run_coroutine_threadsafe`` +
        ``asyncio.wrap_future``). Waits up to ``timeout`` seconds; on timeout,
        or when the awaiting task is cancelled, the work on the loop thread
        is cancelled too.

        Awaited on the loop thread itself (the trading layer's coroutines
        price their orders this way), ``factory()`` is simply awaited there,
        with the same timeout.

        Raises:
            RequestTimeoutError: no result within ``timeout``.
            Exception: whatever the coroutine raised.
        """
        if self.in_loop_thread():
            try:
                return await asyncio.wait_for(_await(factory), timeout)
            except asyncio.TimeoutError:
                raise _timeout_error(what, timeout) from None
        future = self.submit(factory)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except asyncio.TimeoutError:
            future.cancel()
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception() from None  # type: ignore[misc]
            raise _timeout_error(what, timeout) from None
        finally:
            future.cancel()  # a cancelled caller: the work ends with it (no-op when done)

    def add_shutdown_hook(self, hook: Callable[[], Awaitable[Any]]) -> None:
        """Run ``hook()`` on the loop when the loop is stopped (e.g. disconnect)."""
        with self._lock:
            self._shutdown_hooks.append(hook)

    def remove_shutdown_hook(self, hook: Callable[[], Awaitable[Any]]) -> None:
        with self._lock:
            if hook in self._shutdown_hooks:
                self._shutdown_hooks.remove(hook)

    def stop(self, timeout: float = 3.0) -> None:
        """Run the shutdown hooks, cancel the tasks left, stop the loop and join the thread.

        Each step is bounded by ``timeout`` seconds.
        """
        with self._lock:
            loop, thread, hooks = self._loop, self._thread, list(self._shutdown_hooks)
            self._shutdown_hooks.clear()
        if loop is None or thread is None or not thread.is_alive():
            return
        if threading.current_thread() is thread:  # pragma: no cover - defensive
            loop.stop()
            return

        async def run_hooks() -> None:
            for hook in hooks:
                try:
                    await asyncio.wait_for(hook(), timeout)
                except Exception:  # noqa: BLE001 - shutdown must go on
                    log.debug("shutdown hook failed", exc_info=True)

        async def cancel_the_rest() -> None:
            # Nothing outlives the loop: a task still pending here (a bar
            # subscription being opened for a caller that timed out, a
            # heartbeat) is cancelled and awaited, not destroyed pending.
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
            for task in rest:
                task.cancel()
            if rest:
                await asyncio.wait(rest, timeout=timeout)

        for step in (run_hooks, cancel_the_rest):
            try:
                asyncio.run_coroutine_threadsafe(step(), loop).result(timeout + 1)
            except Exception:  # noqa: BLE001
                log.debug("shutdown step %s did not finish", step.__name__, exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        with self._lock:
            if self._thread is thread:
                self._loop, self._thread = None, None


def _timeout_error(what: str, timeout: float) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"{what} got no answer within {timeout:g} s; the gateway may be busy or "
        "unreachable: check it, or raise the timeout (IB_NICE_FUNCS_TIMEOUT)"
    )


async def in_daemon_thread(fn: Callable[[], T], name: str = "ib-nice-funcs-aio") -> T:
    """Await a blocking ``fn()`` run on a new daemon thread.

    For plain synchronous work (yfinance, a user's source) awaited from an
    agent's loop: a thread per call, so concurrent calls never queue behind
    a pool, and a daemon one, so a call still running when ``asyncio.run``
    ends never holds the interpreter's exit (a pool's threads are joined at
    exit). The caller bounds ``fn`` (it gets a timeout); cancelling the
    await stops the wait, and ``fn``'s late result is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def work() -> None:
        try:
            value, error = fn(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting
            pass

    threading.Thread(target=work, name=name, daemon=True).start()
    return await future


_shared: LoopThread | None = None
_shared_lock = threading.Lock()


def shared_loop() -> LoopThread:
    """The process-wide loop thread every `Client` shares (created on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LoopThread()
            atexit.register(_shared.stop)
        return _shared
