"""Client: the strict core behind the module-level nice_funcs functions.

A `Client` holds one gateway connection (lazily opened), the ordered data
sources and the caches. Its methods return typed results and raise the
:mod:`ib_nice_funcs.errors` hierarchy; the module-level functions in
:mod:`ib_nice_funcs.nice_funcs` turn those errors into ``None`` / empty
frames plus one WARNING.

This module wires rooms together rather than holding their logic: the price
and bar lookups are :mod:`ib_nice_funcs._price_lookup` and
:mod:`ib_nice_funcs._bar_lookup` (steps shared by each blocking method and
its ``*_async`` twin), the built-in sources and their order
:mod:`ib_nice_funcs.sources.builtin`, the live streams
:mod:`ib_nice_funcs._streams`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._bar_lookup import PlanSeconds, bar_steps, classic, paced_budget, resampled
from ._fallback import FallbackNotices
from ._held import HeldCache
from ._loop import LoopThread, in_daemon_thread, shared_loop
from ._price_lookup import price_steps
from ._steps import (
    Lookup,
    PriceLookupResult,
    drive,
    drive_async,
    given_symbols,
    keyed_prices,
    one_price,
    price_or_error,
)
from ._streams import StreamsMixin
from .config import Settings, get_settings
from .errors import IBNiceFuncsError
from .freshness import PriceQuote, utc_from_epoch
from .sources import registered_sources
from .sources.builtin import build_source, ib_first, ordered_sources, unknown_source_message
from .symbols import Instrument, parse_symbol
from .timeframes import check_days_back, days_back_range, parse_timeframe

#: The longest ``timeout`` a call accepts, in seconds (an hour).
MAX_TIMEOUT_S = 3600.0

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ._gateway import IBGateway
    from ._link import LinkHealth
    from .timeframes import Timeframe
    from .trading import Trader

__all__ = ["Client"]

log = logging.getLogger("ib_nice_funcs")

#: Bars for the same range are served from cache this long; it also keeps
#: repeated calls clear of IB's "no identical request within 15 s" rule.
_BARS_TTL_S = 15.0


class Client(StreamsMixin):
    """Interactive Brokers data (and, through :attr:`trading`, orders) behind sync calls.

    Threading contract: every method may be called from any thread, from a
    plain script, from a Jupyter cell or from a web handler, concurrently.
    Each blocks the caller for at most ``timeout`` seconds (default: the
    ``timeout`` setting) while the work runs on the package's one event-loop
    thread. Nothing connects until the first call that needs the gateway.

    Use it as a context manager, or call :meth:`close`, to disconnect.
    """

    def __init__(self, settings: Settings | None = None, *, loop: LoopThread | None = None,
                 **overrides: Any) -> None:
        base = settings if settings is not None else get_settings()
        self.settings: Settings = base.replace(**overrides) if overrides else base
        self._loop = loop or shared_loop()
        self._lock = threading.RLock()
        self._gateway: IBGateway | None = None
        self._closed = False
        self._builtin: dict[str, Any] = {}
        self._trader: Trader | None = None
        # Cached answers keep the IB link's epoch: a drop, a silent link or IB's
        # 1100 moves it, and they are not served again.
        self._prices: HeldCache[PriceQuote] = HeldCache(4096, self.settings.price_ttl)
        self._bars: HeldCache[pd.DataFrame] = HeldCache(256, _BARS_TTL_S)
        self._notices = FallbackNotices()

    # -- plumbing ------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.settings
        return (f"Client(host={s.host!r}, port={s.port}, client_id={s.client_id}, "
                f"sources={list(s.sources)})")

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
            source = build_source(name, self.settings, lambda: self.gateway)
            if source is None:
                found = registered_sources().get(name)
                if found is None:
                    raise ValueError(unknown_source_message(self.settings.sources, name))
                return found[0]
            self._builtin[name] = source
            return source

    def source_order(self, source: str = "auto") -> list[str]:
        """Names of the sources a data call tries, in order.

        Raises:
            ValueError: ``source`` names no configured or registered source.
        """
        return ordered_sources(self.settings.sources, source)

    def clear_caches(self, timeout: float | None = None) -> None:
        """Start cold: forget cached prices, bars and qualified contracts, stop the
        live tickers and bar subscriptions no stream holds. The next calls go to
        the sources. Blocks up to ``timeout`` seconds.
        """
        self._prices.clear()
        self._bars.clear()
        with self._lock:
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
        A value held from a connection that dropped, went silent or got IB's
        1100 is never served; :meth:`quote` says where and when a price is from.

        Raises:
            ValueError, TypeError: a malformed symbol or unknown source (nothing sent).
            UnknownSymbolError: no source knows the symbol.
            AllSourcesFailedError: every source failed (``.errors`` says why).
        """
        value = self.live_price(symbol, source)
        if value is not None:
            return value
        return self.quote(symbol, source, timeout).price

    def quote(self, symbol: Any, source: str = "auto", timeout: float | None = None) -> PriceQuote:
        """The current price of one instrument with its provenance.

        Like :meth:`price` (same blocking, same errors), but returns a
        :class:`~ib_nice_funcs.freshness.PriceQuote`: the price, the source
        that answered, the UTC time it was current at, and whether it came
        from a live ticker or the price cache (``.age()`` in seconds).
        """
        instrument = parse_symbol(symbol)
        return one_price(instrument, self._prices_by_instrument([instrument], source, timeout))

    async def price_async(self, symbol: Any, source: str = "auto",
                          timeout: float | None = None) -> float:
        """:meth:`price` as a coroutine for an agent's own event loop.

        IB's work is awaited on the package's loop thread with no thread
        waiting for it; a synchronous source (yfinance, a plug-in) runs on a
        daemon thread of its own. Waits up to ``timeout`` seconds.

        Raises:
            The same as :meth:`price`.
        """
        value = self.live_price(symbol, source)
        if value is not None:
            return value
        instrument = parse_symbol(symbol)
        steps = self._price_steps([instrument], source, timeout)
        return one_price(instrument, await drive_async(steps, self._ask_prices_async)).price

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
        given, instruments = given_symbols(symbols)
        return keyed_prices(given, instruments,
                            self._prices_by_instrument(instruments, source, timeout), strict)

    async def prices_async(
        self, symbols: Iterable[Any], source: str = "auto", timeout: float | None = None, *,
        strict: bool = False,
    ) -> dict[str, float | None]:
        """:meth:`prices` as a coroutine (see :meth:`price_async`).

        Raises:
            The same as :meth:`prices`.
        """
        given, instruments = given_symbols(symbols)
        steps = self._price_steps(instruments, source, timeout)
        return keyed_prices(given, instruments, await drive_async(steps, self._ask_prices_async),
                             strict)

    def price_results(
        self, symbols: Iterable[Any], source: str = "auto", timeout: float | None = None
    ) -> dict[str, float | IBNiceFuncsError]:
        """Like :meth:`prices`, with each failed symbol's error in place of None.

        For callers that report per symbol (the CLI prints the good prices and
        one line per failure). Blocks up to ``timeout`` seconds.

        Raises:
            ValueError, TypeError: a malformed symbol or unknown source (nothing sent).
        """
        if isinstance(symbols, (str, bytes)):
            raise TypeError("price_results() takes a list of symbols")
        given = list(symbols)
        instruments = [parse_symbol(s) for s in given]
        return price_or_error(given, instruments,
                              self._prices_by_instrument(instruments, source, timeout))

    def live_price(self, symbol: Any, source: str = "auto") -> float | None:
        """The price from a fresh live ticker, or None; never blocks, sends nothing.

        Only when IB is the first source asked for ``source``, and only while
        the connection is current (not down, silent, or in IB's 1100).
        """
        ib_source = self._builtin.get("ib")
        if ib_source is None or not ib_first(self.settings.sources, source):
            return None
        return ib_source.tickers.fresh_price(symbol)

    def _epoch_of(self, name: str) -> int | None:
        """The IB link's epoch for values from ``name`` (None: not held from IB)."""
        return self.gateway.health.epoch if name == "ib" else None

    def _health(self) -> LinkHealth | None:
        gateway = self._gateway
        return gateway.health if gateway is not None else None

    def _lookup(self, order: Sequence[str], budget: float) -> Lookup:
        return Lookup(order, budget, self._notices, self._health, self._epoch_of)

    def _prices_by_instrument(
        self, instruments: Sequence[Instrument], source: str, timeout: float | None
    ) -> PriceLookupResult:
        return drive(self._price_steps(instruments, source, timeout), self._ask_prices)

    def _ask_prices(self, name: str, todo: list[Instrument],
                    remaining: float) -> dict[str, float | None]:
        return self._source(name).prices(todo, timeout=remaining)

    async def _ask_prices_async(self, name: str, todo: list[Instrument], remaining: float
                                ) -> dict[str, float | None]:
        src = self._source(name)
        aprices = getattr(src, "aprices", None)
        if aprices is not None:  # the IB source: awaited on the loop thread, no thread waits
            return await aprices(todo, timeout=remaining)
        return await in_daemon_thread(lambda: src.prices(todo, timeout=remaining))

    def _price_steps(
        self, instruments: Sequence[Instrument], source: str, timeout: float | None
    ) -> Generator[tuple[str, list[Instrument], float], Any, PriceLookupResult]:
        """The price lookup (:func:`~ib_nice_funcs._price_lookup.price_steps`) for
        this client; raises a bad ``source`` or ``timeout`` before anything is sent."""
        order = self.source_order(source)
        lookup = self._lookup(order, self.resolve_timeout(timeout))
        ib_source = self._builtin.get("ib") if order[0] == "ib" else None
        return price_steps(lookup, instruments, self._prices,
                           ib_source.tickers if ib_source is not None else None)

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
        ``df.attrs`` say where and when the bars are from: ``source``,
        ``fetched_at`` (UTC), ``live`` (a kept-up-to-date subscription) and
        ``cached`` (this client's 15 s cache); see :mod:`ib_nice_funcs.freshness`.
        Bars held from an IB connection that dropped, went silent or got
        IB's 1100 are not served. Blocks up to ``timeout`` seconds; without
        one, up to the ``timeout`` setting or, for a long download, the time
        IB's pacing needs for its requests plus the setting (see
        :meth:`bars_budget`), whichever is longer.

        Raises:
            ValueError, TypeError: bad symbol, timeframe, days_back (above
                :attr:`Timeframe.max_days_back`, e.g. 420 days of 1m-15m
                bars) or source (raised before anything is sent).
            UnknownSymbolError, NoDataError, AllSourcesFailedError: no source
                could answer.
        """
        tf = parse_timeframe(timeframe)
        if tf.base is not None:  # 6h, 12h, 3d, 1M...: no source has them as such
            return resampled(self.ohlcv(symbol, tf.base, days_back, source, timeout), tf)
        return drive(self._bars_steps(symbol, timeframe, days_back, source, timeout),
                     self._ask_bars)

    async def ohlcv_async(
        self, symbol: Any, timeframe: str = "1h", days_back: float = 3, source: str = "auto",
        timeout: float | None = None,
    ) -> pd.DataFrame:
        """:meth:`ohlcv` as a coroutine (see :meth:`price_async`).

        Raises:
            The same as :meth:`ohlcv`.
        """
        tf = parse_timeframe(timeframe)
        if tf.base is not None:
            finer = await self.ohlcv_async(symbol, tf.base, days_back, source, timeout)
            return resampled(finer, tf)
        steps = self._bars_steps(symbol, timeframe, days_back, source, timeout)
        return await drive_async(steps, self._ask_bars_async)

    def _bars_steps(
        self, symbol: Any, timeframe: str, days_back: float, source: str, timeout: float | None
    ) -> Generator[tuple[Any, ...], Any, pd.DataFrame]:
        """The bar lookup (:func:`~ib_nice_funcs._bar_lookup.bar_steps`) for this
        client; validates the arguments (raises before anything is sent)."""
        instrument = parse_symbol(symbol)
        tf = parse_timeframe(timeframe)
        check_days_back(tf, days_back)
        # The window ends at the client's clock (Settings.clock), the one a test
        # shares with its simulator, so "the last N days" means the same to both.
        now = utc_from_epoch(self.settings.clock())
        start, end = days_back_range(days_back, now)
        order = self.source_order(source)
        lookup = self._lookup(order, self.bars_budget(order, tf, start, end, timeout))
        return bar_steps(lookup, self._bars, instrument, tf, start, end)

    def _ask_bars(self, name: str, instrument: Instrument, tf: Timeframe, start: datetime,
                  end: datetime, remaining: float) -> pd.DataFrame:
        return self._source(name).bars(instrument, tf, start, end, timeout=remaining)

    async def _ask_bars_async(self, name: str, instrument: Instrument, tf: Timeframe,
                              start: datetime, end: datetime, remaining: float) -> pd.DataFrame:
        src = self._source(name)
        abars = getattr(src, "abars", None)
        if abars is not None:
            return await abars(instrument, tf, start, end, timeout=remaining)
        return await in_daemon_thread(
            lambda: src.bars(instrument, tf, start, end, timeout=remaining))

    def bars_budget(
        self, order: Sequence[str], timeframe: Timeframe, start: datetime, end: datetime,
        timeout: float | None,
    ) -> float:
        """Seconds a bar call may take: ``timeout`` when given, else the longer of
        the ``timeout`` setting and the plan's pacing wait plus the setting.

        A source that paces its requests says how long (``plan_seconds``,
        the IB source: a year of 5m bars is 53 requests, ~21 s at IB's 5 per
        2 s); the last request then gets the setting to answer. When another
        source follows, the paced one still gets its whole estimate.

        Raises:
            ValueError: ``timeout`` is not a positive number.
        """
        if timeout is not None:
            return self.resolve_timeout(timeout)
        return paced_budget(order, self.settings.timeout, self._plan_seconds, timeframe, start, end)

    def _plan_seconds(self, name: str) -> PlanSeconds | None:
        """The pacing estimate of source ``name``, or None when it does not pace."""
        if name not in ("ib", *self._builtin):
            return None  # only built-in sources pace; do not build the others here
        try:
            return getattr(self._source(name), "plan_seconds", None)
        except IBNiceFuncsError:  # e.g. a closed client: the call itself says so
            return None

    def classic_data(
        self, symbol: Any, days_back: float = 3, timeframe: str = "1h", source: str = "auto",
        timeout: float | None = None,
    ) -> pd.DataFrame:
        """The classic nice_funcs ``get_data`` frame (OHLCV plus MA20, RSI, MA40 and flags).

        A window shorter than 40 bars is padded to 40 rows by repeating its
        first bar, as the original ``get_data`` does.

        Raises:
            The same as :meth:`ohlcv`.
        """
        return classic(self.ohlcv(symbol, timeframe, days_back, source, timeout))

    async def classic_data_async(
        self, symbol: Any, days_back: float = 3, timeframe: str = "1h", source: str = "auto",
        timeout: float | None = None,
    ) -> pd.DataFrame:
        """:meth:`classic_data` as a coroutine (see :meth:`price_async`)."""
        return classic(await self.ohlcv_async(symbol, timeframe, days_back, source, timeout))

