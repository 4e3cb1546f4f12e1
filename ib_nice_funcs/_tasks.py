"""Work several callers wait on, that ends when the last of them stops waiting.

The loop thread shares one download between callers asking for the same
thing (a bar subscription being opened, an identical chunk in flight). A
plain ``asyncio.shield`` keeps such work running after every caller has
timed out or been cancelled: it goes on sending requests nobody will read,
and its failure is logged as "Future exception was never retrieved".
:class:`SharedTask` counts its waiters instead and cancels the work when
the count drops to zero; :func:`quiet_future` marks a future's exception as
retrieved for work deliberately left running.

Threading contract: loop thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["SharedTask", "quiet_future"]

T = TypeVar("T")


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def quiet_future(future: asyncio.Future[T]) -> asyncio.Future[T]:
    """Mark ``future``'s exception as retrieved once it ends; returns it.

    For work that may legitimately outlive its waiters (an answer already
    asked of IB, kept to share with a caller that asks again): its failure is
    seen by whoever awaits it, and nobody else needs a log line about it.
    """
    future.add_done_callback(_retrieve)
    return future


class SharedTask(Generic[T]):
    """A task awaited by one or more callers; cancelled when none is left waiting.

    Args:
        coro: The work, started at once as a task on the running loop.
    """

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self.task: asyncio.Task[T] = quiet_future(asyncio.ensure_future(coro))  # type: ignore[assignment]
        self.waiters = 0

    def done(self) -> bool:
        return self.task.done()

    def cancel(self) -> None:
        self.task.cancel()

    async def wait(self) -> T:
        """The task's result. A waiter that is cancelled leaves the others
        waiting; the last one to leave cancels the task.

        Raises:
            Whatever the task raised; CancelledError when this waiter is
            cancelled (or the task was).
        """
        self.waiters += 1
        try:
            return await asyncio.shield(self.task)
        finally:
            self.waiters -= 1
            if self.waiters == 0 and not self.task.done():
                self.task.cancel()
