"""Lookups as steps: one logic for blocking and awaiting callers.

Each lookup of a `Client` (prices, bars) is a generator that yields
``(source name, arguments...)`` to ask, receives the source's answer or its
error, and returns the result. :func:`drive` answers the steps with blocking
source calls (the sync API); :func:`drive_async` awaits them (``aio`` and
``Client.*_async``), so the fallback order, caching and error rules live in
one place. I/O-free; the ``ask`` callables do the I/O. A :class:`Lookup`
carries what the steps read from the client (the source order, the time
budget, the link's health, the fallback notices); the steps themselves are
in :mod:`ib_nice_funcs._price_lookup` and :mod:`ib_nice_funcs._bar_lookup`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import AllSourcesFailedError, IBNiceFuncsError
from .freshness import PriceQuote
from .symbols import Instrument, parse_symbol

if TYPE_CHECKING:  # pragma: no cover
    from ._fallback import FallbackNotices
    from ._link import LinkHealth

__all__ = [
    "PRIMARY_SHARE",
    "Lookup",
    "PriceLookupResult",
    "drive",
    "drive_async",
    "given_symbols",
    "keyed_prices",
    "one_price",
    "price_or_error",
]

#: Failures a source reports (handed to the steps); anything else propagates.
_SOURCE_FAILURES = (IBNiceFuncsError, OSError)
#: Share of the remaining time a source may use when another source follows,
#: so that a hung primary still leaves the fallback time to answer.
PRIMARY_SHARE = 0.75

Result = TypeVar("Result")
#: A price lookup's answer: per ``Instrument.symbol``, the quote or the error.
PriceLookupResult = dict[str, tuple[PriceQuote | None, IBNiceFuncsError | None]]


@dataclass(frozen=True)
class Lookup:
    """What one lookup's steps read from the client besides their arguments.

    Attributes:
        order: Source names, asked in this order.
        budget: Seconds the whole lookup may take, counted from its first step.
        notices: The client's once-per-symbol-and-outage fallback WARNINGs.
        health: The IB link's health now (None before there is a gateway).
        epoch_of: The IB link's epoch for values from a source (None: not held from IB).
    """

    order: Sequence[str]
    budget: float
    notices: FallbackNotices
    health: Callable[[], LinkHealth | None]
    epoch_of: Callable[[str], int | None]

    def share(self, position: int, remaining: float) -> float:
        """Seconds the source at ``position`` gets of ``remaining``: all of it for
        the last source, :data:`PRIMARY_SHARE` of it when another follows."""
        return remaining * PRIMARY_SHARE if position < len(self.order) - 1 else remaining


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


def one_price(instrument: Instrument, got: PriceLookupResult) -> PriceQuote:
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


def keyed_prices(given: list[Any], instruments: list[Instrument], got: PriceLookupResult,
                  strict: bool) -> dict[str, float | None]:
    """Prices keyed by the symbols as given (None where no source answered)."""
    if strict:
        failed = next((err for _, err in got.values() if err is not None), None)
        if failed is not None:
            raise failed
    out: dict[str, float | None] = {}
    for s, i in zip(given, instruments, strict=False):
        found = got[i.symbol][0]
        out[s if isinstance(s, str) else i.symbol] = found.price if found is not None else None
    return out


def price_or_error(given: list[Any], instruments: list[Instrument], got: PriceLookupResult
                   ) -> dict[str, float | IBNiceFuncsError]:
    """Prices keyed by the symbols as given, each failed symbol's error in place of None."""
    out: dict[str, float | IBNiceFuncsError] = {}
    for s, i in zip(given, instruments, strict=False):
        found, error = got[i.symbol]
        out[s if isinstance(s, str) else i.symbol] = (
            found.price if found is not None
            else error or AllSourcesFailedError(f"no price for {i.symbol}")
        )
    return out
