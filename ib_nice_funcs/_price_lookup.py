"""The price lookup of a Client: live ticker, then the price cache, then each source.

Written as steps (see :mod:`ib_nice_funcs._steps`): the generator yields
``(source name, instruments, seconds)`` to ask and receives the answer or the
source's error, so the blocking and the awaiting Client methods share one
fallback order, one cache rule and one error rule. I/O-free; the Client's
``ask`` callables do the I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from ._fallback import combine_errors
from .errors import UnknownSymbolError
from .freshness import PriceQuote, utc_from_epoch

if TYPE_CHECKING:  # pragma: no cover
    from ._held import HeldCache
    from ._steps import Lookup, PriceLookupResult
    from .symbols import Instrument

__all__ = ["FreshQuotes", "price_steps"]

log = logging.getLogger("ib_nice_funcs")


class FreshQuotes(Protocol):
    """The IB source's live tickers, as the lookup reads them (any thread)."""

    def fresh_quote(self, key: Any) -> Any:
        """The latest tick of ``key`` (``.price``; ``.time``, epoch s) if fresh, else None."""
        ...


def price_steps(
    lookup: Lookup, instruments: Sequence[Instrument], cache: HeldCache[PriceQuote],
    tickers: FreshQuotes | None,
) -> Generator[tuple[str, list[Instrument], float], Any, PriceLookupResult]:
    """The price lookup as steps: yields ``(source name, instruments, seconds)``
    to ask, receives the answer (or the source's error), returns per symbol
    ``(quote, error)``.

    ``tickers`` are read first (pass them only when IB is the first source),
    then ``cache``, then the sources of ``lookup.order`` for what is left; an
    answer is kept in ``cache`` with the IB link's epoch it was asked in.
    """
    order = lookup.order
    deadline = time.monotonic() + lookup.budget
    unique = list({i.symbol: i for i in instruments}.values())
    result: PriceLookupResult = {}
    errors: dict[str, BaseException] = {}
    todo: list[Instrument] = []
    if tickers is not None:
        live = [(i, tickers.fresh_quote(i.key)) for i in unique]
        for i, tick in live:
            if tick is not None:
                result[i.symbol] = (PriceQuote(tick.price, "ib", utc_from_epoch(tick.time),
                                               live=True), None)
        unique = [i for i, tick in live if tick is None]
    health = lookup.health()
    for i in unique:
        cached = next((q for q in (cache.get((n, i.symbol), health) for n in order)
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
        epoch = lookup.epoch_of(name)
        got = yield name, todo, lookup.share(position, remaining)
        if isinstance(got, BaseException):
            errors[name] = got
            lookup.notices.failed(name, got)
            log.debug("source %s failed for prices: %s", name, got)
            continue
        lookup.notices.answered(name)
        now = datetime.now(timezone.utc)
        still: list[Instrument] = []
        for i in todo:
            value = got.get(i.symbol)
            if value is None:
                still.append(i)
                continue
            found = PriceQuote(value, name, now)
            result[i.symbol] = (found, None)
            lookup.notices.fell_back(f"price of {i.symbol}", i.symbol,
                                     {n: e for n, e in errors.items() if n != name}, name)
            cache.put((name, i.symbol), found, epoch)
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
