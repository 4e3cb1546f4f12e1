"""Yahoo Finance through yfinance: the last-resort data source (never orders).

yfinance is imported inside the methods only, so importing this module (and
the package) stays cheap and works without yfinance installed. One boundary
is used: ``yf.Ticker(t).history(...)`` for bars and
``yf.Ticker(t).fast_info["last_price"]`` (falling back to the last close of
a short history) for prices.

Yahoo's limits (from yfinance's own code): 1m bars only for the last 30 days
and 7 days per request; 2m-30m for the last 60 days; 60m for the last 730
days; daily and weekly unlimited. A range reaching past them is clamped with a
WARNING and what is available is returned. Intervals Yahoo lacks (3m, 2h, 4h)
are fetched finer and resampled, per :class:`~ib_nice_funcs.timeframes.Timeframe`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
    IBNiceFuncsError,
    NoDataError,
    RequestTimeoutError,
    SourceUnavailableError,
    UnknownSymbolError,
)
from ..timeframes import Timeframe, parse_timeframe

if TYPE_CHECKING:
    import pandas as pd

    from ..symbols import Instrument

__all__ = ["YahooSource"]

log = logging.getLogger("ib_nice_funcs")

T = TypeVar("T")

# Stay this far inside Yahoo's lookback limit: its edge moves while we ask.
_LIMIT_MARGIN = timedelta(hours=1)
_TIMEOUT_NAMES = frozenset({"Timeout", "ReadTimeout", "ConnectTimeout", "TimeoutError"})


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _is_timeout(exc: BaseException) -> bool:
    # Matched by name: yfinance raises requests' or curl_cffi's Timeout
    # depending on its session, and neither is imported here.
    return isinstance(exc, TimeoutError) or type(exc).__name__ in _TIMEOUT_NAMES


def _run_with_timeout(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``fn`` in a daemon thread and give up waiting after ``timeout`` seconds.

    yfinance's own timeout is per HTTP request and fast_info has none, so the
    caller's budget is enforced here; an abandoned call finishes in the
    background and its result is dropped.
    """
    if timeout <= 0:
        raise RequestTimeoutError(f"{what}: no time left in the call's timeout")
    fut: Future[T] = Future()

    def work() -> None:
        try:
            fut.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            fut.set_exception(exc)

    threading.Thread(target=work, name=_THREAD_PREFIX, daemon=True).start()
    try:
        return fut.result(timeout=timeout)
    except FutureTimeoutError:  # an alias of TimeoutError only from Python 3.11
        if fut.done():  # the call itself raised a TimeoutError
            raise
        raise RequestTimeoutError(
            f"{what}: Yahoo Finance did not answer within {timeout:.1f} s; check the network "
            "or raise the timeout (configure(timeout=...) / IB_NICE_FUNCS_TIMEOUT)"
        ) from None


#: Threads that run yfinance for this source are named with this prefix, so
#: the log filter below can tell them from the user's own yfinance calls.
_THREAD_PREFIX = "ib_nice_funcs-yfinance"
#: Loggers yfinance and the libraries under it write to. A logger filter does
#: not see records of child loggers, so urllib3's are listed one by one.
_THIRD_PARTY_LOGGERS = (
    "yfinance", "peewee", "urllib3", "urllib3.connectionpool", "urllib3.connection",
    "urllib3.util.retry", "curl_cffi", "requests",
)


class _QuietInFallback(logging.Filter):
    """Demotes third-party records to DEBUG while they come from this source's threads.

    As a fallback, a failed Yahoo call is reported once, by this package, with
    the symbol and the fix; yfinance's own lines for it ("possibly delisted;
    no price data found", retries, tracebacks: 3-11 per failure) would bury
    that line. Records from other threads (the user's own yfinance calls)
    and the user's logging levels are left alone; the demoted records stay
    visible when their logger is set to DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not threading.current_thread().name.startswith(_THREAD_PREFIX):
            return True
        if record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_quiet_filter = _QuietInFallback()


def _quiet_third_party_logs() -> None:
    for name in _THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        if _quiet_filter not in logger.filters:
            logger.addFilter(_quiet_filter)


def _import_yfinance() -> Any:
    try:
        import yfinance
    except ImportError as exc:
        raise SourceUnavailableError(
            f"the yfinance source needs the yfinance package ({exc}); pip install yfinance"
        ) from None
    _quiet_third_party_logs()
    return yfinance


def _translate(exc: BaseException, what: str, ticker: str) -> IBNiceFuncsError:
    """Map a yfinance/network failure to this package's exceptions."""
    if isinstance(exc, IBNiceFuncsError):
        return exc
    name = type(exc).__name__
    if _is_timeout(exc):
        return RequestTimeoutError(
            f"{what}: Yahoo Finance timed out for {ticker} ({exc}); retry or raise the timeout"
        )
    if name == "YFRateLimitError":
        return SourceUnavailableError(
            f"{what}: Yahoo Finance is rate-limiting this machine; wait a few minutes "
            "before asking it again"
        )
    if name in ("YFTzMissingError", "YFTickerMissingError"):
        return UnknownSymbolError(
            f"{what}: Yahoo Finance does not know {ticker} ({exc}); check the symbol"
        )
    if name in ("YFPricesMissingError", "YFInvalidPeriodError"):
        return NoDataError(f"{what}: Yahoo Finance has no data for {ticker} ({exc})")
    return SourceUnavailableError(
        f"{what}: Yahoo Finance failed for {ticker}: {name}: {exc}; check the network"
    )


