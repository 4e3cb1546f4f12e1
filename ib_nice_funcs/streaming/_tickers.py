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

The rooms: :mod:`~ib_nice_funcs.streaming._lines` (the table of lines and
the ib_async calls on them), :mod:`~ib_nice_funcs.streaming._line_plan`
(the policy above as pure functions), :mod:`~ib_nice_funcs.streaming._fleet_lines`
(lines shared with the fleet). This module applies the policy: price
requests, subscriptions, the sweep, and IB's link events.

Threading contract: everything here runs on the loop thread except
:meth:`Tickers.fresh_price` / :meth:`Tickers.fresh_key` /
:meth:`Tickers.fresh_quote` (any thread: they read an immutable
:class:`LiveQuote` the loop thread publishes with one attribute store) and
the blocking :meth:`Tickers.open` / :meth:`Tickers.release_soon`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import (
    CONNECTIVITY_LOST,
    CONNECTIVITY_RESTORED_DATA_LOST,
    ConnectionFailedError,
    MarketDataLinesExhaustedError,
    UnknownSymbolError,
    classify_ib_error,
)
from ..symbols import parse_symbol
from ._fleet_lines import FleetLines, LineSharing
from ._line_plan import (
    eviction_candidate,
    expired_asks,
    free_lines,
    has_free_line,
    idle_lines,
    plan_prices,
    quote_is_fresh,
)
from ._lines import Line, LineTable, LiveQuote, fail_future, utc

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Contract

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
#: A qualified symbol: its instrument and IB contract.
_Known = tuple["Instrument", "Contract"]
#: "Displaying delayed market data": data flows, nothing failed.
_HARMLESS = frozenset({10167, 10090})


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
        self._table = LineTable()
        self._fleet = FleetLines(self._table, self)
        self._asked: dict[Hashable, float] = {}
        self._penalty: dict[Hashable, float] = {}
        self._sinks: dict[Any, list[tuple[Line, str]]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        gateway.on_connected.append(self._on_connected)

    @property
    def sharing(self) -> LineSharing | None:
        """One line per symbol across the fleet's processes (None: this process alone)."""
        return self._fleet.sharing

    @sharing.setter
    def sharing(self, sharing: LineSharing | None) -> None:
        self._fleet.sharing = sharing

    # -- any thread ------------------------------------------------------------

    def fresh_price(self, symbol: Any) -> float | None:
        """The streamed price of ``symbol`` if fresh, else None; no message, no thread hop.

        With :attr:`sharing`, a symbol another process streams is read from
        its shared quote (one Redis round trip).
        """
        if not self._table.live and self.sharing is None:
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
        line = self._table.live.get(key)
        if line is None:
            if self.sharing is None or not self.gateway.health.current:
                return None
            return self._fleet.shared_quote(key)
        quote = line.quote
        if quote is None:
            return None
        now = time.monotonic()
        if not quote_is_fresh(quote, now, self.stale_after) or not self.gateway.health.current:
            return None
        line.last_used = now
        return quote

    @property
    def lines(self) -> int:
        """Market-data lines this client uses (its own streams, open or being reopened).

        A stream another process of the fleet holds (followed from its shared
        quote) uses none of this client's lines.
        """
        return self._table.own

    def live_symbols(self) -> list[str]:
        """Symbols with a streaming subscription, least recently read first."""
        lines = sorted(list(self._table.live.values()), key=lambda line: line.last_used)
        return [line.instrument.symbol for line in lines]

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
        old = self._table.ib
        if old is ib:
            return
        self._table.ib = ib
        if old is not None:
            old.pendingTickersEvent -= self._on_pending
            old.errorEvent -= self._on_error
            old.disconnectedEvent -= self._on_disconnected
        ib.pendingTickersEvent += self._on_pending
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected

    def plan(self, known: Sequence[_Known]
             ) -> tuple[dict[str, float], list[_Known], list[_Known]]:
        """Split a price request: (answers from live ticks, symbols to stream now, snapshots).

        Marks the live symbols read and the others asked (see
        :func:`~ib_nice_funcs.streaming._line_plan.plan_prices` for the policy).
        """
        now = time.monotonic()
        live = self._table.live
        fleet_asked = self._fleet.asked_elsewhere(
            [i.key for i, _ in known if i.key not in live], self._asked, now, self.repeat_window)
        planned = plan_prices(
            known, live, asked=self._asked, fleet_asked=fleet_asked, penalty=self._penalty,
            room=free_lines(live.values(), self.max_lines), now=now,
            stale_after=self.stale_after, repeat_window=self.repeat_window,
            link_current=self.gateway.health.current)
        for instrument, _ in known:
            line = live.get(instrument.key)
            if line is not None:
                line.last_used = now
            else:
                self._asked[instrument.key] = now
        return planned

    async def promote(self, ib: IB, items: Sequence[_Known]
                      ) -> dict[str, float | BaseException | None]:
        """Open streams for ``items`` and wait (briefly) for their first prices."""
        self.bind(ib)
        now = time.monotonic()
        lines = []
        for instrument, contract in items:
            line = self._table.live.get(instrument.key)
            if line is None:
                if not self._make_room():
                    continue
                line = self._add(instrument, contract)
                line.last_used = now
                self._start(line, ib)
            lines.append(line)
        waiting = [line.ready for line in lines
                   if line.ready is not None and not line.ready.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=self.first_tick_wait)
        # A line another process opens may take a little longer to tick here
        # (its holder's queue, the half-second follow): a snapshot of our own
        # instead would be one more message for every follower.
        following = [line.ready for line in lines
                     if line.remote and line.ready is not None and not line.ready.done()]
        if following and self.remote_tick_wait > self.first_tick_wait:
            await asyncio.wait(following, timeout=self.remote_tick_wait - self.first_tick_wait)
        out: dict[str, float | BaseException | None] = {}
        for line in lines:
            ready = line.ready
            if ready is not None and ready.done():
                out[line.instrument.symbol] = ready.exception() or ready.result()
            else:
                out[line.instrument.symbol] = None
        return out

    # -- loop thread: subscriptions ----------------------------------------------

    async def open_async(self, sink: Any, items: Sequence[tuple[str, Instrument]], wait: float,
                         what: str, strict: bool) -> dict[str, BaseException]:
        """Attach ``sink`` to live streams of ``items``; waits up to ``wait`` for first ticks.

        Returns the symbols that failed with why, or raises the first failure
        after releasing the rest (``strict=True``).
        """
        ib = await self.gateway.ib_async()
        self.bind(ib)
        contracts = await self.gateway.qualify([i for _, i in items], what)
        errors: dict[str, BaseException] = {}
        attached = self._sinks.setdefault(sink, [])
        fresh: list[tuple[Line, str]] = []
        for (name, instrument), contract in zip(items, contracts, strict=False):
            if contract is None:
                errors[name] = UnknownSymbolError(
                    f"live prices of {name}: IB has no instrument for it; check the symbol, "
                    "or pass an ib_async Contract")
                continue
            line = self._table.live.get(instrument.key)
            if line is None:
                if not self._make_room():
                    errors[name] = MarketDataLinesExhaustedError(
                        f"live prices of {name}: all {self.max_lines} market-data lines are held "
                        "by subscriptions; close one, or raise max_market_data_lines "
                        "(IB_NICE_FUNCS_MAX_LINES) if your IB account allows more")
                    continue
                line = self._add(instrument, contract)
                self._start(line, ib)
            if line.quote is None:
                fresh.append((line, name))
            line.pins += 1
            line.listeners.append((sink, name))
            attached.append((line, name))
            if line.quote is not None:
                sink.deliver(name, line.quote.price, utc(line.quote.time))
        waiting = [line.ready for line, _ in fresh
                   if line.ready is not None and not line.ready.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=wait)
        for line, name in fresh:
            ready = line.ready
            if ready is not None and ready.done() and ready.exception() is not None:
                errors[name] = ready.exception()  # type: ignore[assignment]
        if errors and strict:
            self.release(sink)
            raise next(iter(errors.values()))
        return errors

    def release(self, sink: Any) -> None:
        """Detach ``sink``; streams nobody else holds and no price call read are cancelled."""
        for line, name in self._sinks.pop(sink, []):
            if (sink, name) in line.listeners:
                line.listeners.remove((sink, name))
                line.pins -= 1
            if line.pins <= 0 and line.last_used == 0.0 and self._table.live.get(line.key) is line:
                self._stop(line)

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
        self._fleet.leave()

    def forget(self) -> None:
        """Stop every line no subscription holds and forget who asked (loop thread).

        The next price calls start cold: snapshots first, streams only on repeats.
        """
        for line in list(self._table.live.values()):
            if line.pins <= 0:
                self._stop(line)
        self._asked.clear()

    # -- loop thread: lines -------------------------------------------------------

    def _make_room(self) -> bool:
        """Free a line if the budget is full (LRU, unpinned only); False if none can be freed.

        Only this client's own lines count: following another process's
        line costs none.
        """
        live = self._table.live.values()
        if has_free_line(live, self.max_lines):
            return True
        victim = eviction_candidate(live)
        if victim is None:
            return False
        log.debug("market-data line budget (%d) full: unsubscribing %s", self.max_lines,
                  victim.instrument.symbol)
        self._stop(victim)
        return True

    def _add(self, instrument: Instrument, contract: Contract) -> Line:
        line = self._table.add(instrument, contract)
        self._arm_sweep()
        return line

    def _start(self, line: Line, ib: IB) -> None:
        """Open ``line`` on ``ib``, or follow the process of the fleet that streams it."""
        line.restart()
        if self._fleet.follows(line):
            return
        line.remote = False
        self._table.open(line, ib)

    def _stop(self, line: Line) -> None:
        """Cancel the stream (if the link is up) and drop the line."""
        line.quote = None
        self._table.drop(line)
        fail_future(line.ready,
                    ConnectionFailedError(f"live prices of {line.instrument.symbol} stopped"))
        self._table.close(line)
        self._fleet.released(line)

    def _restart_all(self, ib: IB) -> None:
        for line in list(self._table.live.values()):
            self._table.forget_ids(line)
            self._start(line, ib)

    def _arm_sweep(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(_SWEEP_S, self._sweep)

    def _sweep(self) -> None:
        """Stop the lines nobody read for :attr:`idle_after` (unless the fleet reads them)."""
        self._sweeper = None
        now = time.monotonic()
        for line in idle_lines(list(self._table.live.values()), now, self.idle_after):
            if self._fleet.wanted(line):
                continue
            log.debug("unsubscribing %s: not read for %.0f s", line.instrument.symbol,
                      now - line.last_used)
            self._stop(line)
        for key in expired_asks(self._asked, now, self.repeat_window):
            del self._asked[key]
        if self._table.live:
            self._arm_sweep()

    # -- loop thread: ib_async events ------------------------------------------------

    def _on_pending(self, tickers: Any) -> None:
        self._fleet.publish(self._table.take_ticks(tickers, time.monotonic(), time.time()))

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        live = self._table.live
        if code in CONNECTIVITY_RESTORED_DATA_LOST:
            ib = self._table.ib
            if ib is not None and ib.isConnected() and live:
                log.warning("IB restored connectivity but lost market data (1101): "
                            "resubscribing %d live ticker(s)", len(live))
                for each in list(live.values()):
                    if each.req_id:
                        try:
                            ib.cancelMktData(each.contract)
                        except Exception:  # noqa: BLE001
                            pass
                self._restart_all(ib)
            return
        if code in CONNECTIVITY_LOST:
            for each in live.values():
                each.quote = None
            return
        line = self._table.by_req.get(req_id)
        if line is None or code in _HARMLESS or classify_ib_error(code) == "info":
            return
        from .._gateway import error_from_ib

        error = error_from_ib(code, message, f"live prices of {line.instrument.symbol}")
        if line.listeners:
            log.warning("%s (the stream of %s stopped)", error, line.instrument.symbol)
        self._penalty[line.key] = time.monotonic() + _ERROR_PENALTY_S
        line.req_id = 0  # IB ended it: nothing to cancel
        fail_future(line.ready, error)
        for sink, _ in list(line.listeners):
            if sink in self._sinks:
                self._sinks[sink] = [(e, n) for e, n in self._sinks[sink] if e is not line]
        line.listeners.clear()
        line.quote = None
        self._table.drop(line)

    def _on_disconnected(self) -> None:
        lost = ConnectionFailedError("the connection to the IB gateway dropped; reconnecting")
        for line in self._table.live.values():
            if line.remote:
                continue  # fed from the shared quote, not from this connection
            line.quote = None
            fail_future(line.ready, lost)
        self._table.forget_requests()

    async def _on_connected(self, ib: IB) -> None:
        """After every (re)connect: follow the new session and reopen every stream."""
        self.bind(ib)
        live = self._table.live
        if live:
            log.info("reconnected: resubscribing %d live ticker(s)", len(live))
            self._restart_all(ib)
