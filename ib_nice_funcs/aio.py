"""The nice_funcs API as coroutines, for agents that run their own event loop.

    from ib_nice_funcs import aio

    async def agent():
        price = await aio.token_price("AAPL")
        bars = await aio.get_ohlcv_data("BTC-USD", "15m", 1)
        async for symbol, price, when in aio.stream_prices(["AAPL", "MSFT"], timeout=60):
            ...

Works from any event loop (``asyncio.run``, Jupyter, a web framework's) and
never blocks it. The data calls await the work on the package's own
event-loop thread, where ib_async lives, directly (``asyncio.wrap_future``):
no thread waits for them, so a hundred concurrent calls do not queue, and a
call still pending when ``asyncio.run`` ends does not hold the interpreter's
exit. A synchronous source (yfinance, a plug-in) runs on a daemon thread per
call. A price served from a live ticker is returned at once, with no hop at
all. Streams wake the caller's loop with ``call_soon_threadsafe``. The
trading helpers await the Trader's coroutine twins on that thread the same way.

Same names, arguments, results and failure behaviour as the module-level
functions (operational failures give ``None`` / an empty frame /
``{"success": False, ...}`` and one WARNING; programming errors raise). The
trading helpers (``market_buy``, ``get_position``...) are here too.
Cancelling an awaiting data call cancels its work on the loop thread (a bar
download sends no further request); a request already sent is not recalled.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from . import nice_funcs as _nf
from .errors import IBNiceFuncsError, RequestTimeoutError
from .face_results import classic_days, empty_after, warn_missing_prices, warn_stream_errors
from .symbols import symbol_label

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .client import Client
    from .streaming import PriceUpdate

_TRADING = (
    "market_buy", "market_sell", "limit_buy", "limit_sell", "place_order", "cancel_order",
    "cancel_all", "get_open_orders", "get_position", "get_all_positions",
    "get_token_balance_usd", "get_account_value", "get_balance", "kill_switch", "chunk_kill",
    "close_position", "emergency_stop", "reconcile_positions", "resume_trading",
)

__all__ = [
    "token_price",
    "get_current_price",
    "token_prices",
    "get_ohlcv_data",
    "get_data",
    "subscribe",
    "stream_prices",
    "AsyncPriceStream",
    "AsyncSubscription",
    # trading helpers, wrapped on first use
    *_TRADING,
]

log = logging.getLogger("ib_nice_funcs")
T = TypeVar("T")

#: Seconds the bridge to the loop thread allows beyond a trading call's own
#: budget: the coroutine returns its result by its deadline; this covers the hops.
_BRIDGE_GRACE_S = 2.0


# -- data --------------------------------------------------------------------


async def token_price(symbol: Any, source: str = "auto") -> float | None:
    """Coroutine :func:`ib_nice_funcs.token_price`; a live ticker answers without a hop."""
    client = _nf.default_client()
    value = client.live_price(symbol, source)
    if value is not None:
        return value
    try:
        return await client.price_async(symbol, source)
    except (IBNiceFuncsError, OSError) as exc:  # OSError: a socket failing under us
        log.warning("token_price(%s) failed: %s", symbol_label(symbol), exc)
        return None


get_current_price = token_price


async def token_prices(symbols: Iterable[Any], source: str = "auto") -> dict[str, float | None]:
    """Coroutine :func:`ib_nice_funcs.token_prices`."""
    prices = await _nf.default_client().prices_async(symbols, source)
    warn_missing_prices(prices)
    return prices


async def get_ohlcv_data(symbol: Any, timeframe: str = "1H", days_back: float = 3,
                         source: str = "auto") -> pd.DataFrame:
    """Coroutine :func:`ib_nice_funcs.get_ohlcv_data`."""
    from .frames import empty_ohlcv

    what = f"get_ohlcv_data({symbol_label(symbol)}, {timeframe!r}, {days_back!r})"
    try:
        return await _nf.default_client().ohlcv_async(symbol, timeframe, days_back, source)
    except (IBNiceFuncsError, OSError) as exc:
        return empty_after(what, exc, empty_ohlcv)


async def get_data(symbol: Any, days_back_4_data: float | None = None, timeframe: str = "1H", *,
                   days_back: float | None = None, source: str = "auto") -> pd.DataFrame:
    """Coroutine :func:`ib_nice_funcs.get_data`."""
    from .frames import empty_classic

    days = classic_days(days_back_4_data, days_back)
    what = f"get_data({symbol_label(symbol)}, {days!r}, {timeframe!r})"
    try:
        return await _nf.default_client().classic_data_async(symbol, days, timeframe, source)
    except (IBNiceFuncsError, OSError) as exc:
        return empty_after(what, exc, empty_classic)


# -- streams -----------------------------------------------------------------


class _AsyncMailbox:
    """Latest update per symbol; filled on the package's loop thread, awaited on the agent's."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_dead: Callable[[_AsyncMailbox], None] | None = None) -> None:
        self._loop = loop
        self._on_dead = on_dead
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, PriceUpdate] = OrderedDict()
        self._wake = asyncio.Event()
        self.closed = False

    def deliver(self, symbol: str, price: float, when: datetime) -> None:
        from .streaming import PriceUpdate

        with self._lock:
            if self.closed:
                return
            self._pending.pop(symbol, None)
            self._pending[symbol] = PriceUpdate(symbol, price, when)
            signal = len(self._pending) == 1
        if signal:
            self._signal()

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._pending.clear()
        self._signal()

    def _signal(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the agent's loop is closed: nobody is listening
            with self._lock:
                self.closed = True
            if self._on_dead is not None:
                self._on_dead(self)

    async def take(self, timeout: float | None) -> PriceUpdate | None:
        """The next update; None when closed. Raises TimeoutError after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self.closed:
                    return None
                if self._pending:
                    return self._pending.popitem(last=False)[1]
                self._wake.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                raise TimeoutError from None


class AsyncPriceStream:
    """An async iterator of live ``(symbol, price, time)`` updates (:class:`PriceUpdate`).

    Subscribes on first ``__anext__`` (or ``async with``), in the background.
    Ends after ``duration`` seconds, on :meth:`aclose`, or when no update came
    for ``timeout`` seconds (``strict``: RequestTimeoutError; else one
    WARNING). Resumes by itself after a dropped connection.
    """

    def __init__(self, symbols: Any, *, timeout: float | None = None,
                 duration: float | None = None, strict: bool = False,
                 client: Client | None = None) -> None:
        self._client = client or _nf.default_client()
        self._names, self._items = self._client._stream_items(symbols)
        for name, value in (("timeout", timeout), ("duration", duration)):
            if value is not None and not (
                    isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
                raise ValueError(f"{name}={value!r} must be a positive number of seconds or None")
        self._timeout = timeout
        self._duration = duration
        self._strict = strict
        self._mailbox: _AsyncMailbox | None = None
        self._end: float | None = None
        self.errors: dict[str, BaseException] = {}
        self.symbols = self._names

    async def _open(self) -> None:
        self._mailbox = box = _AsyncMailbox(asyncio.get_running_loop(), self._release)
        if self._duration is not None:
            self._end = time.monotonic() + self._duration
        tickers = self._client.source("ib").tickers
        timeout = self._client.settings.timeout
        wait = min(tickers.first_tick_wait, timeout / 2)
        what = "live prices of " + ", ".join(self._names)
        loop_thread = self._client.gateway.loop
        future = loop_thread.submit(
            lambda: tickers.open_async(box, self._items, wait, what, self._strict))
        try:
            self.errors = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except asyncio.TimeoutError:
            future.cancel()
            self.errors = {n: RequestTimeoutError(f"{what}: no answer within {timeout:g} s")
                           for n in self._names}
            if self._strict:
                raise self.errors[self._names[0]] from None
        except IBNiceFuncsError as exc:
            if self._strict:
                raise
            self.errors = {n: exc for n in self._names}
        if self.errors and not self._strict:
            warn_stream_errors("aio.stream_prices", self.errors)
        if len(self.errors) == len(self._names):
            await self.aclose()

    def __aiter__(self) -> AsyncPriceStream:
        return self

    async def __anext__(self) -> PriceUpdate:
        if self._mailbox is None:
            await self._open()
        box = self._mailbox
        assert box is not None
        wait = self._timeout
        if self._end is not None:
            left = self._end - time.monotonic()
            if left <= 0:
                await self.aclose()
                raise StopAsyncIteration
            wait = left if wait is None else min(wait, left)
        try:
            update = await box.take(wait)
        except TimeoutError:
            await self.aclose()
            if self._end is not None and time.monotonic() >= self._end:
                raise StopAsyncIteration from None
            what = f"aio.stream_prices({', '.join(self._names)})"
            if self._strict:
                raise RequestTimeoutError(
                    f"{what}: no price update within {self._timeout:g} s") from None
            log.warning("%s: no price update within %g s; the stream ends (market closed, or "
                        "gateway unreachable: run ib-nice-funcs doctor)", what, self._timeout)
            raise StopAsyncIteration from None
        if update is None:
            raise StopAsyncIteration
        return update

    async def aclose(self) -> None:
        """Stop the stream and release its market-data lines (safe to call twice)."""
        box = self._mailbox
        if box is None:
            box = self._mailbox = _AsyncMailbox(asyncio.get_running_loop())
        if not box.closed:
            box.close()
            self._release(box)

    def _release(self, box: _AsyncMailbox) -> None:
        self._client.source("ib").tickers.release_soon(box)

    def __del__(self) -> None:
        # ``break`` out of ``async for`` does not close an async iterator: do it here.
        box = self._mailbox
        if box is not None and not box.closed:
            try:
                box.close()
                self._release(box)
            except Exception:  # noqa: BLE001 - never raise from a finaliser
                pass

    async def __aenter__(self) -> AsyncPriceStream:
        if self._mailbox is None:
            await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def stream_prices(symbols: Any, timeout: float | None = None,
                  duration: float | None = None) -> AsyncPriceStream:
    """Async-iterate live ``(symbol, price, time)`` updates; see :class:`AsyncPriceStream`.

    Like :func:`ib_nice_funcs.stream_prices`: never raises for operational
    failures (one WARNING; the iteration ends).

    Raises:
        ValueError, TypeError: malformed symbols, timeout or duration (at once).
    """
    return AsyncPriceStream(symbols, timeout=timeout, duration=duration, strict=False)


class AsyncSubscription:
    """Live prices pushed to a callback on the agent's own event loop;
    ``await close()`` stops it."""

    def __init__(self, stream: AsyncPriceStream, callback: Callable[..., Any]) -> None:
        self._stream = stream
        self._callback = callback
        self._task: asyncio.Task[None] | None = None
        self.symbols = stream.symbols

    @property
    def errors(self) -> dict[str, BaseException]:
        return self._stream.errors

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        async for update in self._stream:
            try:
                result = self._callback(*update)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - the agent's bug must not end the stream
                log.warning("aio.subscribe(): the callback raised for %s (the stream goes on)",
                            update.symbol, exc_info=True)

    async def close(self) -> None:
        """Stop the updates and release the market-data lines."""
        await self._stream.aclose()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def subscribe(symbols: Any, callback: Callable[..., Any]) -> AsyncSubscription:
    """Call ``callback(symbol, price, time)`` on *this* event loop with live prices.

    The callback may be a plain function or a coroutine function (awaited,
    one update at a time). Returns once subscribed; never raises for
    operational failures (see ``handle.errors``).

    Raises:
        ValueError, TypeError: malformed symbols or a non-callable callback.
    """
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__} {callback!r}")
    stream = AsyncPriceStream(symbols, strict=False)
    await stream.__aenter__()
    handle = AsyncSubscription(stream, callback)
    handle._task = asyncio.get_running_loop().create_task(handle._run())
    return handle


# -- trading (wrapped on first use) --------------------------------------------


async def _trading(name: str, *args: Any, **kwargs: Any) -> Any:
    """The module-level trading function ``name``, with the Trader's coroutine twin
    awaited on the loop thread (no thread waits) and the same failure values."""
    module_api = importlib.import_module(".trading.module_api", __package__)
    call = module_api.deferred(getattr(module_api, name), *args, **kwargs)
    if not isinstance(call, module_api.TraderCall):
        return call  # answered without the Trader (a refused symbol, a zero amount)
    try:
        trader = _nf.default_client().trading
        seconds = trader.budget(call.method, call.kwargs.get("timeout"))
        work = getattr(trader, call.method + "_async")
        value = await trader.gateway.call_async(
            lambda: work(*call.args, **call.kwargs), seconds + _BRIDGE_GRACE_S, call.method)
    except Exception as exc:  # noqa: BLE001 - the function's own finish decides (and re-raises)
        failure = exc

        def outcome() -> Any:
            raise failure

        return call.finish(outcome)
    return call.finish(lambda: value)


def _trading_face(name: str) -> Callable[..., Awaitable[Any]]:
    module_api = importlib.import_module(".trading.module_api", __package__)
    function = getattr(module_api, name)

    @functools.wraps(function)
    async def face(*args: Any, **kwargs: Any) -> Any:
        return await _trading(name, *args, **kwargs)

    face.__doc__ = (f"Coroutine version of :func:`ib_nice_funcs.{name}` (same arguments and "
                    f"result; awaited on the package's loop thread).\n\n{function.__doc__ or ''}")
    return face


def __getattr__(name: str) -> Any:
    if name in _TRADING:
        wrapper = _trading_face(name)
        globals()[name] = wrapper
        return wrapper
    raise AttributeError(f"module 'ib_nice_funcs.aio' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
