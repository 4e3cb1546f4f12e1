"""Account, portfolio and position messages of the TWS simulator."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from . import _wire as w
from .catalog import Instrument
from .matching import Position

if TYPE_CHECKING:
    from ._conn import Conn
    from .views import TWSView

# Tags sent by reqAccountUpdates / reqAccountUpdatesMulti (all in USD).
_VALUE_TAGS = ("NetLiquidation", "TotalCashValue", "CashBalance", "SettledCash", "AccruedCash",
               "EquityWithLoanValue", "GrossPositionValue", "StockMarketValue",
               "InitMarginReq", "MaintMarginReq", "FullInitMarginReq", "FullMaintMarginReq",
               "AvailableFunds", "FullAvailableFunds", "ExcessLiquidity", "FullExcessLiquidity",
               "BuyingPower", "UnrealizedPnL", "RealizedPnL", "Cushion", "DayTradesRemaining",
               "Leverage")
_NO_CURRENCY = {"Cushion", "DayTradesRemaining", "Leverage"}


def account_rows(sim: TWSView) -> list[tuple[str, str, str]]:
    """(tag, value, currency) rows describing the account now."""
    values = sim.engine.values(sim.market.now())
    live = not sim.account.startswith("D")
    rows = [("AccountCode", sim.account, ""), ("AccountType", "INDIVIDUAL", ""),
            ("AccountReady", "true", ""), ("Currency", "USD", "USD"),
            ("RealCurrency", "USD", "USD"),
            ("SegmentTitle-" + ("C" if live else "S"), "Securities", "")]
    for tag in _VALUE_TAGS:
        val = values[tag]
        text = f"{val:.0f}" if tag == "DayTradesRemaining" else f"{val:.2f}"
        rows.append((tag, text, "" if tag in _NO_CURRENCY else "USD"))
    rows += [("TotalCashBalance", f"{sim.engine.cash:.2f}", "BASE"),
             ("CashBalance", f"{sim.engine.cash:.2f}", "BASE"),
             ("NetLiquidationByCurrency", f"{values['NetLiquidation']:.2f}", "BASE"),
             ("UnrealizedPnL", f"{values['UnrealizedPnL']:.2f}", "BASE"),
             ("RealizedPnL", f"{values['RealizedPnL']:.2f}", "BASE")]
    return rows


def _contract11(inst: Instrument, exchange: str) -> list[object]:
    return [inst.con_id, inst.symbol, inst.sec_type, "", w.num(0.0), "", "", exchange,
            inst.currency, inst.local_symbol, inst.trading_class]


def position_msg(sv: int, account: str, pos: Position) -> list[object]:
    """position (61), version 3."""
    return ([w.POSITION_DATA, 3, account] + _contract11(pos.inst, pos.inst.primary_exchange)
            + [w.qty(pos.quantity, sv), w.num(pos.avg_cost)])


def portfolio_msg(sim: TWSView, sv: int, pos: Position, price: float, value: float,
                  unrealized: float) -> list[object]:
    """updatePortfolio (7), version 8."""
    inst = pos.inst
    return [w.PORTFOLIO_VALUE, 8, inst.con_id, inst.symbol, inst.sec_type, "", w.num(0.0), "",
            "", inst.primary_exchange, inst.currency, inst.local_symbol, inst.trading_class,
            w.qty(pos.quantity, sv), w.num(price), w.num(round(value, 2)),
            w.num(round(pos.avg_cost, 6)), w.num(round(unrealized, 2)),
            w.num(round(pos.realized, 2)), sim.account]


def send_account(sim: TWSView, conn: Conn, end: bool) -> None:
    """Account values, portfolio and time, as reqAccountUpdates answers."""
    for tag, val, cur in account_rows(sim):
        conn.send([w.ACCT_VALUE, 2, tag, val, cur, sim.account])
    for pos, price, value, unreal in sim.engine.portfolio(sim.market.now()):
        conn.send(portfolio_msg(sim, conn.sv, pos, price, value, unreal))
    stamp = dt.datetime.fromtimestamp(sim.market.now(), ZoneInfo("US/Eastern")).strftime("%H:%M")
    conn.send([w.ACCT_UPDATE_TIME, 1, stamp])
    if end:
        conn.send([w.ACCT_DOWNLOAD_END, 1, sim.account])


def push_account(sim: TWSView, changed: set[int]) -> None:
    """After fills: update every subscriber of account updates and positions."""
    positions = [p for c, p in sim.engine.positions.items() if c in changed]
    for conn in sim.conns():
        if conn.account_updates:
            send_account(sim, conn, end=False)
        if conn.positions_sub:
            for pos in positions:
                conn.send(position_msg(conn.sv, sim.account, pos))
        for req_id, model in conn.multi_subs.items():
            for tag, val, cur in account_rows(sim):
                conn.send([w.ACCOUNT_UPDATE_MULTI, 1, req_id, sim.account, model, tag, val, cur])


async def req_account_updates(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    f.skip()  # version
    subscribe = f.bool()
    account = f.str()
    if account and account != sim.account:
        conn.send(w.error_msg(conn.sv, -1, 321, "Error validating request.-'bB' : cause - "
                              f"account {account} is not managed by this session"))
        return
    conn.account_updates = subscribe
    if subscribe:
        send_account(sim, conn, end=True)


async def req_account_updates_multi(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    f.skip()
    req_id, account, model = f.int(), f.str(), f.str()
    if account not in ("", "All", sim.account):
        conn.send(w.error_msg(conn.sv, req_id, 321, "Error validating request.-'bB' : cause - "
                              f"account {account} is not managed by this session"))
        return
    conn.multi_subs[req_id] = model
    for tag, val, cur in account_rows(sim):
        conn.send([w.ACCOUNT_UPDATE_MULTI, 1, req_id, sim.account, model, tag, val, cur])
    conn.send([w.ACCOUNT_UPDATE_MULTI_END, 1, req_id])


async def cancel_account_updates_multi(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    f.skip()
    conn.multi_subs.pop(f.int(), None)


async def req_positions(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    conn.positions_sub = True
    for pos in sim.engine.positions.values():
        conn.send(position_msg(conn.sv, sim.account, pos))
    conn.send([w.POSITION_END, 1])


async def cancel_positions(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    conn.positions_sub = False


async def req_positions_multi(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    f.skip()
    req_id, _account, model = f.int(), f.str(), f.str()
    for pos in sim.engine.positions.values():
        conn.send([71, 1, req_id, sim.account] + _contract11(pos.inst, pos.inst.primary_exchange)
                  + [w.qty(pos.quantity, conn.sv), w.num(pos.avg_cost), model])
    conn.send([w.POSITION_MULTI_END, 1, req_id])


async def req_account_summary(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    f.skip()
    req_id, _group, tags = f.int(), f.str(), f.str()
    wanted = {t.strip() for t in tags.split(",") if t.strip()}
    rows = [(t, v, c) for t, v, c in account_rows(sim) if c != "BASE"]
    if "$LEDGER" in wanted or "$LEDGER:ALL" in wanted or "$LEDGER:USD" in wanted:
        wanted |= {"CashBalance", "TotalCashBalance", "NetLiquidationByCurrency",
                   "UnrealizedPnL", "RealizedPnL"}
    seen: set[str] = set()
    for tag, val, cur in rows:
        if ("All" in wanted or tag in wanted) and tag not in seen:
            seen.add(tag)
            conn.send([w.ACCOUNT_SUMMARY, 1, req_id, sim.account, tag, val, cur])
    conn.summaries[req_id] = tags
    conn.send([w.ACCOUNT_SUMMARY_END, 1, req_id])


async def cancel_account_summary(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    f.skip()
    conn.summaries.pop(f.int(), None)


HANDLERS = {6: req_account_updates, 76: req_account_updates_multi,
            77: cancel_account_updates_multi, 61: req_positions, 64: cancel_positions,
            74: req_positions_multi, 75: cancel_account_updates_multi,
            62: req_account_summary, 63: cancel_account_summary}
