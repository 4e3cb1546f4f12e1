"""What every public trading class stands on: the shared context, the router, one bridge.

:class:`Desk` is the common base of the thin public siblings
(:class:`~.orders.OrderDesk`, :class:`~.closing.ClosingDesk`,
:class:`~.positions.PositionDesk`), assembled into the
:class:`~.trader.Trader` in :mod:`.trader`. Each public method there is a
coroutine (``*_async``) for the package's loop thread plus a blocking
one-liner over it through :meth:`Desk._block`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from .context import GRACE_S

if TYPE_CHECKING:  # pragma: no cover
    from .context import TradingContext
    from .router import OrderRouter

__all__ = ["Desk"]

T = TypeVar("T")


class Desk:
    """The context and router a public trading class works with.

    Threading contract: the blocking methods of subclasses may be called from
    any thread except the package's loop thread; their ``*_async`` twins run
    on the loop thread (``ib_nice_funcs.aio`` awaits them there).
    """

    def __init__(self, ctx: TradingContext, router: OrderRouter) -> None:
        self.ctx = ctx
        self.router = router

    def _block(self, work: Callable[[], Awaitable[T]], seconds: float, what: str) -> T:
        """Run ``work()`` on the loop thread and block up to ``seconds`` (+grace) for it.

        The coroutine keeps its own deadline and returns a proper result by
        then; the grace only covers the hops.

        Raises:
            RequestTimeoutError: no answer in time.
            Whatever the coroutine raised.
        """
        return self.ctx.gateway.call(work, seconds + 2 * GRACE_S, what)

    def _seconds(self, timeout: float | None) -> float:
        """The call's budget: ``timeout``, or the setting (ValueError on a bad timeout)."""
        return self.ctx.client.resolve_timeout(timeout)
