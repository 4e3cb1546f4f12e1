"""Run an asyncio server object on its own daemon thread and event loop.

Shared by the TWS and Client Portal simulator runners: synchronous tests,
the demo and the CLI drive the simulators from other threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

__all__ = ["serve_in_thread", "call_in_loop", "apply_in_loop"]

log = logging.getLogger(__name__)


class _Server(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=_Server)


@contextlib.contextmanager
def serve_in_thread(
    make: Callable[[], S], name: str, startup_timeout: float
) -> Iterator[tuple[S, asyncio.AbstractEventLoop]]:
    """Build the server with ``make()`` on a new loop thread, start it, yield it.

    Blocks until the server listens. On exit stops the server, cancels what
    is left on its loop and joins the thread (bounded by ``startup_timeout``).

    Raises:
        Exception: whatever ``make()`` or ``start()`` raised (e.g. OSError).
        TimeoutError: the server did not start within ``startup_timeout`` s.
    """
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            server = make()
            loop.run_until_complete(server.start())
        except BaseException as exc:  # hand start-up failures to the caller
            ready.set_exception(exc)
            loop.close()
            return
        ready.set_result(server)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(server.stop())
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=main, name=name, daemon=True)
    thread.start()
    try:
        server = ready.result(startup_timeout)
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"{name} did not start within {startup_timeout} s") from None
    try:
        yield server, loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(startup_timeout)
        if thread.is_alive():
            log.warning("%s thread did not stop within %s s", name, startup_timeout)


def call_in_loop(loop: asyncio.AbstractEventLoop | None, fn: Callable[[], Any]) -> None:
    """Run ``fn`` on ``loop``: now when already on it, else scheduled thread-safely."""
    if loop is None:
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fn()
    else:
        loop.call_soon_threadsafe(fn)


def apply_in_loop(
    loop: asyncio.AbstractEventLoop | None,
    factory: Callable[[], Awaitable[Any]],
    timeout: float = 5.0,
) -> None:
    """Run ``factory()`` on ``loop``; from another thread, block until it is done.

    On the loop itself it is only scheduled (waiting there would deadlock).

    Raises:
        concurrent.futures.TimeoutError: not done within ``timeout`` seconds.
    """
    if loop is None:
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.create_task(factory())  # type: ignore[arg-type]
    else:
        asyncio.run_coroutine_threadsafe(factory(), loop).result(timeout)  # type: ignore[arg-type]
