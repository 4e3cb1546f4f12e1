"""The table of one client's market-data lines and the ib_async calls on them.

A :class:`Line` is one streaming subscription (``reqMktData``, not a
snapshot) of one symbol; a :class:`LineTable` finds lines by symbol key, by
ib_async ticker and by request id, opens and cancels them, and turns
ib_async's pending tickers into :class:`LiveQuote` updates. *When* a symbol
gets a line and which line goes is decided elsewhere
(:mod:`ib_nice_funcs.streaming._line_plan`, applied by
:class:`~ib_nice_funcs.streaming.Tickers`).

Threading contract: everything here runs on the loop thread, except reading
:attr:`Line.quote` / writing :attr:`Line.last_used`, which any thread may do
(the quote is an immutable :class:`LiveQuote` published with one attribute
store).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Hashable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Contract, Ticker

    from ..symbols import Instrument

__all__ = ["Line", "LineTable", "LiveQuote", "fail_future", "stream_price", "utc"]

log = logging.getLogger("ib_nice_funcs")


class LiveQuote(NamedTuple):
    """The latest streamed price: ``at`` monotonic seconds, ``time`` epoch seconds."""

    price: float
    at: float
    time: float


def utc(epoch: float) -> datetime:
    """``epoch`` seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, timezone.utc)


def stream_price(ticker: Ticker) -> float | None:
    """Last inside the spread, else the midpoint, else last; None before any of them."""
    price = ticker.marketPrice()
    if not (price > 0):  # NaN compares False
        price = ticker.last
    if not (price > 0) or math.isinf(price):
        return None
    return round(float(price), 10)


def fail_future(future: asyncio.Future[Any] | None, error: BaseException) -> None:
    """Fail ``future`` if still pending, marking the error retrieved (nobody may be waiting)."""
    if future is not None and not future.done():
        future.set_exception(error)
        future.exception()


class Line:
    """One streaming subscription (loop thread only, except ``quote`` / ``last_used``)."""

    __slots__ = ("key", "instrument", "contract", "ticker", "req_id", "quote", "last_used",
                 "pins", "listeners", "ready", "first", "emitted", "remote")

    def __init__(self, instrument: Instrument, contract: Contract) -> None:
        self.key = instrument.key
        self.instrument = instrument
        self.contract = contract
        self.ticker: Ticker | None = None
        self.req_id = 0
        self.quote: LiveQuote | None = None
        #: Monotonic time of the last price read; 0.0 = never read by a price call.
        self.last_used = 0.0
        #: Subscriptions (``subscribe()`` / ``stream_prices()``) holding the line.
        self.pins = 0
        self.listeners: list[tuple[Any, str]] = []
        self.ready: asyncio.Future[float] | None = None
        self.first = True
        self.emitted: float | None = None
        #: Another process of the fleet streams it; fed from the shared quote.
        self.remote = False

    def restart(self) -> None:
        """Forget the last tick and wait for a first one again (loop thread)."""
        self.quote = None
        self.first = True
        self.ready = asyncio.get_running_loop().create_future()

    def update(self, quote: LiveQuote) -> None:
        """A new price: answer the first-tick waiters and the listeners (loop thread)."""
        self.quote = quote
        price = quote.price
        ready = self.ready
        if ready is not None and not ready.done():
            ready.set_result(price)
        if self.listeners and (self.first or price != self.emitted):
            self.first, self.emitted = False, price
            when = utc(quote.time)
            for sink, name in list(self.listeners):  # a dead sink may detach itself
                sink.deliver(name, price, when)


class LineTable:
    """This client's lines by symbol key, ticker and request id (loop thread)."""

    def __init__(self) -> None:
        self.live: dict[Hashable, Line] = {}
        self.by_ticker: dict[int, Line] = {}
        self.by_req: dict[int, Line] = {}
        #: The ib_async session the lines are opened on (None before the first bind).
        self.ib: IB | None = None

    @property
    def own(self) -> int:
        """Lines this client holds (a line another process streams costs none)."""
        return sum(1 for line in self.live.values() if not line.remote)

    def add(self, instrument: Instrument, contract: Contract) -> Line:
        """A new line for ``instrument`` in the table (nothing sent)."""
        line = Line(instrument, contract)
        self.live[line.key] = line
        return line

    def open(self, line: Line, ib: IB) -> None:
        """Send ``reqMktData`` for ``line`` (returns at once; ticks come as pending tickers)."""
        ticker = ib.reqMktData(line.contract, "", False, False)
        line.ticker = ticker
        line.req_id = ib.wrapper.ticker2ReqId["mktData"].get(ticker, 0)
        self.by_ticker[id(ticker)] = line
        self.by_req[line.req_id] = line

    def forget_ids(self, line: Line) -> None:
        """Stop routing ticks and errors of ``line``'s current request to it."""
        if line.ticker is not None and self.by_ticker.get(id(line.ticker)) is line:
            del self.by_ticker[id(line.ticker)]
        if self.by_req.get(line.req_id) is line:
            del self.by_req[line.req_id]

    def close(self, line: Line) -> None:
        """Cancel ``line``'s stream if the link is up (best effort; never raises)."""
        ib = self.ib
        if ib is not None and ib.isConnected() and line.req_id:
            try:
                ib.cancelMktData(line.contract)
            except Exception:  # noqa: BLE001 - best effort
                log.debug("cancelMktData failed", exc_info=True)
        line.req_id = 0

    def drop(self, line: Line) -> None:
        """Remove ``line`` from the table (nothing sent)."""
        if self.live.get(line.key) is line:
            del self.live[line.key]
        self.forget_ids(line)

    def forget_requests(self) -> None:
        """The session is gone: no request id or ticker of it is ours any more."""
        self.by_ticker.clear()
        self.by_req.clear()

    def take_ticks(self, tickers: Iterable[Any], now: float, wall: float
                   ) -> list[tuple[Hashable, float, float]]:
        """Update the lines of ``tickers``; returns the new ``(key, price, epoch)`` ticks."""
        ticks: list[tuple[Hashable, float, float]] = []
        for ticker in tickers:
            line = self.by_ticker.get(id(ticker))
            if line is None or line.ticker is None or line.ticker is not ticker:
                continue
            price = stream_price(line.ticker)
            if price is None:
                continue
            line.update(LiveQuote(price, now, wall))
            ticks.append((line.key, price, wall))
        return ticks
