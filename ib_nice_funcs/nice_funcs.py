"""The module-level nice_funcs functions.

These never raise for operational failures (gateway down, timeout, unknown
symbol, rejection, risk breach): they log one WARNING naming the symbol, the
cause and the remedy, and return ``None``, an empty frame with the right
columns, or ``{"success": False, "error": ...}``. Programming errors (a
malformed symbol, an unknown timeframe, a negative amount) raise ValueError /
TypeError at once, before anything is sent.

They all share one default :class:`~ib_nice_funcs.client.Client`, built from
:func:`configure` and the environment at first use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from . import config as _config
from .client import Client
from .errors import IBNiceFuncsError
from .face_results import classic_days, empty_after, warn_missing_prices, warn_stream_errors
from .symbols import symbol_label

if TYPE_CHECKING:  # pragma: no cover
    from datetime import datetime

    import pandas as pd

    from .streaming import PriceStream, Subscription

__all__ = [
    "configure",
    "default_client",
    "close",
    "token_price",
    "get_current_price",
    "token_prices",
    "get_ohlcv_data",
    "get_data",
    "subscribe",
    "stream_prices",
]

log = logging.getLogger("ib_nice_funcs")
T = TypeVar("T")

_client_lock = threading.Lock()
_client: Client | None = None
_CONNECTION_KEYS = frozenset({"host", "port", "client_id", "account", "connect_timeout",
                              "market_data_type"})


def configure(**settings: Any) -> _config.Settings:
    """Change settings for the module-level functions.

    Accepts any :class:`~ib_nice_funcs.config.Settings` field (host, port,
    client_id, account, sources, allow_live, max_position_usd, timeout...).
    The default client is rebuilt on next use with the new settings.

    Raises:
        ValueError: an unknown setting name or invalid value.
    """
    new = _config.configure(**settings)
    _reset_default_client()
    return new


def _reset_default_client() -> None:
    global _client
    with _client_lock:
        old, _client = _client, None
    if old is not None:
        old.close()


def default_client() -> Client:
    """The Client the module-level functions use (created on first use)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = Client(_config.get_settings())
        return _client


def close() -> None:
    """Disconnect the default client (a later call reconnects)."""
    _reset_default_client()


def _soft(what: str, fallback: T, call: Callable[[], T]) -> T:
    """Run ``call``; on an operational failure log one WARNING and return ``fallback``."""
    try:
        return call()
    except (IBNiceFuncsError, OSError) as exc:  # OSError: a socket failing under us
        log.warning("%s failed: %s", what, exc)
        return fallback


def refused_symbol(what: str, symbol: Any) -> bool:
    """True (after one WARNING) when ``symbol`` is text that names no instrument.

    Agents call the module functions without ``try``, so symbol text that maps
    to nothing gets the failure value, never an exception.

    Raises:
        TypeError: ``symbol`` is neither text nor a Contract.
    """
    from .symbols import unrecognised

    problem = unrecognised(symbol)
    if problem is None:
        return False
    log.warning("%s: nothing sent: %s", what, problem)
    return True


# -- data --------------------------------------------------------------------


def token_price(symbol: Any, source: str = "auto") -> float | None:
    """Current price of ``symbol`` (stock, FX pair, crypto or ib_async Contract).

    Blocks up to the ``timeout`` setting. Returns None (and logs one WARNING)
    when no source can price it.

    Raises:
        ValueError, TypeError: a malformed symbol or unknown source.
    """
    what = f"token_price({symbol_label(symbol)})"
    if refused_symbol(what, symbol):
        return None
    client = default_client()
    return _soft(what, None, lambda: client.price(symbol, source))


get_current_price = token_price


def token_prices(symbols: Iterable[Any], source: str = "auto") -> dict[str, float | None]:
    """Current prices of many symbols, concurrently on one connection.

    Symbols no source could price map to None (one WARNING names them).

    Raises:
        ValueError, TypeError: a malformed symbol or unknown source.
    """
    client = default_client()
    prices = client.prices(symbols, source)
    warn_missing_prices(prices)
    return prices


def get_ohlcv_data(
    symbol: Any, timeframe: str = "1H", days_back: float = 3, source: str = "auto"
) -> pd.DataFrame:
    """OHLCV bars for the last ``days_back`` days (fractional allowed, e.g. 0.33).

    Returns a frame with columns ``timestamp`` (tz-aware UTC), ``open``,
    ``high``, ``low``, ``close``, ``volume`` and ``df.attrs["source"]``; an
    empty frame with those columns (and one WARNING) when no source answers.

    Raises:
        ValueError, TypeError: bad symbol, timeframe, days_back or source.
    """
    from .frames import empty_ohlcv

    what = f"get_ohlcv_data({symbol_label(symbol)}, {timeframe!r}, {days_back!r})"
    client = default_client()
    return _frame_or_empty(
        what, lambda: client.ohlcv(symbol, timeframe, days_back, source), empty_ohlcv,
        refused=refused_symbol(what, symbol),
    )


