"""StreamsMixin: the push side of :class:`~ib_nice_funcs.client.Client`.

``subscribe()`` and ``stream_prices()`` attach callbacks and iterators to the
IB source's live tickers (:mod:`ib_nice_funcs.streaming`); kept apart from
``client.py`` so each module stays one concern.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from .errors import IBNiceFuncsError
from .symbols import Instrument, parse_symbol

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from .config import Settings
    from .streaming import PriceStream, Subscription

__all__ = ["StreamsMixin"]


class StreamsMixin:
    """Live price streams of a Client (needs its ``_source``, ``resolve_timeout``, ``settings``)."""

    settings: Settings

    def _source(self, name: str) -> Any:  # pragma: no cover - provided by Client
        raise NotImplementedError

    def resolve_timeout(self, timeout: float | None) -> float:  # pragma: no cover
        raise NotImplementedError

    def subscribe(
        self,
        symbols: Any,
        callback: Callable[[str, float, datetime], Any],
        *,
        timeout: float | None = None,
        strict: bool = True,
    ) -> Subscription:
        """Push live prices of ``symbols`` to ``callback(symbol, price, time)``.

        ``symbols`` is one symbol or a list; ``symbol`` in the callback is as
        given, ``time`` a tz-aware UTC datetime. The callback runs on the
        subscription's own worker thread (never the event-loop thread), once
        for the current price and then on every price change; a slow callback
        gets the latest price per symbol, never a backlog. After a dropped
        connection or IB's 1101 the streams are renewed by themselves. Each
        symbol holds one market-data line until ``close()`` (or this client's
        ``close()``). Live prices always come from IB, whatever ``sources`` says.

        Blocks up to ``timeout`` seconds while subscribing.

        Raises:
            ValueError, TypeError: malformed symbols or callback (nothing sent).
            UnknownSymbolError, MarketDataNotSubscribedError,
            MarketDataLinesExhaustedError, ConnectionFailedError: with
                ``strict`` (default) when any symbol cannot be streamed;
                otherwise those symbols are listed in ``handle.errors`` (and
                when none can, the handle comes back closed).
        """
        from .streaming import Subscription

        names, items = self._stream_items(symbols)
        tickers = self._source("ib").tickers
        handle = Subscription(tickers, names, callback)
        handle.errors = self._open_stream(handle, items, self.resolve_timeout(timeout), strict)
        if len(handle.errors) < len(names):
            handle.start()
        return handle

    def stream_prices(
        self,
        symbols: Any,
        *,
        timeout: float | None = None,
        duration: float | None = None,
        strict: bool = True,
    ) -> PriceStream:
        """A sync iterator of live ``(symbol, price, time)`` updates (:class:`PriceUpdate`).

        The current price of each symbol comes first, then every change.
        Iteration ends after ``duration`` seconds (None: never), on
        ``close()`` from any thread, or on ``break``; with ``timeout``, a wait
        of more than ``timeout`` seconds for the next update raises
        RequestTimeoutError. Renewed by itself after a reconnect.

        Raises:
            The same as :meth:`subscribe` (while subscribing).
        """
        from .streaming import PriceStream

        names, items = self._stream_items(symbols)
        for name, value in (("timeout", timeout), ("duration", duration)):
            if value is not None and not (
                isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            ):
                raise ValueError(f"{name}={value!r} must be a positive number of seconds or None")
        tickers = self._source("ib").tickers
        stream = PriceStream(tickers, names, timeout=timeout, duration=duration,
                             on_timeout="raise" if strict else "stop")
        stream.errors = self._open_stream(stream, items, self.settings.timeout, strict)
        return stream

    @staticmethod
    def _open_stream(handle: Any, items: list[tuple[str, Instrument]], timeout: float,
                     strict: bool) -> dict[str, BaseException]:
        """Attach ``handle`` to live streams; non-strict failures are returned
        (and close it if all failed)."""
        try:
            errors = handle._tickers.open(handle.sink, items, timeout, strict)
        except IBNiceFuncsError as exc:
            if strict:
                raise
            errors = {name: exc for name, _ in items}
        if len(errors) == len(items):
            handle.close()
        return errors

    def _stream_items(self, symbols: Any) -> tuple[tuple[str, ...], list[tuple[str, Instrument]]]:
        one = isinstance(symbols, str) or hasattr(symbols, "secType")
        given = [symbols] if one else list(symbols)
        if not given:
            raise ValueError("give at least one symbol to stream")
        items: dict[str, Instrument] = {}
        for s in given:
            instrument = parse_symbol(s)
            items.setdefault(s if isinstance(s, str) else instrument.symbol, instrument)
        return tuple(items), list(items.items())
