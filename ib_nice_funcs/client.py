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
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._fallback import FallbackNotices, combine_errors, quieted
from ._held import HeldCache
from ._loop import LoopThread, shared_loop
from ._streams import StreamsMixin
from .config import Settings, get_settings
from .errors import (
    AllSourcesFailedError,
    IBNiceFuncsError,
    NoDataError,
    SourceUnavailableError,
    UnknownSymbolError,
)
from .freshness import PriceQuote, stamp_frame, utc_from_epoch
from .symbols import Instrument, parse_symbol
from .timeframes import days_back_range, parse_timeframe

#: The longest ``timeout`` a call accepts, in seconds (an hour).
MAX_TIMEOUT_S = 3600.0

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ._gateway import IBGateway
    from ._link import LinkHealth
    from .trading import Trader

__all__ = ["Client"]

log = logging.getLogger("ib_nice_funcs")

#: Share of the remaining time a source may use when another source follows,
#: so that a hung primary still leaves the fallback time to answer.
_PRIMARY_SHARE = 0.75
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

    def __init__(self, settings: Settings | None = None, *, loop: LoopThread | None = None, **overrides: Any) -> None:
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
                ib_source.barsubs.drop_all()

            try:
                self._loop.run(stop_streams, timeout, "stop streams")
            except Exception:  # noqa: BLE001 - closing must not raise
                log.debug("stopping streams failed", exc_info=True)
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
        got = self._prices_by_instrument([instrument], source, timeout)
        found, error = got[instrument.symbol]
        if found is None:
            raise error or AllSourcesFailedError(f"no price for {instrument.symbol}")
        return found

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
        out: dict[str, float | None] = {}
        for s, i in zip(given, instruments):
            found = got[i.symbol][0]
            out[s if isinstance(s, str) else i.symbol] = found.price if found else None
        return out

    def live_price(self, symbol: Any, source: str = "auto") -> float | None:
        """The price from a fresh live ticker, or None; never blocks, sends nothing.

        Only when IB is the first source asked for ``source``, and only while
        the connection is current (not down, silent, or in IB's 1100).
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

    def _epoch_of(self, name: str) -> int | None:
        """The IB link's epoch for values from ``name`` (None: not held from IB)."""
        return self.gateway.health.epoch if name == "ib" else None

    def _health(self) -> LinkHealth | None:
        gateway = self._gateway
        return gateway.health if gateway is not None else None

    def _prices_by_instrument(
        self, instruments: Sequence[Instrument], source: str, timeout: float | None
    ) -> dict[str, tuple[PriceQuote | None, IBNiceFuncsError | None]]:
        order = self.source_order(source)
        budget = self.resolve_timeout(timeout)
        deadline = time.monotonic() + budget
        unique = list({i.symbol: i for i in instruments}.values())
        result: dict[str, tuple[PriceQuote | None, IBNiceFuncsError | None]] = {}
        errors: dict[str, BaseException] = {}
        todo: list[Instrument] = []
        ib_source = self._builtin.get("ib") if order[0] == "ib" else None
        if ib_source is not None:
            live = [(i, ib_source.tickers.fresh_quote(i.key)) for i in unique]
            for i, tick in live:
                if tick is not None:
                    result[i.symbol] = (PriceQuote(tick.price, "ib", utc_from_epoch(tick.time),
                                                   live=True), None)
            unique = [i for i, tick in live if tick is None]
        health = self._health()
        for i in unique:
            cached = next((q for q in (self._prices.get((n, i.symbol), health) for n in order)
                           if q is not None), None)
            if cached is not None:
                result[i.symbol] = (cached._replace(cached=True), None)
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
                epoch = self._epoch_of(name)
                with quieted(self._quiet_loggers(name) if errors else ()):
                    got = self._source(name).prices(todo, timeout=remaining)
            except (IBNiceFuncsError, OSError) as exc:
                errors[name] = exc
                self._notices.failed(name, exc)
                log.debug("source %s failed for prices: %s", name, exc)
                continue
            self._notices.answered(name)
            now = datetime.now(timezone.utc)
            still: list[Instrument] = []
            for i in todo:
                value = got.get(i.symbol)
                if value is None:
                    still.append(i)
                    continue
                found = PriceQuote(value, name, now)
                result[i.symbol] = (found, None)
                self._notices.fell_back(f"price of {i.symbol}", i.symbol,
                                        {n: e for n, e in errors.items() if n != name}, name)
                self._prices.put((name, i.symbol), found, epoch)
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
            result[i.symbol] = (None, combine_errors(f"price of {i.symbol}", errors, order))
        return result

    def _quiet_loggers(self, name: str) -> tuple[str, ...]:
        """Loggers of source ``name`` to quiet while it serves as a fallback."""
        try:
            return tuple(getattr(self._source(name), "quiet_loggers", ()))
        except (IBNiceFuncsError, ValueError):
            return ()

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
        IB's 1100 are not served. Blocks up to ``timeout`` seconds.

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
        what = f"{tf.name} bars of {instrument.symbol}"
        for position, name in enumerate(order):
            key = (name, instrument.key, tf.name, window)
            cached = self._bars.get(key, self._health())
            if cached is not None:
                return stamp_frame(cached.copy(), name, cached=True)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors.setdefault(name, AllSourcesFailedError("out of time"))
                break
            if position < len(order) - 1:
                remaining *= _PRIMARY_SHARE
            try:
                epoch = self._epoch_of(name)
                with quieted(self._quiet_loggers(name) if errors else ()):
                    frame = self._source(name).bars(instrument, tf, start, end, timeout=remaining)
            except (IBNiceFuncsError, OSError) as exc:
                errors[name] = exc
                self._notices.failed(name, exc)
                log.debug("source %s failed for bars of %s: %s", name, instrument.symbol, exc)
                continue
            self._notices.answered(name)
            if frame is None or frame.empty:
                errors[name] = NoDataError(f"{name} returned no bars")
                continue
            frame = stamp_frame(frame, name, cached=False)
            self._notices.fell_back(what, instrument.symbol, errors, name)
            self._bars.put(key, frame, epoch)
            return frame.copy()
        raise combine_errors(what, errors, order)

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
        out.attrs.update(frame.attrs)
        return out
