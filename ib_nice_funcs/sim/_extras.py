"""The TWS simulator's smaller requests: P&L, real-time bars, tick-by-tick,
historical ticks, and the reference lookups clients make once (scanner
parameters, news providers, market rules, family codes, depth exchanges,
soft dollar tiers, user info, smart components, option chains, historical
news, FA configuration).

Every request a client waits for gets an answer carrying its own request id
(or the reply the client keys the request by), so no client call hangs: a
lookup the paper account has nothing for answers an empty list, as TWS does
for an account without that feature.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

from . import _wire as w
from ._history import HistError, parse_end
from ._scanner import SCANNER_XML
from .catalog import FX, STOCK, Instrument
from .market import Bars

if TYPE_CHECKING:
    from ._conn import Conn
    from .views import TWSView

_FA_XML = '<?xml version="1.0" encoding="UTF-8"?><ListOfGroups/>'
#: Seconds between P&L updates of a subscription (TWS sends about one a second).
PNL_INTERVAL_S = 1.0
REALTIME_BAR_S = 5


# ----------------------------------------------------------------------- P&L
def _pnl_fields(sim: TWSView, conn: Conn, req_id: int) -> list[object]:
    values = sim.engine.values(sim.market.now())
    unreal, real = values["UnrealizedPnL"], values["RealizedPnL"]
    fields: list[object] = [w.PNL, req_id, w.num(round(unreal + real, 2))]
    if conn.sv >= 129:
        fields.append(w.num(round(unreal, 2)))
    if conn.sv >= 135:
        fields.append(w.num(round(real, 2)))
    return fields


def _pnl_single_fields(sim: TWSView, conn: Conn, req_id: int, con_id: int) -> list[object]:
    row = next(((pos, value, unreal) for pos, _px, value, unreal in
                sim.engine.portfolio(sim.market.now()) if pos.inst.con_id == con_id), None)
    qty, value, unreal, real = 0.0, 0.0, 0.0, 0.0
    if row is not None:
        pos, value, unreal = row
        qty, real = pos.quantity, pos.realized
    fields: list[object] = [w.PNL_SINGLE, req_id, w.size(qty, conn.sv),
                            w.num(round(unreal + real, 2))]
    if conn.sv >= 129:
        fields.append(w.num(round(unreal, 2)))
    if conn.sv >= 135:
        fields.append(w.num(round(real, 2)))
    fields.append(w.num(round(value, 2)))
    return fields


async def _pnl_stream(sim: TWSView, conn: Conn, req_id: int,
                      build: Callable[[], list[object]]) -> None:
    """Send ``build()`` now and again whenever it changes (checked once a second)."""
    last: list[object] | None = None
    try:
        while conn.writable:
            fields = build()
            if fields != last and not sim.is_deaf(conn):
                conn.send(fields)
                last = fields
                await conn.drain()
            await asyncio.sleep(max(sim.tick_interval, PNL_INTERVAL_S))
    except (ConnectionError, asyncio.CancelledError):
        pass


def _subscribe(conn: Conn, key: tuple[str, int], coro: Coroutine[Any, Any, None]) -> None:
    old = conn.tasks.pop(key, None)
    if old:
        old.cancel()
    conn.tasks[key] = asyncio.create_task(coro)


def _unsubscribe(conn: Conn, key: tuple[str, int]) -> None:
    task = conn.tasks.pop(key, None)
    if task:
        task.cancel()


async def req_pnl(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    req_id, account = f.int(), f.str()
    if account and account != sim.account:
        conn.send(w.error_msg(conn.sv, req_id, 321, "Error validating request.-'bZ' : cause - "
                              f"account {account} is not managed by this session"))
        return
    _subscribe(conn, ("pnl", req_id),
               _pnl_stream(sim, conn, req_id, lambda: _pnl_fields(sim, conn, req_id)))


async def req_pnl_single(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    req_id, account, _model, con_id = f.int(), f.str(), f.str(), f.int()
    if account and account != sim.account:
        conn.send(w.error_msg(conn.sv, req_id, 321, "Error validating request.-'bZ' : cause - "
                              f"account {account} is not managed by this session"))
        return
    if sim.market.by_con_id(con_id) is None:
        conn.send(w.error_msg(conn.sv, req_id, 200, "No security definition has been found "
                              "for the request"))
        return
    _subscribe(conn, ("pnl", req_id), _pnl_stream(
        sim, conn, req_id, lambda: _pnl_single_fields(sim, conn, req_id, con_id)))


async def cancel_pnl(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    _unsubscribe(conn, ("pnl", f.int()))


# ------------------------------------------------------------ real-time bars
def _bar_fields(sim: TWSView, conn: Conn, req_id: int, inst: Instrument, what: str,
                rth: bool, start: int) -> list[object] | None:
    if what == "TRADES" and inst.sec_type == FX:  # FX has no trades: TWS sends midpoints
        what = "MIDPOINT"
    bars = sim.market.bars(inst.key, start, start + REALTIME_BAR_S, REALTIME_BAR_S,
                           "seconds", what, rth)
    if not len(bars) or int(bars.time[-1]) != start:
        return None
    vol = max(0.0, float(bars.volume[-1]))
    wap = float(bars.wap[-1]) if float(bars.wap[-1]) > 0 else float(bars.close[-1])
    return [w.REAL_TIME_BARS, 3, req_id, start, w.num(float(bars.open[-1])),
            w.num(float(bars.high[-1])), w.num(float(bars.low[-1])),
            w.num(float(bars.close[-1])), w.size(vol, conn.sv), w.num(wap),
            max(0, int(bars.count[-1]))]


async def _bar_stream(sim: TWSView, conn: Conn, req_id: int, inst: Instrument, what: str,
                      rth: bool) -> None:
    """One 5-second bar each time one completes on the market clock (the last
    completed bar at once, so a client sees data without waiting)."""
    sent = None
    try:
        while conn.writable:
            start = int(sim.market.now()) // REALTIME_BAR_S * REALTIME_BAR_S - REALTIME_BAR_S
            if start != sent and not sim.is_deaf(conn):
                fields = _bar_fields(sim, conn, req_id, inst, what, rth, start)
                sent = start
                if fields is not None:
                    conn.send(fields)
                    await conn.drain()
            await asyncio.sleep(sim.tick_interval)
    except (ConnectionError, asyncio.CancelledError):
        pass


async def req_real_time_bars(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    f.skip()  # version
    req_id = f.int()
    contract = w.read_contract(f)
    bar_size, what, rth = f.int(), f.str().upper(), f.bool()
    if bar_size != REALTIME_BAR_S:
        conn.send(w.error_msg(conn.sv, req_id, 321, "Error validating request.-'bW' : cause - "
                              "Invalid bar size: only 5 second real time bars are supported"))
        return
    if what not in ("TRADES", "MIDPOINT", "BID", "ASK"):
        conn.send(w.error_msg(conn.sv, req_id, 321, "Error validating request.-'bW' : cause - "
                              f"Invalid whatToShow {what!r}: use TRADES, MIDPOINT, BID or ASK"))
        return
    inst = sim.one_instrument(conn, req_id, contract)
    if inst is None:
        return
    _subscribe(conn, ("rtb", req_id), _bar_stream(sim, conn, req_id, inst, what, rth))


async def cancel_real_time_bars(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    f.skip()
    _unsubscribe(conn, ("rtb", f.int()))


# ------------------------------------------------------------ tick by tick
_TBT_TYPES = {"LAST": 1, "ALLLAST": 2, "BIDASK": 3, "MIDPOINT": 4}


def _tbt_fields(sim: TWSView, conn: Conn, inst: Instrument, kind: int) -> list[object]:
    q = sim.market.quote(inst.key)
    if kind in (1, 2):
        return [w.num(q.last), w.size(q.last_size, conn.sv), 0, inst.primary_exchange, ""]
    if kind == 3:
        return [w.num(q.bid), w.num(q.ask), w.size(q.bid_size, conn.sv),
                w.size(q.ask_size, conn.sv), 0]
    return [w.num(q.mid)]


async def _tbt_stream(sim: TWSView, conn: Conn, req_id: int, inst: Instrument,
                      kind: int) -> None:
    """A tick whenever the paper quote changes (none while the market is closed)."""
    last: list[object] | None = None
    try:
        while conn.writable:
            fields = _tbt_fields(sim, conn, inst, kind)
            if fields != last and not sim.is_deaf(conn):
                conn.send([w.TICK_BY_TICK, req_id, kind, int(sim.market.now())] + fields)
                last = fields
                await conn.drain()
            await asyncio.sleep(sim.tick_interval)
    except (ConnectionError, asyncio.CancelledError):
        pass


async def req_tick_by_tick(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    req_id = f.int()
    contract = w.read_contract(f)
    kind = _TBT_TYPES.get(f.str().upper().replace(" ", ""))
    inst = sim.one_instrument(conn, req_id, contract)
    if inst is None:
        return
    if kind is None or (kind in (1, 2) and inst.sec_type == FX):
        conn.send(w.error_msg(conn.sv, req_id, 10189, "Failed to request tick-by-tick data."
                              "BidAsk, MidPoint, Last or AllLast (no trades for FX)"))
        return
    _subscribe(conn, ("tbt", req_id), _tbt_stream(sim, conn, req_id, inst, kind))


async def cancel_tick_by_tick(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    _unsubscribe(conn, ("tbt", f.int()))


# --------------------------------------------------------- historical ticks
#: Most ticks one reqHistoricalTicks returns (IB's limit).
MAX_TICKS = 1000


def _tick_window(sim: TWSView, inst: Instrument, start: float | None, end: float | None,
                 count: int, what: str, rth: bool) -> Bars:
    """1-second bars holding ``count`` ticks from ``start`` on or up to ``end``."""
    span = max(60.0, 2.0 * count)
    while True:
        if start is not None:
            lo, hi = start, start + span
        else:  # the caller gives exactly one of start and end (error 321 otherwise)
            lo, hi = cast(float, end) - span, cast(float, end)
        bars = sim.market.bars(inst.key, lo, min(hi, sim.market.now() + 1e-6), 1, "seconds",
                               what, rth)
        if len(bars) >= count or span > 4 * 86400:
            return bars
        span *= 4


async def req_historical_ticks(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    """One tick per second of the paper market's path (trades: last price and the
    second's volume; BID_ASK: the quote around it; MIDPOINT: the midpoint)."""
    req_id = f.int()
    contract = w.read_contract(f)
    f.skip()  # includeExpired
    start_text, end_text, count = f.str(), f.str(), f.int()
    what, rth = f.str().upper(), f.bool()
    inst = sim.one_instrument(conn, req_id, contract)
    if inst is None:
        return
    if bool(start_text.strip()) == bool(end_text.strip()) or what not in ("TRADES", "MIDPOINT",
                                                                          "BID_ASK"):
        conn.send(w.error_msg(conn.sv, req_id, 321, "Error validating request.-'cb' : cause - "
                              "give exactly one of start and end, and whatToShow TRADES, "
                              "MIDPOINT or BID_ASK"))
        return
    if what == "TRADES" and inst.sec_type == FX:
        conn.send(w.error_msg(conn.sv, req_id, 162, "Historical Market Data Service error "
                              "message:No historical tick data of type TRADES for CASH"))
        return
    try:
        start = parse_end(start_text, sim.market.now())[0] if start_text.strip() else None
        end = parse_end(end_text, sim.market.now())[0] if end_text.strip() else None
    except HistError as exc:
        conn.send(w.error_msg(conn.sv, req_id, exc.code, exc.message))
        return
    count = max(1, min(count, MAX_TICKS))
    source = {"TRADES": "TRADES", "MIDPOINT": "MIDPOINT", "BID_ASK": "BID"}[what]
    bars = _tick_window(sim, inst, start, end, count, source, rth)
    picked = slice(0, count) if start is not None else slice(max(0, len(bars) - count), None)
    times = bars.time[picked].tolist()
    closes = bars.close[picked].tolist()
    rows: list[object] = []
    if what == "TRADES":
        vols = bars.volume[picked].tolist()
        for t, px, vol in zip(times, closes, vols, strict=False):
            rows += [int(t), 0, w.num(px), w.size(max(vol, inst.size_increment), conn.sv),
                     inst.primary_exchange, ""]
        conn.send([w.HISTORICAL_TICKS_LAST, req_id, len(times)] + rows + [1])
    elif what == "BID_ASK":
        asks = sim.market.bars(inst.key, float(bars.time[0]) if len(bars) else 0.0,
                               float(bars.time[-1]) + 1 if len(bars) else 0.0, 1, "seconds",
                               "ASK", rth)
        ask_at = dict(zip(asks.time.tolist(), asks.close.tolist(), strict=False))
        q = sim.market.quote(inst.key)
        for t, bid in zip(times, closes, strict=False):
            rows += [int(t), 0, w.num(bid), w.num(ask_at.get(t, bid)),
                     w.size(q.bid_size, conn.sv), w.size(q.ask_size, conn.sv)]
        conn.send([w.HISTORICAL_TICKS_BID_ASK, req_id, len(times)] + rows + [1])
    else:
        for t, px in zip(times, closes, strict=False):
            rows += [int(t), "", w.num(px), 0]
        conn.send([w.HISTORICAL_TICKS, req_id, len(times)] + rows + [1])


