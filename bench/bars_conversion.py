"""Benchmark: ``frames.bars_to_frame`` against ``ib_async.util.df`` on 10,000 bars.

Run with ``python bench/bars_conversion.py [--bars N] [--runs R]``. Reports the
median time of each over R runs and the ratio, for bar dates as ib_async
produces them: tz-aware UTC (``formatDate=2``), tz-aware in the TWS zone
(``formatDate=1``), and ``datetime.date`` (daily bars).

``util.df`` only copies the fields; ``bars_to_frame`` also turns the dates
into a ``datetime64[ns, UTC]`` column, so the comparison favours ``util.df``.
Output goes to stdout through ``sys.stdout.write``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from ib_async import BarData, util

try:
    from ib_nice_funcs.frames import bars_to_frame
except ImportError:  # run from a checkout without installing the package
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ib_nice_funcs.frames import bars_to_frame


def make_bars(n: int, kind: str) -> list[BarData]:
    """``n`` one-minute (or daily) bars with dates of the given ``kind``."""
    start = datetime(2024, 3, 1, 14, 30, tzinfo=timezone.utc)
    ny = ZoneInfo("America/New_York")
    bars = []
    for i in range(n):
        if kind == "utc":
            d: Any = start + timedelta(minutes=i)
        elif kind == "zoned":
            d = (start + timedelta(minutes=i)).astimezone(ny)
        else:
            d = date(1990, 1, 1) + timedelta(days=i)
        p = 100.0 + (i % 97) * 0.01
        bars.append(BarData(d, p, p + 0.05, p - 0.05, p + 0.01, 1000.0 + i, p, 10))
    return bars


def median_seconds(
    ours: Callable[[], object], theirs: Callable[[], object], runs: int
) -> tuple[float, float]:
    """Median wall times of ``ours`` and ``theirs`` over ``runs`` interleaved runs.

    Interleaving keeps CPU-frequency or background-load drift from favouring
    either side; a few warm-up calls first load pandas' lazily imported paths.
    """
    for _ in range(3):
        ours()
        theirs()
    a: list[float] = []
    b: list[float] = []
    for _ in range(runs):
        for fn, out in ((ours, a), (theirs, b)):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(a), statistics.median(b)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write one line per date kind."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    worst = float("inf")
    for kind in ("utc", "zoned", "date"):
        bars = make_bars(args.bars, kind)
        ours, theirs = median_seconds(
            lambda b=bars: bars_to_frame(b), lambda b=bars: util.df(b), args.runs
        )
        ratio = theirs / ours
        worst = min(worst, ratio)
        sys.stdout.write(
            f"{kind:>5}: bars_to_frame {ours * 1e3:7.2f} ms  util.df {theirs * 1e3:7.2f} ms  "
            f"ratio {ratio:5.1f}x  ({args.bars} bars, median of {args.runs})\n"
        )
    sys.stdout.write(f"worst ratio {worst:.1f}x\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
