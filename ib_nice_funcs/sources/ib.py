"""The "ib" data source: TWS / IB Gateway through ib_async.

All ib_async calls run on the loop thread (inside coroutines built there);
the public methods are synchronous one-liners over their ``*_async`` twins.
Long ranges are split by :func:`ib_nice_funcs.timeframes.plan_chunks` and
sent concurrently, spaced by a :class:`~ib_nice_funcs.timeframes.PacingBudget`
so IB's historical pacing rules are never broken.

Hot data is streamed instead of asked for again (see
:mod:`ib_nice_funcs.streaming`): symbols priced repeatedly get a live ticker
(:attr:`IBSource.tickers`), and bars up to now come from ``keepUpToDate``
subscriptions (:attr:`IBSource.barsubs`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from ..errors import NOT_SUBSCRIBED, NoDataError, UnknownSymbolError
from ..timeframes import PacingBudget, plan_chunks

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ib_async import IB, Contract, Ticker

    from .._gateway import IBGateway
    from ..fleet.messages import MessageShare
    from ..symbols import Instrument
    from ..timeframes import Timeframe

log = logging.getLogger("ib_nice_funcs")

__all__ = ["IBSource", "ticker_price", "pacing_budget_for"]

#: IB refuses an identical historical request within 15 s; within that time
#: the answer of the first one is shared instead of asking again.
_IDENTICAL_S = 15.0

_per_gateway: dict[tuple[str, int, str | None], tuple[PacingBudget, TTLCache]] = {}
_per_gateway_lock = threading.Lock()


def pacing_budget_for(host: str, port: int, redis_url: str | None = None
                      ) -> tuple[PacingBudget, TTLCache]:
    """The pacing budget and recent-request table of a gateway address.

    IB counts historical requests per gateway session, not per API client, so
    every Client in the process that talks to the same gateway shares them;
    with ``redis_url``, every process sharing that Redis does too.
    """
    with _per_gateway_lock:
        found = _per_gateway.get((host, port, redis_url))
        if found is None:
            budget: Any = PacingBudget()
            if redis_url:
                from ..fleet.pacing import SharedPacingBudget

                budget = SharedPacingBudget(redis_url, host, port, budget)
            found = _per_gateway[(host, port, redis_url)] = (
                budget, TTLCache(maxsize=1024, ttl=_IDENTICAL_S))
        return found


def ticker_price(ticker: Ticker) -> float | None:
    """The best single price in a snapshot: last inside the spread, else mid, else close."""
    price = ticker.marketPrice()
    if price is None or math.isnan(price) or price <= 0:
        price = ticker.close
    if price is None or math.isnan(price) or price <= 0:
        return None
    # A midpoint of two decimal quotes carries binary noise (1.1081500000000002).
    return round(float(price), 10)


class IBSource:
    """Prices and bars from TWS / IB Gateway.

    Threading contract: the synchronous methods may be called from any
    thread; each blocks for at most its ``timeout`` and crosses into the loop
    thread through :meth:`IBGateway.call`.
    """

    name = "ib"

    def __init__(self, gateway: IBGateway) -> None:
        from ..streaming import BarSubscriptions, Tickers

        self.gateway = gateway
        s = gateway.settings
        self.pacing, self.recent = pacing_budget_for(s.host, s.port, s.redis_url)
        #: Live market-data lines (hot symbols, subscribe(), stream_prices()).
        self.tickers = Tickers(gateway)
        #: keepUpToDate bar subscriptions.
        self.barsubs = BarSubscriptions(self)
        #: This process's share of IB's message rate (with ``redis_url``).
        self.messages: MessageShare | None = None
        if s.redis_url:  # one line and one bar series per symbol across the fleet's processes
            from ..fleet.bars import SharedBars
            from ..fleet.messages import MessageShare
            from ..fleet.quotes import SharedQuotes
            from ..fleet.state import owner_id

            owner = owner_id()
            self.tickers.sharing = SharedQuotes(s.redis_url, s.host, s.port, owner)
            self.barsubs.sharing = SharedBars(s.redis_url, s.host, s.port, owner)
            self.messages = MessageShare(s.redis_url, s.host, s.port, owner)
        #: The connection switched to delayed data (IB market data type 4)
        #: after the account turned out to have no live subscription.
        self._delayed_on: IB | None = None

    def leave_fleet(self) -> None:
        """The client is closing: hand its lines and bar series to the fleet (loop thread)."""
        self.tickers.leave_fleet()
        self.barsubs.leave_fleet()
        if self.messages is not None:
            self.messages.close()
            self.messages = None

    # -- prices ------------------------------------------------------------

    def prices(self, instruments: Sequence[Instrument], *, timeout: float) -> dict[str, float | None]:
        """Current prices, many symbols concurrently on one connection.

        From a live ticker when its last tick is fresh (no message); a symbol
        asked for again within :attr:`Tickers.repeat_window` gets a ticker and
        is answered from its first tick; the rest are snapshots. Blocks up to
        ``timeout`` seconds. Symbols IB does not know map to None.

        Raises:
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
        """
        what = "price of " + ", ".join(i.symbol for i in instruments)
        return self.gateway.call(lambda: self.prices_async(instruments, what), timeout, what)

    async def prices_async(
        self, instruments: Sequence[Instrument], what: str = "prices"
    ) -> dict[str, float | None]:
        contracts = await self.gateway.qualify(instruments, what)
        known = [(i, c) for i, c in zip(instruments, contracts) if c is not None]
        result: dict[str, float | None] = {i.symbol: None for i in instruments}
        if not known:
            return result
        # Live ticks first (no message), then new streams for repeated symbols,
        # then snapshots for the rest.
        ib = await self.gateway.ib_async()
        if self.messages is not None:
            self.messages.follow(ib)
        if self._delayed_on is not None and self._delayed_on is not ib:
            ib.reqMarketDataType(4)  # a new connection: keep to delayed data
            self._delayed_on = ib
        self.tickers.bind(ib)
        values, promote, snap = self.tickers.plan(known)
        result.update(values)
        errors: list[BaseException] = []
        if promote:
            streamed = await self.tickers.promote(ib, promote)
            for instrument, contract in promote:
                got = streamed.get(instrument.symbol)
                if isinstance(got, float):
                    result[instrument.symbol] = got
                elif isinstance(got, BaseException) and not isinstance(got, ConnectionError):
                    errors.append(got)
                else:
                    snap.append((instrument, contract))

        async def snapshot(ib: IB) -> list[Ticker | BaseException]:
            return await asyncio.gather(
                *(ib.reqTickersAsync(c) for _, c in snap), return_exceptions=True
            )

        tickers = await self.gateway.request(snapshot, what) if snap else []
        if snap and self._switch_to_delayed(ib, tickers, what):
            tickers = await self.gateway.request(snapshot, what)
        for (instrument, _), got in zip(snap, tickers):
            if isinstance(got, BaseException):
                errors.append(got)
                continue
            result[instrument.symbol] = ticker_price(got[0]) if got else None
        if errors and len(errors) == len(known):
            # Every snapshot failed the same way: surface it (e.g. not subscribed).
            from .._gateway import error_from_ib

            first = errors[0]
            code = getattr(first, "code", None)
            if code is not None:
                raise error_from_ib(code, getattr(first, "message", str(first)), what)
            raise first
        return result

    @property
    def delayed(self) -> bool:
        """True once live data was refused (354) and the connection uses delayed data."""
        return self._delayed_on is not None

    def _switch_to_delayed(self, ib: IB, tickers: Sequence[object], what: str) -> bool:
        """Ask for delayed data when live data is not subscribed; True if switched now.

        Paper accounts often have no live market-data subscription: IB then
        refuses snapshots with 354 / 10089... but serves 15-minute delayed data.
        A price a quarter of an hour old beats no price for most agents, and the
        WARNING says how to get live data (or keep delayed data without it).
        """
        if self.gateway.settings.market_data_type != 1 or self._delayed_on is ib:
            return False
        if not any(getattr(t, "code", None) in NOT_SUBSCRIBED for t in tickers):
            return False
        ib.reqMarketDataType(4)  # delayed, or the last delayed value when closed
        self._delayed_on = ib
        log.warning(
            "%s: live market data is not subscribed on this account (IB error 354); "
            "using 15-minute delayed data from now on. Subscribe in Client Portal for "
            "live prices, or configure(market_data_type=3) to ask for delayed data "
            "from the start", what,
        )
        return True

    # -- bars --------------------------------------------------------------

    def bars(
        self,
        instrument: Instrument,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        *,
        timeout: float,
    ) -> pd.DataFrame:
        """OHLCV bars in ``[start, end)``; blocks up to ``timeout`` seconds.

        Raises:
            UnknownSymbolError: IB has no such instrument (error 200).
            NoDataError: IB returned no bars for the range.
            ConnectionFailedError, RequestTimeoutError, PacingViolationError.
        """
        what = f"{timeframe.name} bars of {instrument.symbol}"
        return self.gateway.call(
            lambda: self.bars_async(instrument, timeframe, start, end, what), timeout, what
        )

    async def bars_async(
        self,
        instrument: Instrument,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        what: str = "bars",
    ) -> pd.DataFrame:
        from ..frames import trim

        (contract,) = await self.gateway.qualify([instrument], what)
        if self.messages is not None:
            self.messages.follow(await self.gateway.ib_async())
        if contract is None:
            raise UnknownSymbolError(
                f"{what}: IB has no instrument for {instrument.symbol!r}; check the "
                "symbol, or pass an ib_async Contract"
            )
        if self.barsubs.suitable(timeframe, end):
            # Up to now: served from a keepUpToDate subscription (opened on first use).
            frame = await self.barsubs.frame_async(instrument, contract, timeframe, start, end, what)
        else:
            frame, _ = await self.fetch_plain(instrument, contract, timeframe, start, end, what)
        frame = trim(frame, start, end)
        if frame.empty:
            raise NoDataError(
                f"{what}: IB returned no bars between {start:%Y-%m-%d %H:%M} and "
                f"{end:%Y-%m-%d %H:%M} UTC (market closed, or no data for that range)"
            )
        return frame

    async def fetch_plain(
        self,
        instrument: Instrument,
        contract: Contract,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        what: str = "bars",
    ) -> tuple[pd.DataFrame, int]:
        """Bars of ``[start, end)`` by plain chunked requests (untrimmed), and how many were sent.

        Identical chunks in flight (or answered within 15 s) are shared, not re-sent;
        with ``redis_url``, so are finished chunks another process fetched.
        """
        from ..frames import bars_to_frame, concat_ohlcv

        chunks = plan_chunks(timeframe, start, end)
        contract_key = (contract.conId, contract.exchange, instrument.what_to_show)
        tasks: list[asyncio.Future[list]] = []
        sent = 0
        fleet = self.barsubs.sharing
        finished = datetime.now(timezone.utc) - timedelta(seconds=timeframe.seconds)
        from_fleet: list[pd.DataFrame] = []
        to_fleet: list[tuple[Any, int]] = []
        for chunk in chunks:
            # IB sees the end time to the second; so must "identical".
            chunk_end = chunk.end.replace(microsecond=0)
            key = (contract_key, chunk_end, chunk.duration, timeframe.ib_bar_size)
            if fleet is not None and chunk_end <= finished:
                cached = fleet.get_chunk(key)
                if cached is not None:
                    from_fleet.append(cached)
                    continue
                to_fleet.append((key, len(tasks)))
            # Futures belong to one event loop: share answers only within it.
            recent_key = (id(asyncio.get_running_loop()), key)
            shared = self.recent.get(recent_key)
            if shared is None or (shared.done() and (shared.cancelled() or shared.exception())):
                # Space the sends (not the answers): the requests still overlap.
                delay = self.pacing.reserve(key, contract_key)
                if delay > 0:
                    await asyncio.sleep(delay)
                sent += 1
                shared = asyncio.ensure_future(
                    self.gateway.request(
                        lambda ib, e=chunk_end, d=chunk.duration: self._one_chunk(
                            ib, contract, instrument, timeframe, e, d
                        ),
                        what,
                    )
                )
                self.recent[recent_key] = shared
            # Shielded: a caller that times out must not cancel a request
            # another caller is waiting on.
            tasks.append(asyncio.shield(shared))
        results = await asyncio.gather(*tasks)
        frames = [bars_to_frame(bars) for bars in results]
        if fleet is not None:
            for key, index in to_fleet:
                if len(frames[index]):
                    fleet.put_chunk(key, frames[index])
        return concat_ohlcv([*from_fleet, *(f for f in frames if len(f))]), sent

    @staticmethod
    async def _one_chunk(
        ib: IB, contract: Contract, instrument: Instrument, timeframe: Timeframe, end: datetime, duration: str
    ) -> list:
        return await ib.reqHistoricalDataAsync(
            contract,
            endDateTime=end,
            durationStr=duration,
            barSizeSetting=timeframe.ib_bar_size,
            whatToShow=instrument.what_to_show,
            useRTH=False,
            formatDate=2,
            # Our own wait is bounded by the caller's timeout; this one only
            # keeps ib_async from returning an empty list early.
            timeout=0,
        )
