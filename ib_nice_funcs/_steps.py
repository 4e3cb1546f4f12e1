"""Lookups as steps: one logic for blocking and awaiting callers.

`Client` writes each lookup (prices, bars) as a generator that yields
``(source name, arguments...)`` to ask, receives the source's answer or its
error, and returns the result. :func:`drive` answers the steps with blocking
source calls (the sync API); :func:`drive_async` awaits them (``aio`` and
``Client.*_async``), so the fallback order, caching and error rules live in
one place. I/O-free; the ``ask`` callables do the I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any, TypeVar

from .errors import AllSourcesFailedError, IBNiceFuncsError
from .freshness import PriceQuote
from .symbols import Instrument, parse_symbol

__all__ = ["drive", "drive_async", "given_symbols", "keyed_prices", "one_price"]

#: Failures a source reports (handed to the steps); anything else propagates.
_SOURCE_FAILURES = (IBNiceFuncsError, OSError)

Result = TypeVar("Result")


def drive(steps: Generator[tuple[Any, ...], Any, Result], ask: Callable[..., Any]) -> Result:
    """Run lookup steps, answering each with ``ask(*step)`` (blocking)."""
    try:
        step = next(steps)
        while True:
            try:
                answer = ask(*step)
            except _SOURCE_FAILURES as exc:
                answer = exc
            step = steps.send(answer)
    except StopIteration as done:
        return done.value


async def drive_async(steps: Generator[tuple[Any, ...], Any, Result],
                       ask: Callable[..., Awaitable[Any]]) -> Result:
    """Run lookup steps, answering each with ``await ask(*step)``."""
    try:
        step = next(steps)
        while True:
            try:
                answer = await ask(*step)
            except _SOURCE_FAILURES as exc:
                answer = exc
            step = steps.send(answer)
    except StopIteration as done:
        return done.value


def one_price(instrument: Instrument,
              got: dict[str, tuple[PriceQuote | None, IBNiceFuncsError | None]]) -> PriceQuote:
    """The quote of ``instrument`` from a lookup's result, or its error raised."""
    found, error = got[instrument.symbol]
    if found is None:
        raise error or AllSourcesFailedError(f"no price for {instrument.symbol}")
    return found


def given_symbols(symbols: Iterable[Any]) -> tuple[list[Any], list[Instrument]]:
    if isinstance(symbols, (str, bytes)):
        raise TypeError("prices() takes a list of symbols; use price() for one")
    given = list(symbols)
    return given, [parse_symbol(s) for s in given]


def keyed_prices(given: list[Any], instruments: list[Instrument],
                  got: dict[str, tuple[PriceQuote | None, IBNiceFuncsError | None]],
                  strict: bool) -> dict[str, float | None]:
    """Prices keyed by the symbols as given (None where no source answered)."""
    if strict:
        failed = next((err for _, err in got.values() if err is not None), None)
        if failed is not None:
            raise failed
    out: dict[str, float | None] = {}
    for s, i in zip(given, instruments):
        found = got[i.symbol][0]
        out[s if isinstance(s, str) else i.symbol] = found.price if found is not None else None
    return out