def get_data(
    symbol: Any,
    days_back_4_data: float | None = None,
    timeframe: str = "1H",
    *,
    days_back: float | None = None,
    bars: int | None = None,
    add_indicators: bool = True,
    source: str = "auto",
) -> pd.DataFrame:
    """The classic nice_funcs frame: ``Datetime (UTC)``, OHLCV, MA20, RSI, MA40 and flags.

    ``days_back`` is accepted as a keyword alias of ``days_back_4_data``
    (default 3). ``bars=N`` (HyperLiquid's keyword form) asks for the last N
    bars instead of a number of days. Like the original, a window shorter
    than 40 bars is padded to 40 rows by repeating the first bar, so MA40 and
    the flags exist on the last row. ``add_indicators=False`` leaves out the
    indicator and flag columns. Returns an empty frame with the classic
    columns (and one WARNING) when no source answers or the symbol text names
    nothing.

    Raises:
        ValueError, TypeError: bad timeframe, days_back, bars or source, or a
            symbol that is not text.
    """
    from .frames import CLASSIC_INDICATOR_COLUMNS, empty_classic
    from .timeframes import parse_timeframe

    tf = parse_timeframe(timeframe)
    days = classic_days(days_back_4_data, days_back, tf, bars)
    what = f"get_data({symbol_label(symbol)}, {days!r}, {timeframe!r})"
    client = default_client()
    frame = _frame_or_empty(
        what, lambda: client.classic_data(symbol, days, timeframe, source), empty_classic,
        refused=refused_symbol(what, symbol),
    )
    if bars is not None and len(frame) > bars:
        frame = frame.iloc[-bars:].reset_index(drop=True)
    if not add_indicators:
        frame = frame.drop(columns=list(CLASSIC_INDICATOR_COLUMNS))
    return frame


def _frame_or_empty(
    what: str, call: Callable[[], pd.DataFrame], empty: Callable[[], pd.DataFrame],
    *, refused: bool = False,
) -> pd.DataFrame:
    if refused:  # already warned
        frame = empty()
        frame.attrs["source"] = None
        return frame
    try:
        return call()
    except (IBNiceFuncsError, OSError) as exc:  # OSError: a socket failing under us
        return empty_after(what, exc, empty)


# -- streams -------------------------------------------------------------------


def subscribe(symbols: Any, callback: Callable[[str, float, datetime], Any]) -> Subscription:
    """Call ``callback(symbol, price, time)`` with live prices of ``symbols`` until ``close()``.

    ``symbols`` is one symbol or a list. The callback runs on a worker thread
    of the subscription (never the package's event-loop thread), first with
    each symbol's current price, then on every change; ``time`` is a tz-aware
    UTC datetime. The streams are renewed by themselves after a dropped
    connection. Use the handle as a context manager or call ``close()``;
    :func:`configure` and :func:`close` end it too (they replace the client).

    Never raises for operational failures: symbols that cannot be streamed
    (unknown, no market-data permission, gateway down) get one WARNING and
    are listed in ``handle.errors``; when none can, the handle is closed.

    Raises:
        ValueError, TypeError: malformed symbols or a non-callable callback.
    """
    handle = default_client().subscribe(symbols, callback, strict=False)
    warn_stream_errors("subscribe", handle.errors)
    return handle


def stream_prices(
    symbols: Any, timeout: float | None = None, duration: float | None = None
) -> PriceStream:
    """Iterate live ``(symbol, price, time)`` updates of ``symbols``.

        for symbol, price, when in n.stream_prices(["AAPL", "BTC-USD"], timeout=60):
            ...

    The current price of each symbol comes first, then every change. The
    iteration ends after ``duration`` seconds, on ``break`` or ``close()``,
    or (with one WARNING) when no update came for ``timeout`` seconds. It
    resumes by itself after a dropped connection. Symbols that cannot be
    streamed get one WARNING; if none can, the iteration is empty.

    Raises:
        ValueError, TypeError: malformed symbols, timeout or duration.
    """
    stream = default_client().stream_prices(symbols, timeout=timeout, duration=duration,
                                            strict=False)
    warn_stream_errors("stream_prices", stream.errors)
    return stream
