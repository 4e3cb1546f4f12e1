"""Live tickers: hot symbols kept subscribed, answered with no message sent.

Policy (documented for users in :meth:`ib_nice_funcs.Client.price`):

* The first price request for a symbol is a snapshot. A second request that
  reaches IB within :attr:`Tickers.repeat_window` seconds (300) opens a
  streaming subscription (``reqMktData``, not a snapshot) and answers from its
  first tick; from then on ``token_price`` / ``Client.price`` read the latest
  tick from the caller's thread, with no message and no thread hop.
* A tick older than :attr:`Tickers.stale_after` seconds (10; e.g. a closed
  market, or a silent feed) is not served: that call sends a fresh snapshot.
* At most ``max_market_data_lines`` streams (setting, default 100) are open per
  client. A new one takes the line of the least recently *read* stream that no
  ``subscribe()`` / ``stream_prices()`` holds; streams nobody read for
  :attr:`Tickers.idle_after` seconds (600) are cancelled.
* After a reconnect, or IB's 1101 "connectivity restored, data lost", every
  stream is requested again; until its first new tick its symbol falls back
  to snapshots. From IB's 1100 until 1101/1102, and while the connection is
  down or silent, no tick is served (the gateway's ``health`` says so).
* With :attr:`Tickers.sharing` (``redis_url``: see
  :mod:`ib_nice_funcs.fleet.quotes`) one process of the fleet streams each
  symbol; the others read and follow its shared quote ("remote" streams)
  and take the line over when its holder goes.

Threading contract: everything here runs on the loop thread except
:meth:`Tickers.fresh_price` / :meth:`Tickers.fresh_key` (any thread: they read
an immutable :class:`LiveQuote` the loop thread publishes with one attribute
store) and the blocking :meth:`Tickers.open` / :meth:`Tickers.release_soon`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..errors import (
    CONNECTIVITY_LOST,
    CONNECTIVITY_RESTORED_DATA_LOST,
    ConnectionFailedError,
    MarketDataLinesExhaustedError,
    UnknownSymbolError,
    classify_ib_error,
)
from ..symbols import parse_symbol

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Contract, Ticker

    from .._gateway import IBGateway
    from ..symbols import Instrument

__all__ = ["LiveQuote", "LineSharing", "MarketDataLinesExhaustedError", "Tickers"]

log = logging.getLogger("ib_nice_funcs")

_STALE_S = 10.0
_REPEAT_WINDOW_S = 300.0
_IDLE_S = 600.0
_FIRST_TICK_S = 2.0
_REMOTE_FIRST_TICK_S = 5.0
_ERROR_PENALTY_S = 60.0
_SWEEP_S = 30.0
#: "Displaying delayed market data": data flows, nothing failed.
_HARMLESS = frozenset({10167, 10090})


class LineSharing(Protocol):
    """What :class:`Tickers` asks of the fleet (``ib_nice_funcs.fleet.quotes.SharedQuotes``)."""

    def fresh(self, key: Any, stale_after: float) -> tuple[float, float] | None: ...
    def acquire(self, key: Any) -> bool: ...
    def release(self, key: Any) -> None: ...
    def renew(self, keys: Sequence[Any]) -> set[Any]: ...
    def publish(self, ticks: Sequence[tuple[Any, float, float]]) -> None: ...
    def follow(self, keys: Sequence[Any]) -> dict[Any, tuple[tuple[float, float] | None, bool]]: ...
    def wanted(self, key: Any) -> bool: ...
    def asked_before(self, keys: Sequence[Any], window: float) -> set[Any]: ...


class LiveQuote(NamedTuple):
    """The latest streamed price: ``at`` monotonic seconds, ``time`` epoch seconds."""

    price: float
    at: float
    time: float


class _Entry:
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
        self.pins = 0
        self.listeners: list[tuple[Any, str]] = []
        self.ready: asyncio.Future[float] | None = None
        self.first = True
        self.emitted: float | None = None
        #: Another process of the fleet streams it; fed from the shared quote.
        self.remote = False


def _stream_price(ticker: Ticker) -> float | None:
    """Last inside the spread, else the midpoint, else last; None before any of them."""
    price = ticker.marketPrice()
    if not (price > 0):  # NaN compares False
        price = ticker.last
    if not (price > 0) or math.isinf(price):
        return None
    return round(float(price), 10)


def _fail(future: asyncio.Future[Any] | None, error: BaseException) -> None:
    if future is not None and not future.done():
        future.set_exception(error)
        future.exception()  # retrieved: nobody may be waiting


class Tickers:
    """The live market-data lines of one :class:`~ib_nice_funcs._gateway.IBGateway`."""

    def __init__(self, gateway: IBGateway, max_lines: int | None = None) -> None:
        self.gateway = gateway
        self.max_lines = int(max_lines or gateway.settings.max_market_data_lines)
        self.stale_after = _STALE_S
        self.repeat_window = _REPEAT_WINDOW_S
        self.idle_after = _IDLE_S
        self.first_tick_wait = _FIRST_TICK_S
        #: How long a price call waits for the first shared tick of a line
        #: another process of the fleet holds (then it sends a snapshot).
        self.remote_tick_wait = _REMOTE_FIRST_TICK_S
        self._live: dict[Any, _Entry] = {}
        self._asked: dict[Any, float] = {}
        self._penalty: dict[Any, float] = {}
        self._by_ticker: dict[int, _Entry] = {}
        self._by_req: dict[int, _Entry] = {}
        self._sinks: dict[Any, list[tuple[_Entry, str]]] = {}
        self._ib: IB | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        #: One line per symbol across the fleet's processes (None: this process alone).
        self.sharing: LineSharing | None = None
        self._watcher: asyncio.TimerHandle | None = None
        gateway.on_connected.append(self._on_connected)

    # -- any thread ------------------------------------------------------------

    def fresh_price(self, symbol: Any) -> float | None:
        """The streamed price of ``symbol`` if fresh, else None; no message, no thread hop.

        With :attr:`sharing`, a symbol another process streams is read from
        its shared quote (one Redis round trip).
        """
        if not self._live and self.sharing is None:
            return None
        try:
            key = parse_symbol(symbol).key
        except (TypeError, ValueError):
            return None
        return self.fresh_key(key)

    def fresh_key(self, key: Any) -> float | None:
        """As :meth:`fresh_price`, by :attr:`Instrument.key`."""
        quote = self.fresh_quote(key)
        return None if quote is None else quote.price

    def fresh_quote(self, key: Any) -> LiveQuote | None:
        """The latest tick of ``key`` if fresh and the link is current, else None (any thread).

        A tick is not served once it is :attr:`stale_after` seconds old, nor
        while the connection is down, silent or in IB's 1100 (see
        :class:`~ib_nice_funcs._link.LinkHealth`).
        """
        entry = self._live.get(key)
        if entry is None:
            return self._shared_quote(key)
        quote = entry.quote
        if quote is None:
            return None
        now = time.monotonic()
        if now - quote.at > self.stale_after or not self.gateway.health.current:
            return None
        entry.last_used = now
        return quote

    def _shared_quote(self, key: Any) -> LiveQuote | None:
        """The tick another process of the fleet streams for ``key`` (one Redis GET)."""
        sharing = self.sharing
        if sharing is None or not self.gateway.health.current:
            return None
        tick = sharing.fresh(key, self.stale_after)
        if tick is None:
            return None
        price, epoch = tick
        return LiveQuote(price, time.monotonic() - max(0.0, time.time() - epoch), epoch)

    @property
    def lines(self) -> int:
        """Market-data lines this client uses (its own streams, open or being reopened).

        A stream another process of the fleet holds (followed from its shared
        quote) uses none of this client's lines.
        """
        return sum(1 for e in self._live.values() if not e.remote)

    def live_symbols(self) -> list[str]:
        """Symbols with a streaming subscription, least recently read first."""
        entries = sorted(list(self._live.values()), key=lambda e: e.last_used)
        return [e.instrument.symbol for e in entries]

    def open(self, sink: Any, items: Sequence[tuple[str, Instrument]], timeout: float,
             strict: bool) -> dict[str, BaseException]:
        """Attach ``sink`` to live streams of ``items`` ((name, instrument) pairs); blocks.

        Waits up to ``timeout`` (connect, qualify, first ticks). Returns the
        symbols that failed with why (``strict=False``), or raises the first
        failure after releasing the rest (``strict=True``).
        """
        what = "live prices of " + ", ".join(name for name, _ in items)
        wait = min(self.first_tick_wait, max(0.1, timeout / 2))
        return self.gateway.call(lambda: self.open_async(sink, items, wait, what, strict),
                                 timeout, what)

    def release_soon(self, sink: Any) -> None:
        """Detach ``sink`` on the loop thread (returns at once; any thread)."""
        thread = self.gateway.loop
        if thread.in_loop_thread():
            self.release(sink)
            return
        # Not ``thread.loop``: that would start a new loop thread (say, from a
        # finaliser at interpreter exit) just to release nothing.
        loop = getattr(thread, "_loop", None)
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self.release, sink)
        except RuntimeError:  # the loop is gone: nothing left to release
            pass

    # -- loop thread: price requests ------------------------------------------

    def bind(self, ib: IB) -> None:
        """Follow ``ib``'s ticks, errors and disconnect (idempotent)."""
        if self._ib is ib:
            return
        old, self._ib = self._ib, ib
        if old is not None:
            old.pendingTickersEvent -= self._on_pending
            old.errorEvent -= self._on_error
            old.disconnectedEvent -= self._on_disconnected
        ib.pendingTickersEvent += self._on_pending
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected

    def plan(self, known: Sequence[tuple[Instrument, Contract]]
             ) -> tuple[dict[str, float], list[tuple[Instrument, Contract]], list[tuple[Instrument, Contract]]]:
        """Split a price request: (answers from live ticks, symbols to stream now, snapshots)."""
        now = time.monotonic()
        values: dict[str, float] = {}
        promote: list[tuple[Instrument, Contract]] = []
        snap: list[tuple[Instrument, Contract]] = []
        room = self._free_lines()
        fleet_asked = self._asked_by_fleet([i.key for i, _ in known if i.key not in self._live],
                                           now)
        for instrument, contract in known:
            key = instrument.key
            entry = self._live.get(key)
            if entry is not None:
                entry.last_used = now
                quote = entry.quote
                if (quote is not None and now - quote.at <= self.stale_after
                        and self.gateway.health.current):
                    values[instrument.symbol] = quote.price
                else:
                    snap.append((instrument, contract))
                continue
            asked, self._asked[key] = self._asked.get(key), now
            repeated = (asked is not None and now - asked <= self.repeat_window) or \
                key in fleet_asked
            if repeated and room > 0 and self._penalty.get(key, 0.0) <= now:
                promote.append((instrument, contract))
                room -= 1
            else:
                snap.append((instrument, contract))
        return values, promote, snap

    def _asked_by_fleet(self, keys: Sequence[Any], now: float) -> set[Any]:
        """Of ``keys`` this process did not ask lately, those another process of the fleet did.

        A symbol any process of the fleet asked for within the repeat window
        is a repeat: it is streamed (one line for the fleet, the others
        follow it) instead of each process sending a snapshot of its own.
        """
        sharing = self.sharing
        if sharing is None:
            return set()
        new = [k for k in keys
               if not (k in self._asked and now - self._asked[k] <= self.repeat_window)]
        return sharing.asked_before(new, self.repeat_window) if new else set()

    async def promote(self, ib: IB, items: Sequence[tuple[Instrument, Contract]]
                      ) -> dict[str, float | BaseException | None]:
        """Open streams for ``items`` and wait (briefly) for their first prices."""
        self.bind(ib)
        now = time.monotonic()
        entries = []
        for instrument, contract in items:
            entry = self._live.get(instrument.key)
            if entry is None:
                if not self._make_room():
                    continue
                entry = self._add(instrument, contract)
                entry.last_used = now
                self._start(entry, ib)
            entries.append(entry)
        waiting = [e.ready for e in entries if e.ready is not None and not e.ready.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=self.first_tick_wait)
        # A line another process opens may take a little longer to tick here
        # (its holder's queue, the half-second follow): a snapshot of our own
        # instead would be one more message for every follower.
        following = [e.ready for e in entries
                     if e.remote and e.ready is not None and not e.ready.done()]
        if following and self.remote_tick_wait > self.first_tick_wait:
            await asyncio.wait(following, timeout=self.remote_tick_wait - self.first_tick_wait)
        out: dict[str, float | BaseException | None] = {}
        for entry in entries:
            ready = entry.ready
            if ready is not None and ready.done():
                out[entry.instrument.symbol] = ready.exception() or ready.result()
            else:
                out[entry.instrument.symbol] = None
        return out

    # -- loop thread: subscriptions ----------------------------------------------

    async def open_async(self, sink: Any, items: Sequence[tuple[str, Instrument]], wait: float,
                         what: str, strict: bool) -> dict[str, BaseException]:
        ib = await self.gateway.ib_async()
        self.bind(ib)
        contracts = await self.gateway.qualify([i for _, i in items], what)
        errors: dict[str, BaseException] = {}
        attached = self._sinks.setdefault(sink, [])
        fresh: list[tuple[_Entry, str]] = []
        for (name, instrument), contract in zip(items, contracts):
            if contract is None:
                errors[name] = UnknownSymbolError(
                    f"live prices of {name}: IB has no instrument for it; check the symbol, "
                    "or pass an ib_async Contract")
                continue
            entry = self._live.get(instrument.key)
            if entry is None:
                if not self._make_room():
                    errors[name] = MarketDataLinesExhaustedError(
                        f"live prices of {name}: all {self.max_lines} market-data lines are held "
                        "by subscriptions; close one, or raise max_market_data_lines "
                        "(IB_NICE_FUNCS_MAX_LINES) if your IB account allows more")
                    continue
                entry = self._add(instrument, contract)
                self._start(entry, ib)
            if entry.quote is None:
                fresh.append((entry, name))
            entry.pins += 1
            entry.listeners.append((sink, name))
            attached.append((entry, name))
            if entry.quote is not None:
                sink.deliver(name, entry.quote.price, _utc(entry.quote.time))
        waiting = [e.ready for e, _ in fresh if e.ready is not None and not e.ready.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=wait)
        for entry, name in fresh:
            ready = entry.ready
            if ready is not None and ready.done() and ready.exception() is not None:
                errors[name] = ready.exception()  # type: ignore[assignment]
        if errors and strict:
            self.release(sink)
            raise next(iter(errors.values()))
        return errors

    def release(self, sink: Any) -> None:
        """Detach ``sink``; streams nobody else holds and no price call read are cancelled."""
        for entry, name in self._sinks.pop(sink, []):
            if (sink, name) in entry.listeners:
                entry.listeners.remove((sink, name))
                entry.pins -= 1
            if entry.pins <= 0 and entry.last_used == 0.0 and self._live.get(entry.key) is entry:
                self._stop(entry)

    def close_sinks(self) -> None:
        """Close every attached sink (the client is closing)."""
        for sink in list(self._sinks):
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - closing must go on
                log.debug("closing a price sink failed", exc_info=True)
            self.release(sink)

    def leave_fleet(self) -> None:
        """The client is closing: hand this process's lines to the fleet at once (loop thread)."""
        sharing, self.sharing = self.sharing, None
        if sharing is None:
            return
        for entry in self._live.values():
            if not entry.remote and entry.req_id:
                sharing.release(entry.key)
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        close = getattr(sharing, "close", None)
        if close is not None:
            close()

    def forget(self) -> None:
        """Stop every line no subscription holds and forget who asked (loop thread).

        The next price calls start cold: snapshots first, streams only on repeats.
        """
        for entry in list(self._live.values()):
            if entry.pins <= 0:
                self._stop(entry)
        self._asked.clear()

    # -- loop thread: lines -------------------------------------------------------

    def _free_lines(self) -> int:
        evictable = sum(1 for e in self._live.values() if e.pins <= 0 and not e.remote)
        return self.max_lines - self.lines + evictable

    def _make_room(self) -> bool:
        """Free a line if the budget is full (LRU, unpinned only); False if none can be freed.

        Only this client's own lines count: following another process's
        line costs none.
        """
        if self.lines < self.max_lines:
            return True
        unpinned = [e for e in self._live.values() if e.pins <= 0 and not e.remote]
        if not unpinned:
            return False
        victim = min(unpinned, key=lambda e: e.last_used)
        log.debug("market-data line budget (%d) full: unsubscribing %s", self.max_lines,
                  victim.instrument.symbol)
        self._stop(victim)
        return True

    def _add(self, instrument: Instrument, contract: Contract) -> _Entry:
        entry = _Entry(instrument, contract)
        self._live[entry.key] = entry
        self._arm_sweep()
        return entry

    def _start(self, entry: _Entry, ib: IB) -> None:
        entry.quote = None
        entry.first = True
        entry.ready = asyncio.get_running_loop().create_future()
        sharing = self.sharing
        if sharing is not None:
            self._arm_watch()
            if not sharing.acquire(entry.key):
                entry.remote = True  # another process streams it: follow its quote
                self._follow([entry])
                return
        entry.remote = False
        self._open_line(entry, ib)

    def _open_line(self, entry: _Entry, ib: IB) -> None:
        ticker = ib.reqMktData(entry.contract, "", False, False)
        entry.ticker = ticker
        entry.req_id = ib.wrapper.ticker2ReqId["mktData"].get(ticker, 0)
        self._by_ticker[id(ticker)] = entry
        self._by_req[entry.req_id] = entry

    def _forget_ids(self, entry: _Entry) -> None:
        if entry.ticker is not None and self._by_ticker.get(id(entry.ticker)) is entry:
            del self._by_ticker[id(entry.ticker)]
        if self._by_req.get(entry.req_id) is entry:
            del self._by_req[entry.req_id]

    def _stop(self, entry: _Entry) -> None:
        """Cancel the stream (if the link is up) and drop the entry."""
        entry.quote = None
        if self._live.get(entry.key) is entry:
            del self._live[entry.key]
        self._forget_ids(entry)
        _fail(entry.ready, ConnectionFailedError(f"live prices of {entry.instrument.symbol} stopped"))
        self._close_line(entry)
        if self.sharing is not None and not entry.remote:
            self.sharing.release(entry.key)

    def _close_line(self, entry: _Entry) -> None:
        ib = self._ib
        if ib is not None and ib.isConnected() and entry.req_id:
            try:
                ib.cancelMktData(entry.contract)
            except Exception:  # noqa: BLE001 - best effort
                log.debug("cancelMktData failed", exc_info=True)
        entry.req_id = 0

    def _restart_all(self, ib: IB) -> None:
        for entry in list(self._live.values()):
            self._forget_ids(entry)
            self._start(entry, ib)

    def _arm_sweep(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(_SWEEP_S, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        sharing = self.sharing
        for entry in list(self._live.values()):
            if entry.pins <= 0 and now - max(entry.last_used, 0.0) > self.idle_after and not (
                    sharing is not None and not entry.remote and sharing.wanted(entry.key)):
                log.debug("unsubscribing %s: not read for %.0f s", entry.instrument.symbol,
                          now - entry.last_used)
                self._stop(entry)
        for key, at in list(self._asked.items()):
            if now - at > self.repeat_window:
                del self._asked[key]
        if self._live:
            self._arm_sweep()

    # -- loop thread: ib_async events ------------------------------------------------

    def _on_pending(self, tickers: Any) -> None:
        now, wall = time.monotonic(), time.time()
        ticks = []
        for ticker in tickers:
            entry = self._by_ticker.get(id(ticker))
            if entry is None or entry.ticker is not ticker:
                continue
            price = _stream_price(ticker)
            if price is None:
                continue
            self._update(entry, LiveQuote(price, now, wall))
            ticks.append((entry.key, price, wall))
        if ticks and self.sharing is not None:
            self.sharing.publish(ticks)

    def _update(self, entry: _Entry, quote: LiveQuote) -> None:
        """A new price for ``entry``: answer its first-tick waiters and its listeners."""
        entry.quote = quote
        price = quote.price
        ready = entry.ready
        if ready is not None and not ready.done():
            ready.set_result(price)
        if entry.listeners and (entry.first or price != entry.emitted):
            entry.first, entry.emitted = False, price
            when = _utc(quote.time)
            for sink, name in list(entry.listeners):  # a dead sink may detach itself
                sink.deliver(name, price, when)

    # -- loop thread: lines shared with the fleet ------------------------------------------

    def _arm_watch(self) -> None:
        if self._watcher is None and self.sharing is not None:
            from ..fleet.quotes import RENEW_S

            self._watcher = asyncio.get_running_loop().call_later(RENEW_S, self._watch)

    def _watch(self) -> None:
        """Renew our lines' leases, follow the others' quotes, take over lines nobody holds."""
        self._watcher = None
        sharing = self.sharing
        if sharing is None or not self._live:
            return
        ours = [e for e in self._live.values() if not e.remote and e.req_id]
        for key in sharing.renew([e.key for e in ours]):
            entry = self._live[key]
            log.debug("another process streams %s now; following it", entry.instrument.symbol)
            self._close_line(entry)
            self._forget_ids(entry)
            entry.remote = True
        self._follow([e for e in self._live.values() if e.remote])
        self._arm_watch()

    def _follow(self, entries: Sequence[_Entry]) -> None:
        """Feed remote streams from the shared quotes; open the lines nobody holds."""
        sharing, ib = self.sharing, self._ib
        if sharing is None or not entries:
            return
        now, wall = time.monotonic(), time.time()
        states = sharing.follow([e.key for e in entries])
        for entry in entries:
            quote, held = states.get(entry.key, (None, False))
            if not held and ib is not None and ib.isConnected() and \
                    self.lines < self.max_lines and sharing.acquire(entry.key):
                log.info("taking over the market-data line of %s", entry.instrument.symbol)
                entry.remote = False
                self._open_line(entry, ib)
                continue
            if quote is None or (entry.quote is not None and quote[1] <= entry.quote.time):
                continue
            price, epoch = quote
            if wall - epoch <= self.stale_after:
                self._update(entry, LiveQuote(price, now - max(0.0, wall - epoch), epoch))

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        if code in CONNECTIVITY_RESTORED_DATA_LOST:
            ib = self._ib
            if ib is not None and ib.isConnected() and self._live:
                log.warning("IB restored connectivity but lost market data (1101): "
                            "resubscribing %d live ticker(s)", len(self._live))
                for entry in list(self._live.values()):
                    if entry.req_id:
                        try:
                            ib.cancelMktData(entry.contract)
                        except Exception:  # noqa: BLE001
                            pass
                self._restart_all(ib)
            return
        if code in CONNECTIVITY_LOST:
            for entry in self._live.values():
                entry.quote = None
            return
        entry = self._by_req.get(req_id)
        if entry is None or code in _HARMLESS or classify_ib_error(code) == "info":
            return
        from .._gateway import error_from_ib

        error = error_from_ib(code, message, f"live prices of {entry.instrument.symbol}")
        if entry.listeners:
            log.warning("%s (the stream of %s stopped)", error, entry.instrument.symbol)
        self._penalty[entry.key] = time.monotonic() + _ERROR_PENALTY_S
        entry.req_id = 0  # IB ended it: nothing to cancel
        _fail(entry.ready, error)
        for sink, _ in list(entry.listeners):
            if sink in self._sinks:
                self._sinks[sink] = [(e, n) for e, n in self._sinks[sink] if e is not entry]
        entry.listeners.clear()
        entry.quote = None
        if self._live.get(entry.key) is entry:
            del self._live[entry.key]
        self._forget_ids(entry)

    def _on_disconnected(self) -> None:
        lost = ConnectionFailedError("the connection to the IB gateway dropped; reconnecting")
        for entry in self._live.values():
            if entry.remote:
                continue  # fed from the shared quote, not from this connection
            entry.quote = None
            _fail(entry.ready, lost)
        self._by_ticker.clear()
        self._by_req.clear()

    async def _on_connected(self, ib: IB) -> None:
        """After every (re)connect: follow the new session and reopen every stream."""
        self.bind(ib)
        if self._live:
            log.info("reconnected: resubscribing %d live ticker(s)", len(self._live))
            self._restart_all(ib)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)
