"""What the module-level faces (``nice_funcs``, ``aio``) log and return on failure.

Shared by the blocking and the coroutine face, so both keep the same
failure values and the same one WARNING per failed call. No I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["classic_days", "empty_after", "warn_missing_prices", "warn_stream_errors"]

log = logging.getLogger("ib_nice_funcs")


def warn_missing_prices(prices: dict[str, float | None]) -> None:
    """One WARNING naming the symbols ``token_prices`` found no price for."""
    missing = [s for s, p in prices.items() if p is None]
    if missing:
        log.warning(
            "token_prices: no price for %s; check the symbols and that TWS / IB Gateway "
            "is running (ib-nice-funcs doctor)", ", ".join(missing)
        )


def classic_days(
    days_back_4_data: float | None, days_back: float | None, tf: Any = None,
    bars: int | None = None,
) -> float:
    """The days a ``get_data`` call asks for: one of its three spellings, default 3."""
    if days_back_4_data is not None and days_back is not None:
        raise ValueError("give days_back_4_data or days_back, not both")
    days = days_back_4_data if days_back_4_data is not None else days_back
    if bars is not None:
        if days is not None:
            raise ValueError("give bars or days_back_4_data, not both")
        from .timeframes import days_for_bars

        return days_for_bars(tf, bars)
    return 3 if days is None else days


def empty_after(what: str, exc: BaseException, empty: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """The empty frame a failed bar call returns, after its one WARNING."""
    log.warning("%s failed: %s", what, exc)
    frame = empty()
    frame.attrs["source"] = None
    return frame


def warn_stream_errors(what: str, errors: dict[str, BaseException]) -> None:
    """One WARNING naming the symbols a stream could not open, and why."""
    if errors:
        log.warning("%s: no live prices for %s: %s", what, ", ".join(errors),
                    "; ".join(dict.fromkeys(str(e) for e in errors.values())))
