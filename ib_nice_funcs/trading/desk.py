"""What every public trading class stands on: the shared context, the router, one bridge.

:class:`Desk` is the common base of the thin public siblings
(:class:`~.orders.OrderDesk`, :class:`~.closing.ClosingDesk`,
:class:`~.positions.PositionDesk`), assembled into the
:class:`~.trader.Trader` in :mod:`.trader`. Each public method there is
written once, as a coroutine (``*_async``) for the package's loop thread;
its blocking twin is ``name = blocking(name_async)``: the same signature and
docstring, one bridge onto the loop thread with the call's budget.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from .context import GRACE_S

if TYPE_CHECKING:  # pragma: no cover
    from .context import TradingContext
    from .router import OrderRouter

__all__ = ["Desk", "blocking"]

T = TypeVar("T")
P = ParamSpec("P")
D = TypeVar("D", bound="Desk")


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

    def budget(self, method: str, timeout: float | None = None) -> float:
        """Seconds the public ``method`` may take with ``timeout`` (its bridge's budget).

        Raises:
            ValueError, TypeError: a malformed timeout.
        """
        return self._seconds(timeout)


def blocking(twin: Callable[Concatenate[D, P], Awaitable[T]]) -> Callable[Concatenate[D, P], T]:
    """The blocking method over the coroutine ``twin`` (named ``<name>_async``).

    It checks the arguments bind (TypeError on the caller's thread), takes the
    call's budget from :meth:`Desk.budget` (ValueError for a bad timeout,
    before anything crosses), then blocks the calling thread while ``twin``
    runs on the loop thread. Signature and docstring are the twin's.
    """
    name = twin.__name__.removesuffix("_async")
    signature = inspect.signature(twin)

    @functools.wraps(twin)
    def method(self: D, *args: P.args, **kwargs: P.kwargs) -> T:
        timeout = signature.bind(self, *args, **kwargs).arguments.get("timeout")
        return self._block(lambda: twin(self, *args, **kwargs), self.budget(name, timeout), name)

    method.__name__ = name
    method.__qualname__ = twin.__qualname__.removesuffix("_async")
    twin.__doc__ = (f"The coroutine of :meth:`{name}` for the package's loop thread (it waits "
                    f"where ``{name}`` blocks; ``ib_nice_funcs.aio`` awaits it).\n\n"
                    f"{twin.__doc__ or ''}")
    return method
