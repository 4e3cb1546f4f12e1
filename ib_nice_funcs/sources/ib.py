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
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from .._tasks import quiet_future
from ..errors import NOT_SUBSCRIBED, NoDataError, PacingViolationError, UnknownSymbolError
from ..freshness import utc_from_epoch
from ..timeframes import PacingBudget, plan_chunks

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ib_async import IB, Contract, Ticker

    from .._gateway import IBGateway
    from ..fleet.messages import MessageShare
    from ..symbols import Instrument
    from ..timeframes import Booking, Chunk, Timeframe

log = logging.getLogger("ib_nice_funcs")

__all__ = ["IBSource", "ticker_price", "pacing_budget_for", "snapshot_ticker"]

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


async def snapshot_ticker(ib: IB, contract: Contract) -> Ticker:
    """One market-data snapshot (``reqTickersAsync`` for one contract), tidy on every exit.

    ib_async keeps a snapshot's request id in its ticker tables for the life
    of the connection, and a snapshot abandoned by a timed-out caller also
    leaves its future behind; here both are removed when the call ends, and
    an abandoned snapshot is cancelled at the gateway.

    Raises:
        RequestError: IB refused the snapshot (mapped by the caller).
        ConnectionError: the connection dropped (mapped by the gateway).
    """
    wrapper = ib.wrapper
    req_id = ib.client.getReqId()
    future = wrapper.startReq(req_id, contract)
    ticker = wrapper.startTicker(req_id, contract, "snapshot")
    try:
        ib.client.reqMktData(req_id, contract, "", True, False, [])
        await future
        return ticker
    except asyncio.CancelledError:
        if ib.isConnected():
            ib.client.cancelMktData(req_id)
        raise
    finally:
        wrapper.endTicker(ticker, "snapshot")
        wrapper.reqId2Ticker.pop(req_id, None)
        if not future.done() or future.cancelled():
            wrapper._endReq(req_id)  # ib_async's own clean-up of a request's future


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
            # From the first message of every connection (qualifying comes
            # before any price or bar is asked): ib_async's own 45 a second
            # would be this process's alone.
            gateway.on_connected.insert(0, self._follow_share)
        #: Called on the loop thread as ``listener(what, done, total)`` after
        #: each request of a multi-request bar download is answered (the CLI
        #: shows progress with it). Must not block.
        self.progress_listeners: list[Callable[[str, int, int], None]] = []
        #: The connection switched to delayed data (IB market data type 4)
        #: after the account turned out to have no live subscription.
        self._delayed_on: IB | None = None

    async def _follow_share(self, ib: IB) -> None:
        if self.messages is not None:
            self.messages.follow(ib)

    def leave_fleet(self) -> None:
        """The client is closing: hand its lines and bar series to the fleet (loop thread)."""
        self.tickers.leave_fleet()
        self.barsubs.leave_fleet()
        if self.messages is not None:
            self.messages.close()
            self.messages = None

    # -- prices ------------------------------------------------------------

    def prices(
        self, instruments: Sequence[Instrument], *, timeout: float
    ) -> dict[str, float | None]:
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

    async def aprices(
        self, instruments: Sequence[Instrument], *, timeout: float
    ) -> dict[str, float | None]:
        """:meth:`prices` awaitable from any other event loop (no thread waits)."""
        what = "price of " + ", ".join(i.symbol for i in instruments)
        return await self.gateway.call_async(
            lambda: self.prices_async(instruments, what), timeout, what
        )

    async def prices_async(
        self, instruments: Sequence[Instrument], what: str = "prices"
    ) -> dict[str, float | None]:
        contracts = await self.gateway.qualify(instruments, what)
        known = [(i, c) for i, c in zip(instruments, contracts, strict=False) if c is not None]
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
                *(snapshot_ticker(ib, c) for _, c in snap), return_exceptions=True
            )

        tickers = await self.gateway.request(snapshot, what) if snap else []
        if snap and self._switch_to_delayed(ib, tickers, what):
            tickers = await self.gateway.request(snapshot, what)
        for (instrument, _), answer in zip(snap, tickers, strict=False):
            if isinstance(answer, BaseException):
                errors.append(answer)
                continue
            result[instrument.symbol] = ticker_price(answer)
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

        Work ends with the call: on timeout no further chunk request is sent
        and the pacing slots booked for them are given back.

        Raises:
            UnknownSymbolError: IB has no such instrument (error 200).
            NoDataError: IB returned no bars for the range.
            ConnectionFailedError, RequestTimeoutError, PacingViolationError.
        """
        what = f"{timeframe.name} bars of {instrument.symbol}"
        deadline = time.monotonic() + timeout
        return self.gateway.call(
            lambda: self.bars_async(instrument, timeframe, start, end, what, deadline),
            timeout,
            what,
        )

    async def abars(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime, *,
        timeout: float,
    ) -> pd.DataFrame:
        """:meth:`bars` awaitable from any other event loop (no thread waits)."""
        what = f"{timeframe.name} bars of {instrument.symbol}"
        deadline = time.monotonic() + timeout
        return await self.gateway.call_async(
            lambda: self.bars_async(instrument, timeframe, start, end, what, deadline),
            timeout,
            what,
        )

    async def bars_async(
        self,
        instrument: Instrument,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        what: str = "bars",
        deadline: float | None = None,
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
        live = self.barsubs.suitable(timeframe, end)
        if live:
            # Up to now: served from a keepUpToDate subscription (opened on first use).
            frame = await self.barsubs.frame_async(
                instrument, contract, timeframe, start, end, what, deadline
            )
        else:
            frame, _ = await self.fetch_plain(
                instrument, contract, timeframe, start, end, what, deadline
            )
        frame = trim(frame, start, end)
        # A streamed list is current as of the last message heard from the gateway.
        fetched = self.gateway.health.heard_wall() if live else time.time()
        frame.attrs.update(live=live, fetched_at=utc_from_epoch(fetched))
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
        deadline: float | None = None,
    ) -> tuple[pd.DataFrame, int]:
        """Bars of ``[start, end)`` by plain chunked requests (untrimmed), and how many were sent.

        Identical chunks in flight (or answered within 15 s) are shared, not
        re-sent; with ``redis_url``, so are finished chunks another process
        fetched (they are read from Redis). Each send waits for its pacing slot; when the caller is
        cancelled (or times out) the unsent chunks are never sent and their
        booked slot is given back. Requests already sent keep running (their
        answers are shared with a caller asking again within 15 s).

        Args:
            deadline: ``time.monotonic()`` by which the caller needs the
                answer; a plan whose last request could not even be sent by
                then is refused before anything is sent.

        Raises:
            PacingViolationError: IB's pacing would not let the plan be sent
                before ``deadline`` (nothing was sent), or IB refused a chunk.
            NoDataError, RequestTimeoutError, ConnectionFailedError: a chunk failed.
        """
        from ..frames import bars_to_frame, concat_ohlcv

        chunks = plan_chunks(timeframe, start, end)
        contract_key = (contract.conId, contract.exchange, instrument.what_to_show)
        # Futures belong to one event loop: share answers only within it.
        loop_id = id(asyncio.get_running_loop())
        planned = []
        for chunk in chunks:
            key = self.chunk_key(contract_key, chunk, timeframe)
            planned.append((key[1], chunk.duration, key, (loop_id, key)))
        fleet = self.barsubs.sharing
        # Bars that closed by the client's clock (Settings.clock) are final: shareable.
        now = datetime.fromtimestamp(self.gateway.settings.clock(), timezone.utc)
        finished = now - timedelta(seconds=timeframe.seconds)
        from_fleet: dict[Any, pd.DataFrame] = {}
        if fleet is not None:
            for chunk_end, _, key, _ in planned:
                cached = fleet.get_chunk(key) if chunk_end <= finished else None
                if cached is not None:
                    from_fleet[key] = cached
        to_send = [(key, contract_key) for _, _, key, rk in planned
                   if not self._shareable(rk) and key not in from_fleet]
        if deadline is not None and to_send:
            self.check_plan_fits(to_send, deadline, what)
        answers: list[asyncio.Future[list]] = []
        sent = 0
        done = 0
        total = len(planned)

        def count(_: asyncio.Future[list]) -> None:
            nonlocal done
            done += 1
            self._report(what, done, total)

        to_fleet: list[tuple[Any, int]] = []
        for chunk_end, duration, key, recent_key in planned:
            if key in from_fleet:
                done += 1
                continue
            shared = self.recent.get(recent_key) if self._shareable(recent_key) else None
            if shared is None:
                failed = next(
                    (a for a in answers if a.done() and not a.cancelled() and a.exception()), None
                )
                if failed is not None:
                    break  # a chunk already failed: the call fails, send no more
                await self.wait_for_slot(self.pacing.book(key, contract_key))
                sent += 1

                def one_chunk(ib: IB, end: datetime = chunk_end,
                              span: str = duration) -> Awaitable[list]:
                    return self._one_chunk(ib, contract, instrument, timeframe, end, span)

                shared = quiet_future(asyncio.ensure_future(
                    self.gateway.request(
                        one_chunk,
                        what,
                    )
                ))
                self.recent[recent_key] = shared
                if fleet is not None and chunk_end <= finished:
                    to_fleet.append((key, len(answers)))
            shared.add_done_callback(count)
            answers.append(shared)
        # Shielded: a caller that times out must not cancel a request another
        # caller is waiting on (the requests are sent: their answers are kept).
        results = await asyncio.gather(*(asyncio.shield(a) for a in answers))
        frames = [bars_to_frame(bars) for bars in results]
        if fleet is not None:
            for key, index in to_fleet:
                if len(frames[index]):
                    fleet.put_chunk(key, frames[index])
        return concat_ohlcv([*from_fleet.values(), *(f for f in frames if len(f))]), sent

    async def wait_for_slot(self, booking: Booking) -> None:
        """Sleep until a booked pacing slot; give it back if cancelled meanwhile.

        Woken late (a busy loop), the slot is moved rather than sending too
        close to the requests booked after it.
        """
        try:
            while booking.delay > 0:
                await asyncio.sleep(booking.delay)
                booking = self.pacing.on_time(booking)
        except asyncio.CancelledError:
            self.pacing.release(booking)  # never sent: the slot is free again
            raise

    def _shareable(self, recent_key: object) -> bool:
        shared = self.recent.get(recent_key)
        return shared is not None and not (
            shared.done() and (shared.cancelled() or shared.exception() is not None)
        )

    @staticmethod
    def chunk_key(contract_key: Hashable, chunk: Chunk, timeframe: Timeframe) -> tuple:
        """A plain chunk request's pacing key: what IB compares for "identical"."""
        # IB sees the end time to the second; so must "identical".
        return (contract_key, chunk.end.replace(microsecond=0), chunk.duration,
                timeframe.ib_bar_size)

    def check_plan_fits(self, requests: list, deadline: float, what: str) -> None:
        """Refuse a plan whose last request IB's pacing would hold past ``deadline``.

        Args:
            requests: ``(key, contract_key)`` pairs still to send.
            deadline: ``time.monotonic()`` by which the caller needs the answer.

        Raises:
            PacingViolationError: it would not fit (nothing is booked or sent).
        """
        wait = self.pacing.projected_delay(requests)
        left = deadline - time.monotonic()
        if wait > left:
            raise PacingViolationError(
                f"{what}: IB's historical pacing (60 requests per 10 minutes, 5 per 2 s per "
                f"contract) would let the last of {len(requests)} requests go only in "
                f"{wait:.0f} s, after the {max(left, 0):.0f} s left; nothing was sent. Ask for "
                "fewer days, a longer timeframe, or give a longer timeout"
            )

    def plan_seconds(self, timeframe: Timeframe, start: datetime, end: datetime) -> float:
        """How long IB's pacing makes a plain download of ``[start, end)`` wait, as booked now.

        The wait before the plan's last request could be sent (0.0 for a
        one-request plan with a free budget); books nothing.
        """
        chunks = plan_chunks(timeframe, start, end)
        contract_key = ("estimate", timeframe.name)
        return self.pacing.projected_delay(
            [(self.chunk_key(contract_key, c, timeframe), contract_key) for c in chunks]
        )

    def _report(self, what: str, done: int, total: int) -> None:
        if total < 2:
            return
        for listener in list(self.progress_listeners):
            try:
                listener(what, done, total)
            except Exception:  # noqa: BLE001 - a display must not break a download
                log.debug("progress listener %r failed", listener, exc_info=True)

    @staticmethod
    async def _one_chunk(
        ib: IB, contract: Contract, instrument: Instrument, timeframe: Timeframe, end: datetime,
        duration: str,
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
