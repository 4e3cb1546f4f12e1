"""Order messages of the TWS simulator: placeOrder parsing and order replies.

placeOrder is read field by field as IB's client writes it for the
negotiated server version (ibapi ``EClient.placeOrder``); openOrder,
completedOrder, orderStatus and execDetails are written as IB's
``OrderDecoder``/``Decoder`` read them for that version.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, cast
from zoneinfo import ZoneInfo

from . import _account
from . import _wire as w
from ._history import HistError, parse_end
from .matching import Event, Fill, SimOrder

if TYPE_CHECKING:
    from ._conn import Conn
    from .views import TWSView

log = logging.getLogger(__name__)
U = w.UNSET_DOUBLE_TEXT
UI = w.UNSET_INTEGER_TEXT


class OrderParseError(ValueError):
    """A placeOrder the simulator cannot accept (it is answered with error 201)."""


def parse_place_order(f: w.Fields, sv: int) -> tuple[int, dict, dict]:
    """Read a placeOrder -> (orderId, contract fields, order fields).

    Raises:
        OrderParseError: for combo (BAG) contracts and conditional orders.
        ValueError, IndexError: for malformed messages.
    """
    if sv < w.V_ORDER_CONTAINER:
        f.skip()  # version
    order_id = f.int()
    contract = w.read_contract(f)
    f.skip(2)  # secIdType, secId
    o: dict = {"action": f.str().upper(), "totalQuantity": f.float(), "orderType": f.str().upper(),
               "lmtPrice": f.opt_float(), "auxPrice": f.opt_float(), "tif": f.str().upper(),
               "ocaGroup": f.str(), "account": f.str(), "openClose": f.str(),
               "origin": f.int(), "orderRef": f.str(), "transmit": f.bool(),
               "parentId": f.int(), "blockOrder": f.bool(), "sweepToFill": f.bool(),
               "displaySize": f.int(), "triggerMethod": f.int(), "outsideRth": f.bool(),
               "hidden": f.bool()}
    if str(contract["secType"]).upper() == "BAG":
        raise OrderParseError("combo (BAG) orders are not supported by the paper simulator")
    f.skip()  # deprecated sharesAllocation
    o["discretionaryAmt"] = f.float()
    o["goodAfterTime"], o["goodTillDate"] = f.str(), f.str()
    f.skip(3)  # faGroup, faMethod, faPercentage
    if sv < w.V_FA_PROFILE_DESUPPORT:
        f.skip()  # faProfile
    if sv >= 103:
        o["modelCode"] = f.str()
    f.skip(2)  # shortSaleSlot, designatedLocation
    if sv >= 51:
        f.skip()  # exemptCode
    o["ocaType"] = f.int()
    f.skip(14)  # rule80A, settlingFirm, allOrNone, minQty, percentOffset,
    #              eTradeOnly, firmQuoteOnly, nbboPriceCap, auctionStrategy, startingPrice,
    #              stockRefPrice, delta, stockRangeLower, stockRangeUpper
    f.skip(3)  # overridePercentageConstraints, volatility, volatilityType
    dn_type = f.str()
    f.skip()  # deltaNeutralAuxPrice
    if dn_type:
        f.skip(8)
    f.skip(2)  # continuousUpdate, referencePriceType
    o["trailStopPrice"] = f.opt_float()
    o["trailingPercent"] = f.opt_float()
    f.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
    increment = f.opt_float()
    if increment is not None and increment > 0:
        f.skip(7)
    f.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if f.str():  # hedgeType
        f.skip()
    f.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if f.bool():  # delta-neutral contract
        f.skip(3)
    if f.str():  # algoStrategy
        f.skip(2 * f.int())
    f.skip()  # algoId
    o["whatIf"] = f.bool()
    f.skip(4)  # orderMiscOptions, solicited, randomizeSize, randomizePrice
    if o["orderType"] in ("PEG BENCH", "PEGBENCH"):
        f.skip(5)
    if f.int():
        raise OrderParseError("conditional orders are not supported by the paper simulator")
    f.skip(7)  # adjusted order fields
    f.skip(3)  # extOperator, softDollarTier name and value
    o["cashQty"] = f.opt_float() if f.more() else None
    return order_id, contract, o


# ---------------------------------------------------------------- encoders
def _contract(order: SimOrder) -> list[object]:
    inst = order.inst
    exchange = order.extra.get("exchange") or inst.exchange
    return [inst.con_id, inst.symbol, inst.sec_type, "", w.num(0.0), "", "", exchange,
            inst.currency, inst.local_symbol, inst.trading_class]


def _prices(order: SimOrder) -> list[object]:
    aux = order.aux_price
    return [w.dbl(order.lmt_price), w.dbl(aux)]


def open_order_msg(sv: int, order: SimOrder, state: dict | None = None) -> list[object]:
    """openOrder (5) for the negotiated server version; ``state`` overrides OrderState."""
    state = state or {}
    f: list[object] = [w.OPEN_ORDER]
    if sv < w.V_ORDER_CONTAINER:
        f.append(34)
    f.append(order.order_id)
    f += _contract(order)
    f += [order.action, w.qty(order.quantity, sv), order.order_type] + _prices(order)
    f += [order.tif, order.oca_group, order.account, "O", 0, order.order_ref, order.client_id,
          order.perm_id, int(order.outside_rth), 0, w.num(0.0), ""]
    f += ["", "", "", ""]  # sharesAllocation, faGroup, faMethod, faPercentage
    if sv < w.V_FA_PROFILE_DESUPPORT:
        f.append("")
    if sv >= 103:
        f.append("")  # modelCode
    f += [order.extra.get("goodTillDate", ""), "", U, ""]  # goodTillDate, rule80A, ..
    f += [0, "", -1]  # shortSaleSlot, designatedLocation, exemptCode
    f += [0, U, U, U, U, U]  # auctionStrategy, startingPrice, stockRefPrice, delta, ranges
    f += [UI, 0, 0, 0, UI, order.oca_type]  # displaySize .. minQty, ocaType
    f += [0, 0, U]  # eTradeOnly, firmQuoteOnly, nbboPriceCap
    f += [order.parent_id, 0]  # parentId, triggerMethod
    f += [U, 0, "", U, 0, UI]  # volatility .. referencePriceType
    f += [w.dbl(order.trail_stop_price), w.dbl(order.trailing_percent)]
    f += [U, UI]  # basisPoints, basisPointsType
    f += ["", 0, 0, 0]  # comboLegsDescrip, legs, order legs, smart combo params
    f += [UI, UI, U]  # scale init/subs level size, scalePriceIncrement
    f += [""]  # hedgeType
    f += [0, "", "", 0, 0]  # optOutSmartRouting, clearing acct/intent, notHeld, dnc present
    f += [""]  # algoStrategy
    f += [0]  # solicited
    f += [int(bool(state.get("whatIf"))), state.get("status", order.status)]
    if sv >= 142:
        f += [state.get(k, U) for k in ("initMarginBefore", "maintMarginBefore",
                                        "equityWithLoanBefore", "initMarginChange",
                                        "maintMarginChange", "equityWithLoanChange")]
    f += [state.get(k, U) for k in ("initMarginAfter", "maintMarginAfter",
                                    "equityWithLoanAfter")]
    f += [state.get("commission", U), state.get("minCommission", U),
          state.get("maxCommission", U), state.get("commissionCurrency", ""),
          state.get("warningText", "")]
    f += [0, 0]  # randomizeSize, randomizePrice
    if sv >= 102:
        f += [0]  # conditions
        f += ["", U, w.dbl(order.trail_stop_price), U, U, U, U, 0]  # adjusted order params
    if sv >= 106:
        f += ["", "", ""]  # soft dollar tier
    if sv >= 111:
        f.append(w.dbl(order.extra.get("cashQty")))
    if sv >= 141:
        f.append(0)
    if sv >= w.V_ORDER_CONTAINER:
        f.append(0)
    if sv >= 148:
        f.append(0)
    if sv >= 151:
        f.append("")
    if sv >= w.V_DURATION:
        f.append(UI)
    if sv >= w.V_POST_TO_ATS:
        f.append(UI)
    if sv >= w.V_AUTO_CANCEL_PARENT:
        f.append(0)
    if sv >= w.V_PEGBEST_PEGMID_OFFSETS:
        f += [UI, UI, U, U, U]
    return f


def completed_order_msg(sv: int, order: SimOrder, tz: str) -> list[object]:
    """completedOrder (101) for the negotiated server version."""
    f: list[object] = [w.COMPLETED_ORDER] + _contract(order)
    f += [order.action, w.qty(order.quantity, sv), order.order_type] + _prices(order)
    f += [order.tif, order.oca_group, order.account, "O", 0, order.order_ref, order.perm_id,
          int(order.outside_rth), 0, w.num(0.0), "", "", "", ""]
    if sv < w.V_FA_PROFILE_DESUPPORT:
        f.append("")
    f += ["", "", "", U, ""]  # modelCode, goodTillDate, rule80A, percentOffset, settlingFirm
    f += [0, "", -1]  # shortSaleSlot, designatedLocation, exemptCode
    f += [U, U, U, U, U]  # startingPrice, stockRefPrice, delta, stock ranges
    f += [UI, 0, 0, UI, order.oca_type, 0]  # displaySize .. minQty, ocaType, trigger
    f += [U, 0, "", U]  # volatility, volatilityType, dn order type, dn aux price
    f += [0, UI, w.dbl(order.trail_stop_price), w.dbl(order.trailing_percent)]
    f += ["", 0, 0, 0, UI, UI, U, ""]  # combos, scale, hedgeType
    f += ["", "", 0, 0, ""]  # clearing acct/intent, notHeld, dnc present, algoStrategy
    f += [0, order.status, 0, 0, 0]  # solicited, status, randomize x2, conditions
    f += [w.dbl(order.trail_stop_price), U, w.dbl(order.extra.get("cashQty")), 0, 0]
    done = order.completed_at or order.submitted_at
    stamp = dt.datetime.fromtimestamp(done, ZoneInfo(tz)).strftime("%Y%m%d %H:%M:%S ") + tz
    f += ["", w.qty(order.filled, sv), 0, 0, "", 0, 0, 0, stamp, order.status]
    if sv >= w.V_PEGBEST_PEGMID_OFFSETS:
        f += [UI, UI, U, U, U]
    return f


def order_status_msg(sv: int, order: SimOrder, snapshot: tuple = ()) -> list[object]:
    """orderStatus (3); ``snapshot`` is (status, filled, remaining, avg, last) if not now."""
    status, filled, remaining, avg, last = snapshot or (
        order.status, order.filled, order.remaining, order.avg_fill_price, order.last_fill_price)
    f: list[object] = [w.ORDER_STATUS]
    if sv < w.V_MARKET_CAP_PRICE:
        f.append(6)
    f += [order.order_id, status, w.qty(filled, sv), w.qty(remaining, sv), w.num(avg),
          order.perm_id, order.parent_id, w.num(last), order.client_id,
          order.why_held]
    if sv >= w.V_MARKET_CAP_PRICE:
        f.append(w.num(0.0))
    return f


def exec_details_msg(sv: int, req_id: int, fill: Fill, tz: str) -> list[object]:
    """execDetails (11)."""
    order = fill.order
    f: list[object] = [w.EXECUTION_DATA]
    if sv < w.V_LAST_LIQUIDITY:
        f.append(10)
    stamp = dt.datetime.fromtimestamp(fill.time, ZoneInfo(tz)).strftime("%Y%m%d %H:%M:%S ") + tz
    venue = order.inst.primary_exchange if order.inst.sec_type == "STK" else order.inst.exchange
    f += [req_id, order.order_id] + _contract(order)
    f += [fill.exec_id, stamp, order.account, venue, fill.side, w.qty(fill.shares, sv),
          w.num(fill.price), order.perm_id, order.client_id, 0, w.qty(fill.cum_qty, sv),
          w.num(fill.avg_price), order.order_ref, "", ""]
    if sv >= 103:
        f.append("")  # modelCode
    if sv >= w.V_LAST_LIQUIDITY:
        f.append(2)  # removed liquidity
    if sv >= w.V_PENDING_PRICE_REVISION:
        f.append(0)
    return f


def commission_msg(fill: Fill) -> list[object]:
    """commissionReport (59)."""
    realized = w.num(round(fill.realized_pnl, 2)) if fill.realized_pnl else U
    return [w.COMMISSION_REPORT, 1, fill.exec_id, w.num(fill.commission), "USD", realized, U, ""]


# ---------------------------------------------------------------- dispatch
def dispatch(sim: TWSView, events: list[Event]) -> None:
    """Send engine events to the client that owns each order; push account changes."""
    changed: set[int] = set()
    by_client = {c.client_id: c for c in sim.conns()}
    for ev in events:
        conn = by_client.get(ev.order.client_id if ev.order else ev.client_id)
        # The engine builds every status, fill and account event with its order and
        # every fill event with its fill (matching.py); only error events may lack one.
        order, fill = cast(SimOrder, ev.order), cast(Fill, ev.fill)
        if ev.kind == "account":
            changed.add(order.inst.con_id)
            continue
        if conn is None:
            continue
        if sim.acks_dropped and ev.kind in ("status", "error"):
            continue  # the drop_acks fault knob: the client hears no acknowledgement
        if ev.kind == "status":
            status = ev.snapshot[0]
            if status in ("Submitted", "PreSubmitted", "Filled") and \
                    order.extra.get("_announced") != status:
                order.extra["_announced"] = status
                conn.send(open_order_msg(conn.sv, order, {"status": status}))
            conn.send(order_status_msg(conn.sv, order, ev.snapshot))
        elif ev.kind == "fill":
            conn.send(exec_details_msg(conn.sv, -1, fill, order.inst.time_zone))
        elif ev.kind == "error":
            conn.send(w.error_msg(conn.sv, ev.order_id, ev.code, ev.message))
    for ev in events:
        if ev.kind == "fill":
            conn = by_client.get(cast(SimOrder, ev.order).client_id)  # a fill has its order
            if conn is not None:
                conn.send(commission_msg(cast(Fill, ev.fill)))
    if changed:
        _account.push_account(sim, changed)


# ---------------------------------------------------------------- handlers
async def place_order(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    try:
        order_id, contract, o = parse_place_order(f, conn.sv)
    except OrderParseError as exc:
        conn.send(w.error_msg(conn.sv, _safe_id(f), 201, f"Order rejected - reason:{exc}"))
        return
    sim.next_order_id(order_id)
    matches = sim.resolve(contract)
    if not matches:
        sim.engine.order_count += 1
        conn.send(w.error_msg(conn.sv, order_id, 200, "No security definition has been found "
                              "for the request"))
        return
    inst, exchange = matches[0]
    order = SimOrder(order_id=order_id, client_id=conn.client_id or 0, perm_id=0,
                     account=o["account"] or sim.account, inst=inst, action=o["action"],
                     quantity=o["totalQuantity"], order_type=o["orderType"],
                     lmt_price=o["lmtPrice"], aux_price=o["auxPrice"],
                     trailing_percent=o["trailingPercent"], trail_stop_price=o["trailStopPrice"],
                     tif=o["tif"] or "DAY", order_ref=o["orderRef"],
                     outside_rth=o["outsideRth"], parent_id=o["parentId"],
                     oca_group=o["ocaGroup"], oca_type=o["ocaType"] or 3,
                     transmit=o["transmit"],
                     extra={"exchange": exchange, "cashQty": o.get("cashQty")})
    if order.tif == "GTD":
        try:  # IB's format: "yyyymmdd hh:mm:ss [zone]" (TWS's zone if none)
            if not o["goodTillDate"].strip():
                raise HistError(201, "no goodTillDate")
            order.extra["good_till"] = parse_end(o["goodTillDate"], sim.market.now())[0]
            order.extra["goodTillDate"] = o["goodTillDate"]
        except HistError:
            sim.engine.order_count += 1
            conn.send(w.error_msg(conn.sv, order_id, 201, "Order rejected - reason:GTD "
                                  f"orders need goodTillDate, got {o['goodTillDate']!r}"))
            return
    if o["whatIf"]:
        _what_if(sim, conn, order)
        return
    log.info("order %d from client %s: %s %g %s %s", order_id, conn.client_id, order.action,
             order.quantity, inst.key, order.order_type)
    sim.dispatch_events(sim.engine.submit(order, sim.market.now()))


def _what_if(sim: TWSView, conn: Conn, order: SimOrder) -> None:
    from .matching import commission_for

    quote = sim.market.quote(order.inst.key)
    px = order.lmt_price or (quote.ask if order.action == "BUY" else quote.bid)
    rate = sim.engine.usd_rate(order.inst.currency)
    values = sim.engine.values()
    change = 0.25 * order.quantity * px * rate
    comm = commission_for(order.inst, order.quantity, px, rate)
    state = {"whatIf": True, "status": "PreSubmitted",
             "initMarginBefore": f"{values['InitMarginReq']:.2f}",
             "maintMarginBefore": f"{values['MaintMarginReq']:.2f}",
             "equityWithLoanBefore": f"{values['EquityWithLoanValue']:.2f}",
             "initMarginChange": f"{change:.2f}", "maintMarginChange": f"{change:.2f}",
             "equityWithLoanChange": f"{-comm:.2f}",
             "initMarginAfter": f"{values['InitMarginReq'] + change:.2f}",
             "maintMarginAfter": f"{values['MaintMarginReq'] + change:.2f}",
             "equityWithLoanAfter": f"{values['EquityWithLoanValue'] - comm:.2f}",
             "commission": w.num(comm), "minCommission": w.num(comm),
             "maxCommission": w.num(comm), "commissionCurrency": "USD"}
    conn.send(open_order_msg(conn.sv, order, state))


async def cancel_order(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    f.skip()
    order_id = f.int()
    sim.dispatch_events(sim.engine.cancel(conn.client_id or 0, order_id, sim.market.now()))


async def global_cancel(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    sim.dispatch_events(sim.engine.cancel_all(sim.market.now()))


async def req_open_orders(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    _send_open(sim, conn, conn.client_id)


async def req_all_open_orders(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    _send_open(sim, conn, None)


def _send_open(sim: TWSView, conn: Conn, client_id: int | None) -> None:
    for order in sim.engine.open_orders(client_id):
        conn.send(open_order_msg(conn.sv, order))
        conn.send(order_status_msg(conn.sv, order))
    conn.send([w.OPEN_ORDER_END, 1])


async def req_auto_open_orders(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    if conn.client_id != 0:
        conn.send(w.error_msg(conn.sv, -1, 321, "Error validating request.-'bS' : cause - "
                              "reqAutoOpenOrders can only be called from client id 0"))


async def req_completed_orders(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    if conn.sv >= w.V_COMPLETED_ORDERS:
        for order in sim.engine.completed_orders():
            conn.send(completed_order_msg(conn.sv, order, order.inst.time_zone))
    conn.send([w.COMPLETED_ORDERS_END])


async def req_executions(sim: TWSView, conn: Conn, f: w.Fields) -> None:
    f.skip()
    req_id = f.int()
    client_id, acct, _time, symbol, sec_type, _exchange, side = (
        f.int(), f.str(), f.str(), f.str().upper(), f.str().upper(), f.str().upper(),
        f.str().upper())
    for fill in sim.engine.fills:
        o = fill.order
        if (client_id and o.client_id != client_id) or (acct and acct != o.account) or \
                (symbol and symbol != o.inst.symbol.upper()) or \
                (sec_type and sec_type != o.inst.sec_type) or \
                (side and not fill.side.startswith(side[:1])):
            continue
        conn.send(exec_details_msg(conn.sv, req_id, fill, o.inst.time_zone))
        conn.send(commission_msg(fill))
    conn.send([w.EXECUTION_DATA_END, 1, req_id])


def _safe_id(f: w.Fields) -> int:
    fields = f.fields
    idx = 1 if len(fields) > 1 else 0
    try:
        return int(fields[idx]) if idx else -1
    except ValueError:
        return -1


HANDLERS = {3: place_order, 4: cancel_order, 58: global_cancel, 5: req_open_orders,
            16: req_all_open_orders, 15: req_auto_open_orders, 99: req_completed_orders,
            7: req_executions}