# -------------------------------------------------------- reference lookups
async def req_scanner_parameters(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    conn.send([w.SCANNER_PARAMETERS, 1, SCANNER_XML])


async def req_news_providers(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    conn.send([w.NEWS_PROVIDERS, 0])  # a paper account subscribes to no news feed


async def req_market_rule(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    rule_id = f.int()
    ticks = sorted({i.min_tick for i in sim.market.instruments()
                    if w.MARKET_RULE_IDS.get(i.sec_type) == rule_id})
    rows: list[object] = [0, w.num(ticks[0])] if ticks else []
    conn.send([w.MARKET_RULE, rule_id, len(rows) // 2] + rows)


async def req_family_codes(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    conn.send([w.FAMILY_CODES, 1, sim.account, ""])


async def req_mkt_depth_exchanges(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    rows: list[object] = []
    for exchange, sec_type in (("ISLAND", STOCK), ("IDEALPRO", FX), ("PAXOS", "CRYPTO")):
        rows += [exchange, sec_type, "", "Deep2", 1] if conn.sv >= 120 else [exchange, sec_type,
                                                                             1]
    conn.send([w.MKT_DEPTH_EXCHANGES, len(rows) // (5 if conn.sv >= 120 else 3)] + rows)


async def req_soft_dollar_tiers(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    conn.send([w.SOFT_DOLLAR_TIERS, f.int(), 0])


async def req_user_info(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    conn.send([w.USER_INFO, f.int(), ""])


async def req_smart_components(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    conn.send([w.SMART_COMPONENTS, f.int(), 0])


async def req_sec_def_opt_params(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    conn.send([w.SEC_DEF_OPT_PARAMS_END, f.int()])  # the paper market lists no options


async def req_historical_news(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    conn.send([w.HISTORICAL_NEWS_END, f.int(), 0])


async def request_fa(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    f.skip()  # version
    conn.send([w.RECEIVE_FA, 1, f.int(), _FA_XML])


HANDLERS = {92: req_pnl, 93: cancel_pnl, 94: req_pnl_single, 95: cancel_pnl,
            50: req_real_time_bars, 51: cancel_real_time_bars, 24: req_scanner_parameters,
            85: req_news_providers, 91: req_market_rule, 80: req_family_codes,
            82: req_mkt_depth_exchanges, 79: req_soft_dollar_tiers, 104: req_user_info,
            83: req_smart_components, 78: req_sec_def_opt_params, 86: req_historical_news,
            18: request_fa, 96: req_historical_ticks, 97: req_tick_by_tick,
            98: cancel_tick_by_tick}
