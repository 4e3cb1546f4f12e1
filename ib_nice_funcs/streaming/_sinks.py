"""Where live prices go: mailboxes filled on the loop thread, drained elsewhere.

The loop thread never runs agent code. It hands each price update to a
*sink* (``deliver(symbol, price, time)``, cheap and non-blocking) and the
agent's side takes it from there:

* :class:`Subscription`: a worker thread of its own calls the agent's callback;
* :class:`PriceStream`: the consuming thread pulls updates (a sync iterator);
* :class:`AsyncPriceStream` (in :mod:`ib_nice_funcs.aio`): the agent's event
  loop is woken with ``call_soon_threadsafe``.

Mailboxes keep the *latest* update per symbol, oldest symbol first: a slow
consumer sees fresh prices, never a backlog of old ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import RequestTimeoutError

if TYPE_CHECKING:  # pragma: no cover
    from ._tickers import Tickers

__all__ = ["PriceUpdate", "Mailbox", "Subscription", "PriceStream"]

log = logging.getLogger("ib_nice_funcs")

_CLOSED = object()
_TIMEOUT = object()
#: A closing Subscription waits this long for a running callback to return.
_JOIN_S = 2.0


class PriceUpdate(NamedTuple):
    """One live price: ``symbol`` as the caller wrote it, ``time`` tz-aware UTC."""

    symbol: str
    price: float
    time: datetime


class Mailbox:
    """Latest update per symbol, filled by the loop thread, drained by one consumer.

    Threading contract: :meth:`deliver` and :meth:`close` may be called from
    any thread and never block for long; :meth:`take` blocks its caller.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._pending: OrderedDict[str, PriceUpdate] = OrderedDict()
        self.closed = False

    def deliver(self, symbol: str, price: float, when: datetime) -> None:
        with self._cond:
            if self.closed:
                return
            self._pending.pop(symbol, None)
            self._pending[symbol] = PriceUpdate(symbol, price, when)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._pending.clear()
            self._cond.notify_all()

    def take(self, timeout: float | None) -> Any:
        """The next update, or ``_CLOSED`` / ``_TIMEOUT``; waits up to ``timeout``
        (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._pending and not self.closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return _TIMEOUT
                self._cond.wait(remaining)
            if self.closed:
                return _CLOSED
            return self._pending.popitem(last=False)[1]


class _Handle:
    """What :class:`Subscription` and :class:`PriceStream` share: symbols, close()."""

    def __init__(self, tickers: Tickers, symbols: tuple[str, ...]) -> None:
        self._tickers = tickers
        self._mailbox = Mailbox()
        self.symbols = symbols
        #: Symbols that could not be subscribed, with the reason (module-level calls only).
        self.errors: dict[str, BaseException] = {}
        self._close_lock = threading.Lock()

    @property
    def sink(self) -> Mailbox:
        return self._mailbox

    @property
    def closed(self) -> bool:
        return self._mailbox.closed

    def close(self) -> None:
        """Stop the updates and release the market-data lines; safe to call
        twice, from any thread."""
        with self._close_lock:
            if self._mailbox.closed:
                return
            self._mailbox.close()
        self._tickers.release_soon(self._mailbox)

    def __enter__(self):  # noqa: ANN204 - returns the subclass
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscription(_Handle):
    """Live prices of some symbols, pushed to ``callback(symbol, price, time)``.

    Threading contract: the callback runs on this subscription's own worker
    thread (named ``ib-nice-funcs-sub-N``), never on the event-loop thread,
    so it may call any blocking ib_nice_funcs function. Calls are serial; a
    slow callback skips intermediate prices (it always gets the latest one per
    symbol). An exception in the callback is logged and the stream goes on.
    After a dropped connection (or IB's 1101 "data lost") the subscription is
    renewed by itself and the first price after it is always delivered.

    ``close()`` (also on ``with`` exit) stops it; it returns once a running
    callback finished (at most 2 s), and may be called from the callback.
    """

    _count = 0

    def __init__(self, tickers: Tickers, symbols: tuple[str, ...],
                 callback: Callable[[str, float, datetime], Any]) -> None:
        super().__init__(tickers, symbols)
        if not callable(callback):
            raise TypeError(
                f"callback must be callable, got {type(callback).__name__} {callback!r}")
        self._callback = callback
        Subscription._count += 1
        self._thread = threading.Thread(
            target=self._work, name=f"ib-nice-funcs-sub-{Subscription._count}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    @property
    def active(self) -> bool:
        """True until :meth:`close`."""
        return not self._mailbox.closed

    def _work(self) -> None:
        failures = 0
        while True:
            update = self._mailbox.take(None)
            if update is _CLOSED:
                return
            try:
                self._callback(*update)
            except Exception:  # noqa: BLE001 - the agent's bug must not end the stream
                failures += 1
                level = logging.WARNING if failures <= 3 else logging.DEBUG
                log.log(level, "subscribe(): the callback raised for %s (the stream goes on)",
                        update.symbol, exc_info=True)

    def close(self) -> None:
        super().close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(_JOIN_S)

    def __repr__(self) -> str:
        state = "active" if self.active else "closed"
        return f"<Subscription {', '.join(self.symbols)} ({state})>"


class PriceStream(_Handle):
    """A sync iterator of :class:`PriceUpdate` ``(symbol, price, time)`` tuples.

    Iterate it in the thread that consumes the prices. It ends when
    ``duration`` seconds have passed, when :meth:`close` is called (from any
    thread), or, with ``timeout``, when no update came for that long: then
    ``on_timeout`` decides (``"raise"``: RequestTimeoutError; ``"stop"``: the
    iteration just ends). Breaking out of a ``for`` loop over it closes it.
    Resubscribes by itself after a dropped connection.
    """

    def __init__(self, tickers: Tickers, symbols: tuple[str, ...], *, timeout: float | None,
                 duration: float | None, on_timeout: str = "raise") -> None:
        super().__init__(tickers, symbols)
        self._timeout = timeout
        self._end = None if duration is None else time.monotonic() + duration
        self._on_timeout = on_timeout

    def __iter__(self) -> PriceStream:
        return self

    def __next__(self) -> PriceUpdate:
        wait = self._timeout
        if self._end is not None:
            left = self._end - time.monotonic()
            if left <= 0:
                self.close()
                raise StopIteration
            wait = left if wait is None else min(wait, left)
        update = self._mailbox.take(wait)
        if update is _CLOSED:
            raise StopIteration
        if update is _TIMEOUT:
            if self._end is not None and time.monotonic() >= self._end:
                self.close()
                raise StopIteration
            self.close()
            what = f"stream_prices({', '.join(self.symbols)})"
            if self._on_timeout == "raise":
                raise RequestTimeoutError(
                    f"{what}: no price update within {self._timeout:g} s; the market may be "
                    "closed or the gateway unreachable (ib-nice-funcs doctor)"
                )
            log.warning("%s: no price update within %g s; the stream ends (market closed, or "
                        "gateway unreachable: run ib-nice-funcs doctor)", what, self._timeout)
            raise StopIteration
        return update

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<PriceStream {', '.join(self.symbols)} ({state})>"
