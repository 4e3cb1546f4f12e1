"""Data sources and the registry that orders them.

A data source is any object that fits :class:`DataSource` (exported as
``ib_nice_funcs.DataSource``): a ``name`` and two synchronous methods::

    prices(instruments, *, timeout) -> dict[str, float | None]   # keyed by Instrument.symbol
    bars(instrument, timeframe, start, end, *, timeout) -> DataFrame  # OHLCV columns

raising :mod:`ib_nice_funcs.errors` exceptions on failure.
:func:`register_source` checks the methods when the source is registered
and raises TypeError naming what is missing. A source whose methods take no
``timeout`` keyword is accepted and called without one (it then keeps to
its own time limit: the registry cannot interrupt a plain function). A plain
nice_funcs-style module (with ``token_price`` / ``get_ohlcv_data`` functions)
is adapted automatically, so ``register_source("hl", nice_funcs_hyperliquid)``
works. Third-party packages can also advertise sources through the entry
point group ``nice_funcs.sources`` (each entry point loads to a source, a
module, or a zero-argument factory).
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import NoDataError, SourceUnavailableError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..symbols import Instrument
    from ..timeframes import Timeframe

__all__ = [
    "DataSource",
    "ModuleSource",
    "register_source",
    "unregister_source",
    "registered_sources",
    "ENTRY_POINT_GROUP",
]

log = logging.getLogger("ib_nice_funcs")

ENTRY_POINT_GROUP = "nice_funcs.sources"
#: Sources named in settings get priorities 10, 20, 30... by position.
BUILTIN_PRIORITY_STEP = 10


@runtime_checkable
class DataSource(Protocol):
    """What the registry needs from a data source (``ib_nice_funcs.DataSource``).

    Attributes:
        name: Shown in ``df.attrs["source"]`` and used with ``source=``;
            set from the registered name when the source has none.
    """

    name: str

    def prices(
        self, instruments: Sequence[Instrument], *, timeout: float
    ) -> dict[str, float | None]:
        """Current prices keyed by ``Instrument.symbol``; None where the source has none.

        Blocks up to ``timeout`` seconds. Raises an
        :class:`~ib_nice_funcs.errors.IBNiceFuncsError` when the source
        itself fails (the next source is then asked).
        """
        ...

    def bars(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime, *,
        timeout: float,
    ) -> pd.DataFrame:
        """OHLCV bars in ``[start, end)`` (UTC): columns ``timestamp open high low close volume``.

        Blocks up to ``timeout`` seconds. Raises
        :class:`~ib_nice_funcs.errors.NoDataError` (or another
        :class:`~ib_nice_funcs.errors.IBNiceFuncsError`) when it has none.
        """
        ...


#: Positional arguments each source method is called with (before ``timeout=``).
_METHOD_ARGS = {"prices": ("instruments",), "bars": ("instrument", "timeframe", "start", "end")}


def _takes_timeout(name: str, source: Any, method: str) -> bool:
    """Whether ``source.method`` takes ``timeout=``; TypeError when it cannot be called right."""
    args = _METHOD_ARGS[method]
    usage = f"{method}({', '.join(args)}, *, timeout)"
    fn = getattr(source, method, None)
    if not callable(fn):
        raise TypeError(
            f"source {name!r} has no {method}() method; a data source needs {usage} "
            "(see ib_nice_funcs.DataSource), or register a nice_funcs module with "
            "token_price() / get_ohlcv_data()"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable: trust it
        return True
    placeholders = [None] * len(args)
    try:
        signature.bind(*placeholders, timeout=1.0)
        return True
    except TypeError:
        pass
    try:
        signature.bind(*placeholders)
    except TypeError:
        raise TypeError(
            f"source {name!r}: {method}{signature} cannot be called as {usage} "
            "(see ib_nice_funcs.DataSource)"
        ) from None
    return False


class _WithoutTimeout:
    """Calls a source whose ``prices`` / ``bars`` take no ``timeout=`` without one."""

    def __init__(self, source: Any, name: str, prices_timeout: bool, bars_timeout: bool) -> None:
        self.source = source
        self.name = name
        self._prices_timeout = prices_timeout
        self._bars_timeout = bars_timeout

    def prices(
        self, instruments: Sequence[Instrument], *, timeout: float
    ) -> dict[str, float | None]:
        if self._prices_timeout:
            return self.source.prices(instruments, timeout=timeout)
        return self.source.prices(instruments)

    def bars(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime, *,
        timeout: float,
    ) -> pd.DataFrame:
        if self._bars_timeout:
            return self.source.bars(instrument, timeframe, start, end, timeout=timeout)
        return self.source.bars(instrument, timeframe, start, end)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.source, attr)


class ModuleSource:
    """Adapts a nice_funcs-style module (``token_price``, ``get_ohlcv_data``) to a source.

    The module's own functions are called synchronously; their timeouts are
    their own business (the registry cannot interrupt a plain function).
    """

    def __init__(self, module: Any, name: str | None = None) -> None:
        self.module = module
        self.name = name or getattr(module, "__name__", "module").rsplit(".", 1)[-1]

    def prices(
        self, instruments: Sequence[Instrument], *, timeout: float
    ) -> dict[str, float | None]:
        fn = (getattr(self.module, "token_price", None)
              or getattr(self.module, "get_current_price", None))
        if fn is None:
            raise SourceUnavailableError(f"source {self.name!r} has no token_price()")
        out: dict[str, float | None] = {}
        for instrument in instruments:
            try:
                value = fn(instrument.symbol)
                out[instrument.symbol] = float(value) if value else None
            except Exception as exc:  # noqa: BLE001 - a plug-in's failure is "no price"
                log.debug("%s.token_price(%s) failed: %s", self.name, instrument.symbol, exc)
                out[instrument.symbol] = None
        return out

    def bars(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime, *,
        timeout: float,
    ) -> pd.DataFrame:
        from ..frames import OHLCV_COLUMNS, normalize_ohlcv, trim

        fn = getattr(self.module, "get_ohlcv_data", None)
        if fn is None:
            raise SourceUnavailableError(f"source {self.name!r} has no get_ohlcv_data()")
        days_back = (end - start).total_seconds() / 86400.0
        frame = fn(instrument.symbol, timeframe.name, days_back)
        if frame is None or len(frame) == 0:
            raise NoDataError(f"source {self.name!r} returned no bars for {instrument.symbol}")
        frame = frame.rename(columns=str.lower)
        if "timestamp" not in frame.columns and "datetime (utc)" in frame.columns:
            frame = frame.rename(columns={"datetime (utc)": "timestamp"})
        missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
        if missing:
            raise NoDataError(f"source {self.name!r} returned a frame without {missing}")
        return trim(normalize_ohlcv(frame[list(OHLCV_COLUMNS)]), start, end)


@dataclass(frozen=True)
class _Registered:
    name: str
    source: Any
    priority: int


_lock = threading.Lock()
_registered: dict[str, _Registered] = {}
_entry_points_loaded = False


def _adapt(name: str, source: Any) -> Any:
    if isinstance(source, ModuleType) or (
        not hasattr(source, "prices") and hasattr(source, "token_price")
    ):
        return ModuleSource(source, name)
    if hasattr(source, "prices") or hasattr(source, "bars"):
        prices_timeout = _takes_timeout(name, source, "prices")
        bars_timeout = _takes_timeout(name, source, "bars")
        if not getattr(source, "name", None):
            try:
                source.name = name
            except AttributeError:
                pass
        if prices_timeout and bars_timeout:
            return source
        return _WithoutTimeout(source, getattr(source, "name", None) or name,
                               prices_timeout, bars_timeout)
    if callable(source):
        return _adapt(name, source())
    raise TypeError(
        f"source {name!r} must fit ib_nice_funcs.DataSource (prices(instruments, *, timeout) "
        "and bars(instrument, timeframe, start, end, *, timeout)), be a nice_funcs module "
        "with token_price() / get_ohlcv_data(), or a zero-argument factory of either"
    )


def register_source(name: str, source: Any, priority: int = 50) -> None:
    """Add a data source for every `Client` in this process.

    Args:
        name: the name used with ``source=`` and in ``df.attrs["source"]``.
        source: an object with ``prices()`` and ``bars()``, a nice_funcs-style
            module, or a zero-argument factory of either.
        priority: lower is tried first; the configured sources take 10, 20,
            30... in their configured order (``ib`` first by default).

    A source whose ``prices`` / ``bars`` take no ``timeout=`` is accepted
    and called without one.

    Raises:
        ValueError: an empty name, or one of the built-in names.
        TypeError: ``source`` is none of the accepted kinds; for a source
            object, the message names the missing method or the signature
            that does not fit :class:`DataSource`.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("register_source needs a non-empty name")
    key = name.strip().lower()
    if key in ("ib", "portal", "yfinance", "auto"):
        raise ValueError(f"{key!r} is a built-in source name; choose another")
    adapted = _adapt(key, source)
    with _lock:
        _registered[key] = _Registered(key, adapted, int(priority))


def unregister_source(name: str) -> None:
    """Remove a source added with :func:`register_source` (no error if absent)."""
    with _lock:
        _registered.pop(name.strip().lower(), None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name.lower() in _registered:
            continue
        try:
            register_source(ep.name, ep.load())
        except Exception:  # noqa: BLE001 - a broken plug-in must not break us
            log.warning(
                "could not load data source %r from entry point %s; it is skipped "
                "(reinstall or remove the package that provides it)",
                ep.name, ep.value, exc_info=True,
            )


def registered_sources() -> dict[str, tuple[Any, int]]:
    """Sources added by :func:`register_source` or entry points: name -> (source, priority)."""
    _load_entry_points()
    with _lock:
        return {r.name: (r.source, r.priority) for r in _registered.values()}
