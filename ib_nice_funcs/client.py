"""Client: the strict core behind the module-level nice_funcs functions.

A `Client` holds one gateway connection (lazily opened), the ordered data
sources and the caches. Its methods return typed results and raise the
:mod:`ib_nice_funcs.errors` hierarchy; the module-level functions in
:mod:`ib_nice_funcs.nice_funcs` turn those errors into ``None`` / empty
frames plus one WARNING.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from ._loop import LoopThread, shared_loop
from .config import Settings, get_settings
from .errors import (
    AllSourcesFailedError,
    IBNiceFuncsError,
    NoDataError,
    SourceUnavailableError,
    UnknownSymbolError,
)
from .symbols import Instrument, parse_symbol
from .timeframes import days_back_range, parse_timeframe

#: The longest ``timeout`` a call accepts, in seconds (an hour).
MAX_TIMEOUT_S = 3600.0

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    import pandas as pd

    from ._gateway import IBGateway
    from .streaming import PriceStream, Subscription
    from .trading import Trader

__all__ = ["Client"]

log = logging.getLogger("ib_nice_funcs")

#: Share of the remaining time a source may use when another source follows,
#: so that a hung primary still leaves the fallback time to answer.
_PRIMARY_SHARE = 0.75
#: Bars for the same range are served from cache this long; it also keeps
#: repeated calls clear of IB's "no identical request within 15 s" rule.
_BARS_TTL_S = 15.0


class Client:
    """Interactive Brokers data (and, through :attr:`trading`, orders) behind sync calls.

    Threading contract: every method may be called from any thread, from a
    plain script, from a Jupyter cell or from a web handler, concurrently.
    Each blocks the caller for at most ``timeout`` seconds (default: the
    ``timeout`` setting) while the work runs on the package's one event-loop
    thread. Nothing connects until the first call that needs the gateway.

    Use it as a context manager, or call :meth:`close`, to disconnect.
    """

    def __init__(self, settings: Settings | None = None, *, loop: LoopThread | None = None, **overrides: Any) -> None:
        base = settings if settings is not None else get_settings()
        self.settings: Settings = base.replace(**overrides) if overrides else base
        self._loop = loop or shared_loop()
        self._lock = threading.RLock()
        self._gateway: IBGateway | None = None
        self._closed = False
        self._builtin: dict[str, Any] = {}
        self._trader: Trader | None = None
        self._prices: TTLCache[tuple[str, str], float] = TTLCache(maxsize=4096, ttl=self.settings.price_ttl)
        self._bars: TTLCache[tuple[Any, ...], pd.DataFrame] = TTLCache(maxsize=256, ttl=_BARS_TTL_S)

    # -- plumbing ------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.settings
        return f"Client(host={s.host!r}, port={s.port}, client_id={s.client_id}, sources={list(s.sources)})"

    @property
    def gateway(self) -> IBGateway:
        """The IB connection manager (created on first use; connects lazily)."""
        with self._lock:
            if self._gateway is None:
                if self._closed:
                    # A fresh gateway here would quietly reconnect a closed
                    # Client (and hold its client id) with nobody to close it.
                    from .errors import ConnectionFailedError

                    raise ConnectionFailedError("this Client is closed; create a new one")
                from ._gateway import IBGateway

                self._gateway = IBGateway(self.settings, self._loop)
                # Disconnect politely at interpreter exit (the loop thread's
                # atexit stop runs the hook) even if close() is never called.
                self._loop.add_shutdown_hook(self._gateway.close_async)
            return self._gateway

    @property
    def trading(self) -> Trader:
        """Orders, positions and account helpers (never through yfinance)."""
        with self._lock:
            if self._trader is None:
                from .trading import Trader

                self._trader = Trader(self)
            return self._trader

    def close(self, timeout: float = 5.0) -> None:
        """Disconnect from the gateway; safe to call twice. Blocks up to ``timeout``.

        Open subscriptions and price streams of this client end.
        """
        with self._lock:
            self._closed = True
            gateway, self._gateway = self._gateway, None
            ib_source = self._builtin.get("ib")
            closable = [src for name, src in self._builtin.items() if name != "ib"]
            self._builtin = {"ib": ib_source} if ib_source is not None else {}
        for src in closable:
            close = getattr(src, "close", None)
            if close is not None:  # e.g. the portal's keep-alive thread
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing must not raise
                    log.debug("closing source %r failed", src, exc_info=True)
        if gateway is not None and ib_source is not None:

            async def stop_streams() -> None:
                ib_source.tickers.close_sinks()
                ib_source.leave_fleet()
                ib_source.barsubs.drop_all()

            try:
                self._loop.run(stop_streams, timeout, "stop streams")
            except Exception:  # noqa: BLE001 - closing must not raise
                log.debug("stopping streams failed", exc_info=True)
        trader = self._trader
        if trader is not None and gateway is not None:
            try:  # the shared fleet state's connections (Redis) live on the loop
                self._loop.run(trader.fleet.close, timeout, "close the fleet state")
            except Exception:  # noqa: BLE001 - closing must not raise
                log.debug("closing the fleet state failed", exc_info=True)
        if gateway is not None:
            self._loop.remove_shutdown_hook(gateway.close_async)
            try:
                self._loop.run(gateway.close_async, timeout, "disconnect")
            except Exception:  # noqa: BLE001 - closing must not raise
                log.debug("disconnect failed", exc_info=True)

    def resolve_timeout(self, timeout: float | None) -> float:
        """``timeout`` if given (validated), else the ``timeout`` setting.

        Checked before anything is sent: ``float("inf")`` would otherwise
        overflow a wait deep inside a call, possibly after an order went out.

        Raises:
            ValueError: ``timeout`` is not a finite number of seconds in
                (0, :data:`MAX_TIMEOUT_S`] (a bool counts as not a number).
        """
        if timeout is None:
            return self.settings.timeout
        if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                or not 0 < timeout <= MAX_TIMEOUT_S):
            raise ValueError(
                f"timeout={timeout!r} must be a number of seconds above 0 and at most "
                f"{MAX_TIMEOUT_S:g}"
            )
        return float(timeout)

    def source(self, name: str) -> Any:
        """The source object called ``name`` (``"ib"``, ``"portal"``, ``"yfinance"`` or a
        registered one), built on first use.

        Raises:
            ValueError: no such source.
            SourceUnavailableError: the source cannot be built (e.g. no ``portal_url``).
        """
        return self._source(name.strip().lower())

    def _source(self, name: str) -> Any:
        with self._lock:
            if name in self._builtin:
                return self._builtin[name]
            if name == "ib":
                from .sources.ib import IBSource

                source: Any = IBSource(self.gateway)
            elif name == "yfinance":
                from .sources.yahoo import YahooSource

                source = YahooSource()
            elif name == "portal":
                try:
                    from .sources.portal import PortalSource
                except ImportError:
                    raise SourceUnavailableError(
                        "the Client Portal source is not available in this version"
                    ) from None
                source = PortalSource(self.settings)
            else:
                from .sources import registered_sources

                found = registered_sources().get(name)
                if found is None:
                    raise ValueError(self._unknown_source_message(name))
                return found[0]
            self._builtin[name] = source
            return source

    def _unknown_source_message(self, name: str) -> str:
        from .sources import registered_sources

        valid = ["auto", *self.settings.sources, *registered_sources()]
        return f"unknown source {name!r}; valid: {', '.join(dict.fromkeys(valid))}"

    def source_order(self, source: str = "auto") -> list[str]:
        """Names of the sources a data call tries, in order.

        Raises:
            ValueError: ``source`` names no configured or registered source.
        """
        if not isinstance(source, str):
            raise TypeError(f"source must be a string, not {type(source).__name__}")
        key = source.strip().lower()
        from .sources import registered_sources

        extra = registered_sources()
        if key in ("", "auto"):
            ranked = [(10 * (k + 1), n) for k, n in enumerate(self.settings.sources)]
            ranked += [(prio, n) for n, (_, prio) in extra.items() if n not in self.settings.sources]
            return [n for _, n in sorted(ranked, key=lambda p: p[0])]
        if key in ("ib", "portal", "yfinance") or key in extra or key in self.settings.sources:
            return [key]
        raise ValueError(self._unknown_source_message(key))

    def clear_caches(self, timeout: float | None = None) -> None:
        """Start cold: forget cached prices, bars and qualified contracts, stop the
        live tickers and bar subscriptions no stream holds. The next calls go to
        the sources. Blocks up to ``timeout`` seconds.
        """
        with self._lock:
            self._prices.clear()
            self._bars.clear()
            gateway = self._gateway
            ib_source = self._builtin.get("ib")
        if gateway is not None:
            gateway.clear_contracts()
        if ib_source is not None:
            ib_source.recent.clear()

            async def stop_live() -> None:
                ib_source.tickers.forget()
                ib_source.barsubs.drop_all()

            self._loop.run(stop_live, self.resolve_timeout(timeout), "stop live data")

    def server_time(self, timeout: float | None = None) -> datetime:
        """The gateway's clock (one round trip); blocks up to ``timeout`` seconds.

        Raises:
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
        """
        gateway = self.gateway
        return gateway.call(
            lambda: gateway.request(lambda ib: ib.reqCurrentTimeAsync(), "server time"),
            self.resolve_timeout(timeout),
            "server time",
        )

    # -- prices --------------------------------------------------------------

    def price(self, symbol: Any, source: str = "auto", timeout: float | None = None) -> float:
        """The current price of one instrument.

        Blocks up to ``timeout`` seconds (default: the ``timeout`` setting).
        A symbol asked for again within 5 minutes gets a live ticker (one
        market-data line, see ``max_market_data_lines``); while its last tick
        is under 10 s old the price is read from it in microseconds, with no
        message to IB and no thread hop. Older ticks fall back to a snapshot.

        Raises:
            ValueError, TypeError: a malformed symbol or unknown source (nothing sent).
            UnknownSymbolError: no source knows the symbol.
            AllSourcesFailedError: every source failed (``.errors`` says why).
        """
        value = self.live_price(symbol, source)
        if value is not None:
            return value
        instrument = parse_symbol(symbol)
        got = self._prices_by_instrument([instrument], source, timeout)
        value = got[instrument.symbol][0]
        if value is None:
            raise got[instrument.symbol][1] or AllSourcesFailedError(f"no price for {instrument.symbol}")
        return value

    def prices(
        self,
        symbols: Iterable[Any],
        source: str = "auto",
        timeout: float | None = None,
        *,
        strict: bool = False,
    ) -> dict[str, float | None]:
        """Current prices of many instruments, fetched concurrently.

        Keys are the symbols as given (a Contract's key is its canonical
        symbol). A symbol no source could price maps to None, or, with
        ``strict=True``, raises its error. Blocks up to ``timeout`` seconds.

        Raises:
            ValueError, TypeError: a malformed symbol or unknown source (nothing sent).
            IBNiceFuncsError: with ``strict=True``, the error of the first
                symbol no source could price.
        """
        if isinstance(symbols, (str, bytes)):
            raise TypeError("prices() takes a list of symbols; use price() for one")
        given = list(symbols)
        instruments = [parse_symbol(s) for s in given]
        got = self._prices_by_instrument(instruments, source, timeout)
        if strict:
            failed = next((err for _, err in got.values() if err is not None), None)
            if failed is not None:
                raise failed
        return {
            (s if isinstance(s, str) else i.symbol): got[i.symbol][0] for s, i in zip(given, instruments)
        }

    def live_price(self, symbol: Any, source: str = "auto") -> float | None:
        """The price from a fresh live ticker, or None; never blocks, sends nothing.

        Only when IB is the first source asked for ``source``.
        """
        ib_source = self._builtin.get("ib")
        if ib_source is None or not self._ib_first(source):
            return None
        return ib_source.tickers.fresh_price(symbol)

    def _ib_first(self, source: str) -> bool:
        if source == "ib":
            return True
        if source != "auto" or self.settings.sources[0] != "ib":
            return False
        from .sources import BUILTIN_PRIORITY_STEP, registered_sources

        return all(prio >= BUILTIN_PRIORITY_STEP for _, prio in registered_sources().values())

    def _prices_by_instrument(
        self, instruments: Sequence[Instrument], source: str, timeout: float | None
    ) -> dict[str, tuple[float | None, IBNiceFuncsError | None]]:
        order = self.source_order(source)
        budget = self.resolve_timeout(timeout)
        deadline = time.monotonic() + budget
        unique = list({i.symbol: i for i in instruments}.values())
        result: dict[str, tuple[float | None, IBNiceFuncsError | None]] = {}
        errors: dict[str, BaseException] = {}
        todo: list[Instrument] = []
        ib_source = self._builtin.get("ib") if order[0] == "ib" else None
        if ib_source is not None:
            live = [(i, ib_source.tickers.fresh_key(i.key)) for i in unique]
            for i, value in live:
                if value is not None:
                    result[i.symbol] = (value, None)
            unique = [i for i, value in live if value is None]
        with self._lock:
            for i in unique:
                cached = next((self._prices.get((n, i.symbol)) for n in order if (n, i.symbol) in self._prices), None)
                if cached is not None:
                    result[i.symbol] = (cached, None)
                else:
                    todo.append(i)
        for position, name in enumerate(order):
            if not todo:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if position < len(order) - 1:
                remaining *= _PRIMARY_SHARE
            try:
                got = self._source(name).prices(todo, timeout=remaining)
            except (IBNiceFuncsError, OSError) as exc:
                errors[name] = exc
                log.debug("source %s failed for prices: %s", name, exc)
                continue
            still: list[Instrument] = []
            for i in todo:
                value = got.get(i.symbol)
                if value is None:
                    still.append(i)
                    continue
                result[i.symbol] = (value, None)
                with self._lock:
                    self._prices[(name, i.symbol)] = value
            if still:
                errors.setdefault(
                    name,
                    UnknownSymbolError(
                        f"{name} has no price for {', '.join(i.symbol for i in still)} (check the "
                        "symbol spelling, or pass an ib_async Contract with exchange and currency)"
                    ),
                )
            todo = still
        for i in todo:
            result[i.symbol] = (None, _combine(f"price of {i.symbol}", errors, order))
        return result

    # -- streams -------------------------------------------------------------

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
        """Attach ``handle`` to live streams; non-strict failures are returned (and close it if all failed)."""
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

    # -- bars ----------------------------------------------------------------

    def ohlcv(
        self,
        symbol: Any,
        timeframe: str = "1h",
        days_back: float = 3,
        source: str = "auto",
        timeout: float | None = None,
    ) -> pd.DataFrame:
        """OHLCV bars for the last ``days_back`` days (fractional allowed).

        Returns a frame with a RangeIndex and columns ``timestamp`` (tz-aware
        UTC), ``open``, ``high``, ``low``, ``close``, ``volume``;
        ``df.attrs["source"]`` names the source that answered. Blocks up to
        ``timeout`` seconds.

        Raises:
            ValueError, TypeError: bad symbol, timeframe, days_back or source
                (raised before anything is sent).
            UnknownSymbolError, NoDataError, AllSourcesFailedError: no source
                could answer.
        """
        instrument = parse_symbol(symbol)
        tf = parse_timeframe(timeframe)
        start, end = days_back_range(days_back)
        order = self.source_order(source)
        budget = self.resolve_timeout(timeout)
        deadline = time.monotonic() + budget
        errors: dict[str, BaseException] = {}
        window = (int(start.timestamp()) // tf.seconds, int(end.timestamp()) // tf.seconds)
        for position, name in enumerate(order):
            key = (name, instrument.key, tf.name, window)
            with self._lock:
                cached = self._bars.get(key)
            if cached is not None:
                return _with_source(cached.copy(), name)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors.setdefault(name, AllSourcesFailedError("out of time"))
                break
            if position < len(order) - 1:
                remaining *= _PRIMARY_SHARE
            try:
                frame = self._source(name).bars(instrument, tf, start, end, timeout=remaining)
            except (IBNiceFuncsError, OSError) as exc:
                errors[name] = exc
                log.debug("source %s failed for bars of %s: %s", name, instrument.symbol, exc)
                continue
            if frame is None or frame.empty:
                errors[name] = NoDataError(f"{name} returned no bars")
                continue
            frame = _with_source(frame, name)
            with self._lock:
                self._bars[key] = frame
            return frame.copy()
        raise _combine(f"{tf.name} bars of {instrument.symbol}", errors, order)

    def classic_data(
        self, symbol: Any, days_back: float = 3, timeframe: str = "1h", source: str = "auto",
        timeout: float | None = None,
    ) -> pd.DataFrame:
        """The classic nice_funcs ``get_data`` frame (OHLCV plus MA20, RSI, MA40 and flags).

        Raises:
            The same as :meth:`ohlcv`.
        """
        from .frames import classic_frame

        frame = self.ohlcv(symbol, timeframe, days_back, source, timeout)
        out = classic_frame(frame)
        out.attrs["source"] = frame.attrs.get("source")
        return out


def _with_source(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    frame.attrs["source"] = name
    return frame


def _combine(what: str, errors: dict[str, BaseException], order: Sequence[str]) -> IBNiceFuncsError:
    """One error for a request every source failed, naming each source's cause.

    When every source failed the same way (e.g. all said "unknown symbol"),
    the error keeps that type so callers can catch it precisely.
    """
    if not errors:
        return AllSourcesFailedError(f"{what}: no source answered in time", {})
    if len(errors) == 1:
        name, only = next(iter(errors.items()))
        detail = str(only)
    else:
        detail = "; ".join(f"{n}: {e}" for n, e in errors.items())
    kinds = {type(e) for e in errors.values()}
    if len(kinds) == 1:
        kind = kinds.pop()
        if issubclass(kind, IBNiceFuncsError) and kind is not AllSourcesFailedError:
            try:
                combined = kind(detail if what in detail else f"{what}: {detail}")
            except TypeError:  # an error class with a different constructor
                combined = next(iter(errors.values()))  # type: ignore[assignment]
            return combined  # type: ignore[return-value]
    return AllSourcesFailedError(f"{what}: every source failed ({detail})", errors)
