"""The bar lookup of a Client: the bars cache, each source in order, the time budget.

:func:`bar_steps` is the lookup as steps (see :mod:`ib_nice_funcs._steps`),
shared by ``Client.ohlcv`` and ``Client.ohlcv_async``; :func:`paced_budget`
gives a long download the time IB's pacing needs; :func:`resampled` and
:func:`classic` shape a fetched frame for derived timeframes and the
classic ``get_data`` frame. I/O-free; pandas is imported only inside the
frame helpers (package import time is benchmarked).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._fallback import combine_errors
from ._steps import PRIMARY_SHARE
from .errors import AllSourcesFailedError, NoDataError
from .freshness import stamp_frame

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ._held import HeldCache
    from ._steps import Lookup
    from .symbols import Instrument
    from .timeframes import Timeframe

__all__ = ["PlanSeconds", "bar_steps", "classic", "paced_budget", "resampled"]

log = logging.getLogger("ib_nice_funcs")

#: A source's estimate of the pacing wait before a download of ``[start, end)``.
PlanSeconds = Callable[["Timeframe", datetime, datetime], float]


def bar_steps(
    lookup: Lookup, cache: HeldCache[pd.DataFrame], instrument: Instrument, tf: Timeframe,
    start: datetime, end: datetime,
) -> Generator[tuple[Any, ...], Any, pd.DataFrame]:
    """The bar lookup as steps: yields ``(source name, instrument, tf, start, end,
    seconds)`` to ask, receives the frame (or the source's error); returns the
    frame stamped with its provenance, or raises the combined error.

    A frame held in ``cache`` for the same source, instrument, timeframe and
    window (in whole bars) is served as it is; an answer is kept there with
    the IB link's epoch it was asked in.
    """
    deadline = time.monotonic() + lookup.budget
    errors: dict[str, BaseException] = {}
    what = f"{tf.name} bars of {instrument.symbol}"
    window = (int(start.timestamp()) // tf.seconds, int(end.timestamp()) // tf.seconds)
    for position, name in enumerate(lookup.order):
        key = (name, instrument.key, tf.name, window)
        cached = cache.get(key, lookup.health())
        if cached is not None:
            return stamp_frame(cached.copy(), name, cached=True)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            errors.setdefault(name, AllSourcesFailedError("out of time"))
            break
        epoch = lookup.epoch_of(name)
        frame = yield name, instrument, tf, start, end, lookup.share(position, remaining)
        if isinstance(frame, BaseException):
            errors[name] = frame
            lookup.notices.failed(name, frame)
            log.debug("source %s failed for bars of %s: %s", name, instrument.symbol, frame)
            continue
        lookup.notices.answered(name)
        if frame is None or frame.empty:
            errors[name] = NoDataError(f"{name} returned no bars")
            continue
        frame = stamp_frame(frame, name, cached=False)
        lookup.notices.fell_back(what, instrument.symbol, errors, name)
        cache.put(key, frame, epoch)
        return frame.copy()
    raise combine_errors(what, errors, lookup.order)


def paced_budget(
    order: Sequence[str], setting: float, plan_seconds_of: Callable[[str], PlanSeconds | None],
    timeframe: Timeframe, start: datetime, end: datetime,
) -> float:
    """Seconds a bar call without its own ``timeout`` may take: the longer of
    ``setting`` and each pacing source's wait plus ``setting``.

    ``plan_seconds_of(name)`` is the source's estimate, or None for a source
    that does not pace. A paced source followed by another gets its whole
    estimate after :data:`~ib_nice_funcs._steps.PRIMARY_SHARE` is taken off.
    """
    budget = setting
    for position, name in enumerate(order):
        plan_seconds = plan_seconds_of(name)
        if plan_seconds is None:
            continue
        wait = plan_seconds(timeframe, start, end)
        if wait <= 0:
            continue
        need = wait + setting
        if position < len(order) - 1:
            need /= PRIMARY_SHARE
        budget = max(budget, need)
    return budget


def classic(frame: pd.DataFrame) -> pd.DataFrame:
    """The classic ``get_data`` frame of ``frame``, padded to 40 rows, its attrs kept."""
    from .frames import CLASSIC_MIN_ROWS, classic_frame

    out = classic_frame(frame, CLASSIC_MIN_ROWS)
    out.attrs.update(frame.attrs)
    return out


def resampled(finer: pd.DataFrame, tf: Timeframe) -> pd.DataFrame:
    """``finer`` bars resampled to a derived timeframe (``tf.base`` set)."""
    from .frames import resample_ohlcv

    assert tf.resample_rule is not None
    # Fixed-length bins anchored at the epoch, so a 3-day bar does not move
    # with the first bar fetched; calendar months anchor themselves.
    origin = "start_day" if tf.resample_rule == "MS" else "epoch"
    out = resample_ohlcv(finer, tf.resample_rule, origin=origin)
    out.attrs.update(finer.attrs)
    return out
