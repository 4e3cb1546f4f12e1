"""Market data and historical data requests of the TWS simulator (a mixin)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _wire as w
from ._conn import Conn
from ._history import (
    HMDS,
    NO_TZ_WARNING,
    HistError,
    format_bar_dates,
    format_stamp,
    no_data_error,
    plan_request,
)
from .catalog import CRYPTO, FX, STOCK, Instrument

if TYPE_CHECKING:
    from ._history import PacingTracker
    from .market import PaperMarket

log = logging.getLogger(__name__)

# Live tick types and their delayed counterparts (IB TickType ids).
_TICKS = {"bid": (1, 66), "ask": (2, 67), "last": (4, 68), "high": (6, 72), "low": (7, 73),
          "close": (9, 75), "open": (14, 76), "bid_size": (0, 69), "ask_size": (3, 70),
          "last_size": (5, 71), "volume": (8, 74), "last_time": (45, 88)}


class DataRequests:
    """reqMktData, reqMarketDataType, reqHistoricalData, reqHeadTimeStamp and cancels.

    Mixed into :class:`~ib_nice_funcs.sim.tws.TWSSimulator`, whose attributes
    (market, knobs, pacing tracker) it uses.
    """

    market: PaperMarket
    market_data_subscribed: bool
    enforce_pacing: bool
    tick_interval: float
    _pacing: PacingTracker
    pacing_clock: Callable[[], float]
    one_instrument: Callable[[Conn, int, dict], Instrument | None]
    is_deaf: Callable[[Conn], bool]

    # -------------------------------------------------------------- market data
    async def _market_data_type(self, conn: Conn, f: w.Fields) -> None:
        f.skip()
        conn.md_type = f.int()
        for req_id in list(conn.md_subs):
            conn.send([w.MARKET_DATA_TYPE, 1, req_id, conn.md_type])

    async def _mkt_data(self, conn: Conn, f: w.Fields) -> None:
        f.skip()  # version
        req_id = f.int()
        contract = w.read_contract(f)
        if str(contract["secType"]).upper() == "BAG":
            f.skip(4 * f.int())
        if f.bool():
            f.skip(3)
        f.str()  # generic tick list
        snapshot = f.bool()
        inst = self.one_instrument(conn, req_id, contract)
        if inst is None:
            return
        md_type = conn.md_type
        if md_type in (1, 2) and not self.market_data_subscribed:
            conn.send(w.error_msg(conn.sv, req_id, 354, "Requested market data is not "
                                  "subscribed. Delayed market data is available."
                                  f"{inst.symbol} {inst.primary_exchange}/TOP/ALL"))
            return
        if conn.sv >= w.V_REQ_SMART_COMPONENTS:
            conn.send([w.TICK_REQ_PARAMS, req_id, w.num(inst.min_tick),
                       "9c0001" if inst.sec_type == STOCK else "", 3])
        conn.send([w.MARKET_DATA_TYPE, 1, req_id, md_type])
        state: dict[str, object] = {}
        self._send_ticks(conn, req_id, inst, md_type, state)
        if snapshot:
            conn.send([w.TICK_SNAPSHOT_END, 1, req_id])
            return
        old = conn.tasks.pop(("mkt", req_id), None)
        if old:
            old.cancel()
        conn.md_subs.add(req_id)
        conn.tasks[("mkt", req_id)] = asyncio.create_task(
            self._stream(conn, req_id, inst, state))

    def _send_ticks(self, conn: Conn, req_id: int, inst: Instrument, md_type: int,
                    state: dict[str, object]) -> None:
        delayed = md_type in (3, 4)
        now = self.market.now()
        q = self.market.quote(inst.key, now - 900 if delayed else now)
        col = 1 if delayed else 0
        lots = 100.0 if inst.sec_type == STOCK and conn.sv < w.V_MARKET_DATA_IN_SHARES else 1.0

        def sz(x: float) -> str:
            return w.size(x / lots, conn.sv)

        quotes: dict[str, tuple[float, str]] = {
            "bid": (q.bid, sz(q.bid_size)), "ask": (q.ask, sz(q.ask_size)),
            "high": (q.high, "0"), "low": (q.low, "0"), "close": (q.prior_close, "0"),
            "open": (q.open, "0")}
        volume: str | None = None
        if inst.sec_type != FX:
            quotes["last"] = (q.last, sz(q.last_size))
            volume = sz(q.volume)
        for key in ("bid", "ask", "last", "high", "low", "close", "open"):
            if key in quotes and state.get(key) != quotes[key]:
                price, size_text = quotes[key]
                mask = 1 if key in ("bid", "ask") else 0
                conn.send(w.tick_price(req_id, _TICKS[key][col], price, size_text, mask))
        if volume is not None and state.get("volume") != volume:
            conn.send(w.tick_size(req_id, _TICKS["volume"][col], volume))
        if "last" in quotes and state.get("last") != quotes["last"]:
            conn.send([w.TICK_STRING, 6, req_id, _TICKS["last_time"][col], int(q.time)])
        state.update(quotes)
        if volume is not None:
            state["volume"] = volume

    async def _stream(self, conn: Conn, req_id: int, inst: Instrument,
                      state: dict[str, object]) -> None:
        try:
            while conn.writable:
                await asyncio.sleep(self.tick_interval)
                if self.is_deaf(conn):
                    continue
                self._send_ticks(conn, req_id, inst, conn.md_type, state)
                await conn.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            conn.md_subs.discard(req_id)

    async def _cancel_mkt_data(self, conn: Conn, f: w.Fields) -> None:
        f.skip()
        req_id = f.int()
        task = conn.tasks.pop(("mkt", req_id), None)
        if task:
            task.cancel()
        conn.md_subs.discard(req_id)

    # --------------------------------------------------------------- historical
    async def _historical(self, conn: Conn, f: w.Fields) -> None:
        if conn.sv < w.V_SYNT_REALTIME_BARS:
            f.skip()  # version
        req_id = f.int()
        contract = w.read_contract(f)
        f.skip()  # includeExpired
        end_text, bar_size, duration = f.str(), f.str(), f.str()
        use_rth, what, format_date = f.int(), f.str().upper(), f.int()
        if str(contract["secType"]).upper() == "BAG":
            f.skip(4 * f.int())
        keep = f.bool() if conn.sv >= w.V_SYNT_REALTIME_BARS and f.more() else False
        inst = self.one_instrument(conn, req_id, contract)
        if inst is None:
            return
        now = self.market.now()
        try:
            req = plan_request(self.market, inst, end_text, duration, bar_size, what, use_rth,
                               format_date, keep, now)
        except HistError as exc:
            conn.send(w.error_msg(conn.sv, req_id, exc.code, exc.message))
            return
        if self.enforce_pacing:
            exchange = str(contract["exchange"] or inst.exchange)
            why = self._pacing.check(
                (inst.con_id, exchange, end_text, duration, bar_size, what, use_rth),
                (inst.con_id, exchange, what), self.pacing_clock(), req.bar_seconds,
                weight=2 if what == "BID_ASK" else 1)
            if why:
                log.info("pacing violation on request %d: %s", req_id, why)
                conn.send(w.error_msg(conn.sv, req_id, 162,
                                      f"{HMDS}Historical data request pacing violation"))
                return
        if req.implied_tz:
            conn.send(w.error_msg(conn.sv, req_id, 2174, NO_TZ_WARNING))
        bars = self.market.bars(inst.key, req.start, req.end, req.bar_seconds, req.kind,
                                req.what, req.use_rth)
        if not len(bars):
            err = no_data_error(inst, req.what)
            conn.send(w.error_msg(conn.sv, req_id, err.code, err.message))
            return
        conn.send_payload(self._encode_bars(conn.sv, req_id, inst, req, bars))
        if keep:
            task = asyncio.create_task(self._keep_up(conn, req_id, inst, req, int(bars.time[-1])))
            conn.tasks[("hist", req_id)] = task

    def _encode_bars(self, sv: int, req_id: int, inst: Instrument, req, bars) -> str:
        dates = format_bar_dates(bars.time, bars.dates, inst.time_zone, req.format_date)
        vol = bars.volume
        if inst.sec_type == STOCK and sv < w.V_HMDS_MARKET_DATA_IN_SHARES:
            vol = (vol / 100.0).round()
        quote_bars = req.what in ("MIDPOINT", "BID", "ASK", "BID_ASK")
        rows = w.bar_rows(sv, dates, bars.open, bars.high, bars.low, bars.close, vol, bars.wap,
                          bars.count, inst.price_decimals,
                          inst.size_decimals if inst.sec_type == CRYPTO else 0, quote_bars)
        return w.historical_data(sv, req_id, format_stamp(req.start, inst.time_zone),
                                 format_stamp(req.end, inst.time_zone), rows, len(bars))

    async def _keep_up(self, conn: Conn, req_id: int, inst: Instrument, req,
                       last_start: int) -> None:
        """keepUpToDate: send historicalDataUpdate (90) for the forming bar."""
        try:
            while conn.writable:
                await asyncio.sleep(max(self.tick_interval, 1.0))
                now = self.market.now()
                bars = self.market.bars(inst.key, last_start, now, req.bar_seconds, req.kind,
                                        req.what, req.use_rth)
                if not len(bars) or self.is_deaf(conn):
                    continue
                last_start = int(bars.time[-1])
                # Every bar since the last update: the ones that completed in
                # between (their final values), then the one forming now.
                dates = format_bar_dates(bars.time, bars.dates, inst.time_zone, req.format_date)
                for i, label in enumerate(dates):
                    vol = float(bars.volume[i])
                    conn.send([w.HISTORICAL_DATA_UPDATE, req_id, int(bars.count[i]), label,
                               w.num(bars.open[i]), w.num(bars.close[i]), w.num(bars.high[i]),
                               w.num(bars.low[i]), w.num(float(bars.wap[i])),
                               w.size(vol, conn.sv) if vol >= 0 else "-1"])
                await conn.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def _cancel_historical(self, conn: Conn, f: w.Fields) -> None:
        f.skip()
        task = conn.tasks.pop(("hist", f.int()), None)
        if task:
            task.cancel()

    async def _head_timestamp(self, conn: Conn, f: w.Fields) -> None:
        req_id = f.int()
        contract = w.read_contract(f)
        f.skip(2)  # includeExpired, useRTH
        what = f.str().upper()
        format_date = f.int()
        inst = self.one_instrument(conn, req_id, contract)
        if inst is None:
            return
        if (what == "TRADES" and inst.sec_type in (FX, CRYPTO)) or \
                (what == "AGGTRADES" and inst.sec_type != CRYPTO):
            conn.send(w.error_msg(conn.sv, req_id, 162, f"{HMDS}No head time stamp"))
            return
        first = dt.datetime(2018 if inst.sec_type == CRYPTO else 2004, 1, 2, 14, 30,
                            tzinfo=dt.timezone.utc)
        text = str(int(first.timestamp())) if format_date == 2 else first.strftime(
            "%Y%m%d-%H:%M:%S")
        conn.send([w.HEAD_TIMESTAMP, req_id, text])