def _history_to_ohlcv(raw: pd.DataFrame, daily: bool) -> pd.DataFrame:
    """yfinance's history frame (exchange-local DatetimeIndex) -> OHLCV frame."""
    import pandas as pd

    from ..frames import empty_ohlcv, normalize_ohlcv

    if raw is None or len(raw) == 0:
        return empty_ohlcv()
    idx = pd.DatetimeIndex(raw.index)
    if daily:
        # Yahoo labels daily/weekly bars with local midnight; IB's daily bars
        # are dates, which this package puts at midnight UTC. Keep the date.
        local = idx.tz_localize(None) if idx.tz is not None else idx
        ts = local.normalize().tz_localize("UTC")
    else:
        ts = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    cols = {c.lower(): c for c in raw.columns if isinstance(c, str)}
    frame = pd.DataFrame({"timestamp": ts})
    for col in ("open", "high", "low", "close", "volume"):
        src = cols.get(col)
        if src is None:
            raise NoDataError(f"Yahoo Finance returned a frame without a {col!r} column")
        frame[col] = raw[src].to_numpy()
    frame = frame.dropna(subset=["open", "high", "low", "close"], how="all")
    return normalize_ohlcv(frame)


class YahooSource:
    """Data from Yahoo Finance via yfinance (prices and bars; no trading).

    Args:
        now: Returns the current UTC time; tests pass a fixed clock.
        max_workers: Tickers fetched at once by :meth:`prices`.
        prepost: Include pre/post-market bars.
    """

    name = "yfinance"

    def __init__(
        self,
        *,
        now: Callable[[], datetime] = _utcnow,
        max_workers: int = 8,
        prepost: bool = False,
    ) -> None:
        self._now = now
        self._max_workers = max(1, int(max_workers))
        self._prepost = prepost

    # --- prices ----------------------------------------------------------------

    def prices(
        self, instruments: Sequence[Instrument], *, timeout: float
    ) -> dict[str, float | None]:
        """Last prices, keyed by ``instrument.symbol``; None where Yahoo has none.

        Args:
            instruments: What to price.
            timeout: Seconds for the whole call.

        Returns:
            One entry per instrument; instruments without a Yahoo ticker map
            to None.

        Raises:
            UnknownSymbolError: no instrument has a Yahoo ticker.
            SourceUnavailableError: yfinance is missing or Yahoo rate-limits.
            RequestTimeoutError: no answer within ``timeout``.
        """
        out: dict[str, float | None] = {i.symbol: None for i in instruments}
        todo = [i for i in instruments if i.yahoo_ticker]
        if instruments and not todo:
            names = ", ".join(i.symbol for i in instruments)
            raise UnknownSymbolError(
                f"prices: Yahoo Finance has no ticker for {names}; use the IB source for it"
            )
        if not todo:
            return out
        yf = _import_yfinance()
        tickers = sorted({str(i.yahoo_ticker) for i in todo})

        def fetch_all() -> dict[str, float | None]:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self._max_workers, len(tickers)),
                                    thread_name_prefix=_THREAD_PREFIX) as pool:
                found = list(pool.map(lambda t: self._one_price(yf, t, timeout), tickers))
            return dict(zip(tickers, found, strict=True))

        by_ticker = _run_with_timeout(fetch_all, timeout, "prices")
        for i in todo:
            out[i.symbol] = by_ticker.get(str(i.yahoo_ticker))
        return out

    @staticmethod
    def _one_price(yf: Any, ticker: str, timeout: float) -> float | None:
        """One ticker's last price, or None when Yahoo has none for it.

        Raises:
            IBNiceFuncsError: a failure that dooms the whole batch (timeout,
                rate limit, network down) rather than this ticker.
        """
        t = yf.Ticker(ticker)
        try:
            price = _finite(t.fast_info["last_price"])
        except Exception as exc:  # noqa: BLE001 - fast_info fails in many shapes
            if _batch_fatal(exc):
                raise _translate(exc, "prices", ticker) from exc
            log.debug("yfinance fast_info failed for %s: %s", ticker, exc)
            price = None
        if price is not None:
            return price
        try:
            hist = t.history(period="5d", interval="1d", auto_adjust=False, timeout=timeout)
        except Exception as exc:  # noqa: BLE001
            if _batch_fatal(exc):
                raise _translate(exc, "prices", ticker) from exc
            log.debug("yfinance history fallback failed for %s: %s", ticker, exc)
            return None
        if hist is None or len(hist) == 0 or "Close" not in hist:
            return None
        closes = hist["Close"].dropna()
        return _finite(closes.iloc[-1]) if len(closes) else None

    # --- bars ------------------------------------------------------------------

    def bars(
        self,
        instrument: Instrument,
        timeframe: Timeframe | str,
        start: datetime,
        end: datetime,
        *,
        timeout: float,
    ) -> pd.DataFrame:
        """OHLCV bars in ``[start, end)`` from Yahoo Finance.

        Args:
            instrument: What to fetch; needs a ``yahoo_ticker``.
            timeframe: The bar size.
            start: Range start (naive means UTC).
            end: Range end (naive means UTC).
            timeout: Seconds for the whole call (all requests).

        Returns:
            OHLCV frame (see :mod:`ib_nice_funcs.frames`), ``attrs["source"]``
            set to ``"yfinance"``.

        Raises:
            UnknownSymbolError: no Yahoo ticker, or Yahoo does not know it.
            NoDataError: nothing in the range (or all of it beyond Yahoo's limit).
            SourceUnavailableError: yfinance missing, rate limit, network error.
            RequestTimeoutError: no answer within ``timeout``.
        """
        import time

        from ..frames import concat_ohlcv, resample_ohlcv, trim

        tf = parse_timeframe(timeframe)
        ticker = instrument.yahoo_ticker
        what = f"{tf.name} bars of {instrument.symbol}"
        if not ticker:
            raise UnknownSymbolError(
                f"{what}: Yahoo Finance has no ticker for {instrument.symbol} "
                f"({instrument.sec_type}); use the IB source for it"
            )
        lo, hi = _as_utc(start), _as_utc(end)
        if hi <= lo:
            raise ValueError(f"end ({hi.isoformat()}) must be after start ({lo.isoformat()})")
        lo = self._clamp(tf, lo, what)
        if hi <= lo:
            raise NoDataError(
                f"{what}: Yahoo Finance serves {tf.yahoo_interval} bars only for the last "
                f"{tf.yahoo_max_days:g} days; the whole range is older. Use the IB source, "
                "or a coarser timeframe"
            )
        yf = _import_yfinance()
        deadline = time.monotonic() + timeout
        parts = []
        for s, e in _request_ranges(tf, lo, hi):
            remaining = deadline - time.monotonic()
            parts.append(
                _run_with_timeout(
                    functools.partial(self._history, yf, ticker, tf, s, e, remaining, what),
                    remaining,
                    what,
                )
            )
        frame = concat_ohlcv(parts)
        if tf.yahoo_resample:
            # A bin that starts before `lo` is partial; the trim below drops it.
            frame = resample_ohlcv(frame, tf.yahoo_resample)
        # Bars whose label (start) lies in [lo, hi), as the IB source trims.
        frame = trim(frame, lo, hi)
        if frame.empty:
            raise NoDataError(
                f"{what}: Yahoo Finance returned no bars between {lo:%Y-%m-%d %H:%M} and "
                f"{hi:%Y-%m-%d %H:%M} UTC (market closed, or no data for that range)"
            )
        frame.attrs["source"] = self.name
        return frame

    def _clamp(self, tf: Timeframe, lo: datetime, what: str) -> datetime:
        if tf.yahoo_max_days is None:
            return lo
        earliest = self._now() - timedelta(days=tf.yahoo_max_days) + _LIMIT_MARGIN
        if lo < earliest:
            log.warning(
                "%s: Yahoo Finance serves %s bars only for the last %g days; returning bars "
                "from %s UTC on (use the IB source for older data)",
                what,
                tf.yahoo_interval,
                tf.yahoo_max_days,
                earliest.strftime("%Y-%m-%d %H:%M"),
            )
            return earliest
        return lo

    def _history(
        self,
        yf: Any,
        ticker: str,
        tf: Timeframe,
        start: datetime,
        end: datetime,
        timeout: float,
        what: str,
    ) -> pd.DataFrame:
        try:
            raw = yf.Ticker(ticker).history(
                start=start,
                end=end,
                interval=tf.yahoo_interval,
                auto_adjust=False,
                actions=False,
                prepost=self._prepost,
                timeout=max(1.0, timeout),
            )
        except Exception as exc:  # noqa: BLE001 - translated to our hierarchy
            raise _translate(exc, what, ticker) from exc
        return _history_to_ohlcv(raw, daily=tf.seconds >= 86_400)


def _batch_fatal(exc: BaseException) -> bool:
    """Failures that will hit every ticker alike (so the batch stops) vs. one ticker's."""
    return _is_timeout(exc) or type(exc).__name__ == "YFRateLimitError" or isinstance(exc, OSError)


def _finite(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if x == x and x not in (float("inf"), float("-inf")) and x > 0 else None


def _as_utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"start/end must be datetimes, got {type(value).__name__} {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _request_ranges(tf: Timeframe, lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    """Split ``[lo, hi)`` into Yahoo-sized requests, oldest first."""
    if tf.yahoo_request_days is None:
        return [(lo, hi)]
    step = timedelta(days=tf.yahoo_request_days)
    out = []
    s = lo
    while s < hi:
        e = min(hi, s + step)
        out.append((s, e))
        s = e
    return out
