"""Order endpoints of the Client Portal simulator: questions, replies, live orders, cancels.

``POST /iserver/account/{acct}/orders`` answers one of:

- ``[{"id", "message": [...], "isSuppressed": false, "messageIds": [...]}]``:
  a question; confirm with ``POST /iserver/reply/{id} {"confirmed": true}``,
  which may answer with the next question (a stock market order asks two:
  ``o10151`` then ``o10153``). Questions come one at a time in this order:
  ``o354`` (no market data), ``o163`` (limit/stop price more than
  ``price_constraint_pct`` from the last price), ``o383`` (a stock order of
  more than ``size_limit`` shares), ``o451`` (value above ``value_limit`` USD),
  ``o10151`` + ``o10153`` (stock/FX market order; ``o10288`` for crypto),
  ``o10331`` (stop or trailing stop). A new order submission invalidates the
  reply ids of earlier unanswered questions (400 on use).
- ``[{"order_id": "<string>", "order_status", "encrypt_message": "1"}]``: placed.
- ``{"error": ...}``: refused (HTTP 200 for a duplicate ``cOID`` or an engine
  rejection, 400 for a malformed order).

Order ids over REST are the engine's permIds (unique across TWS and REST).
Live orders list every order of the day (filled and cancelled too) with
``order_ref`` = the cOID / TWS ``orderRef``; ``timeInForce`` says ``CLOSE``
for DAY orders, as the real gateway does.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._portal_http import HttpError, Reply, Request, Route
from .catalog import CRYPTO, STOCK, Instrument
from .matching import SimOrder

if TYPE_CHECKING:
    from .views import PortalView

#: Engine client id of orders placed over REST (no TWS API client can own them).
PORTAL_CLIENT_ID = -1

_ORIG = {"MKT": "MARKET", "LMT": "LIMIT", "STP": "STOP", "STP LMT": "STOP LIMIT",
         "TRAIL": "TRAILING STOP", "MOC": "MARKET ON CLOSE", "LOC": "LIMIT ON CLOSE",
         "MIDPRICE": "MIDPRICE"}
_NICE = {"MKT": "Market", "LMT": "Limit", "STP": "Stop", "STP LMT": "Stop Limit",
         "TRAIL": "Trail", "MOC": "MOC", "LOC": "LOC", "MIDPRICE": "Midprice"}
#: The gateway's spellings of order types, to the engine's.
_TYPE_ALIASES = {"STOP_LIMIT": "STP LMT", "STPLMT": "STP LMT", "STOP LIMIT": "STP LMT",
                 "MARKET": "MKT", "LIMIT": "LMT", "STOP": "STP"}
_TIFS = ("DAY", "GTC", "IOC", "OPG")
_TIF_SHOWN = {"DAY": "CLOSE"}


@dataclass
class Pending:
    """Orders (one, or a bracket / OCA group) waiting for answers to their questions."""

    orders: list[dict[str, Any]]
    questions: list[tuple[str, str]]


def _num(raw: dict, key: str) -> float | None:
    val = raw.get(key)
    if val is None or val == "":
        return None
    try:
        out = float(val)
    except (TypeError, ValueError):
        raise HttpError(400, f"{key} must be a number, got {val!r}") from None
    if math.isnan(out) or math.isinf(out):
        raise HttpError(400, f"{key} must be a finite number")
    return out


def parse_order(sim: PortalView, acct: str, raw: Any) -> dict[str, Any]:
    """Validate one order of the request body.

    Raises:
        HttpError: 400 for a malformed or unsupported order.
    """
    if not isinstance(raw, dict):
        raise HttpError(400, "each order must be a JSON object")
    if raw.get("acctId") not in (None, "", acct):
        raise HttpError(400, f"acctId {raw.get('acctId')} does not match the account {acct}")
    conid = raw.get("conid")
    if conid in (None, "") and raw.get("conidex"):
        conid = str(raw["conidex"]).split("@")[0]
    if conid in (None, ""):
        raise HttpError(400, "conid is required")
    inst = sim.instrument(conid)
    side = str(raw.get("side", "")).upper()
    if side not in ("BUY", "SELL"):
        raise HttpError(400, f"side must be BUY or SELL, got {raw.get('side')!r}")
    otype = str(raw.get("orderType", "")).upper()
    otype = _TYPE_ALIASES.get(otype, otype)
    if otype not in _ORIG:
        raise HttpError(400, f"orderType {raw.get('orderType')!r} is not supported by the "
                             f"paper simulator; use one of {', '.join(_ORIG)}")
    qty = _num(raw, "quantity")
    cash = _num(raw, "cashQty")
    if qty is None:
        if cash is None:
            raise HttpError(400, "quantity (or cashQty) is required")
        if cash <= 0 or otype not in ("MKT", "LMT"):
            raise HttpError(400, "cashQty must be positive, on a MKT or LMT order")
        qty = 0.0  # the engine sizes it from the cash at the price it trades
    elif qty <= 0:
        raise HttpError(400, f"quantity must be positive, got {qty:g}")
    tif = str(raw.get("tif") or "DAY").upper()
    if tif not in _TIFS:
        raise HttpError(400, f"tif {raw.get('tif')!r} is not supported; use one of "
                             f"{', '.join(_TIFS)}")
    price, aux = _num(raw, "price"), _num(raw, "auxPrice")
    lmt = stop = pct = trail_stop = None
    if otype in ("LMT", "LOC"):
        if price is None:
            raise HttpError(400, f"price is required for {otype} orders")
        lmt = price
    elif otype == "MIDPRICE":
        lmt = price
    elif otype == "STP":
        stop = price if price is not None else aux
        if stop is None:
            raise HttpError(400, "price (the stop price) is required for STP orders")
    elif otype == "STP LMT":
        if price is None or aux is None:
            raise HttpError(400, "STOP_LIMIT orders need price (the limit) and auxPrice "
                                 "(the stop)")
        lmt, stop = price, aux
    elif otype == "TRAIL":
        amt = _num(raw, "trailingAmt")
        kind = str(raw.get("trailingType") or "amt").lower()
        if amt is None or kind not in ("amt", "%"):
            raise HttpError(400, "TRAIL orders need trailingAmt and trailingType 'amt' or '%'")
        if kind == "%":
            pct = amt
        else:
            stop = amt
        trail_stop = price  # an optional initial stop price
    coid = raw.get("cOID")
    parent = raw.get("parentId")
    return {"inst": inst, "side": side, "type": otype, "qty": qty, "tif": tif, "lmt": lmt,
            "aux": stop, "pct": pct, "trail_stop": trail_stop,
            "coid": "" if coid is None else str(coid), "cash": cash,
            "parent_coid": "" if parent in (None, "") else str(parent),
            "outside": bool(raw.get("outsideRTH") or raw.get("outsideRth") or False)}


def _desc(p: dict) -> str:
    inst: Instrument = p["inst"]
    px = p["lmt"] if p["lmt"] is not None else p["aux"]
    tail = f"@ {px:.{inst.price_decimals}f}" if px is not None else p["type"]
    size = f"{p['qty']:g}" if p["qty"] else f"{p['cash']:g} USD of"
    return f"{p['side']} {size} {inst.key} {tail}"


def questions_for(sim: PortalView, p: dict) -> list[tuple[str, str]]:
    """The questions the gateway asks before placing ``p`` (message id, text)."""
    if not sim.questions:
        return []
    inst: Instrument = p["inst"]
    sure = "\nAre you sure you want to submit this order?"
    out = []
    if (sim.md_availability or "R")[:1].upper() == "N":
        out.append(("o354", "You are submitting an order without market data. We strongly "
                            "recommend against this as it may result in erroneous and "
                            "unexpected trades." + sure))
    q = sim.market.quote(inst.key)
    ref = p["lmt"] if p["lmt"] is not None else (p["aux"] if p["type"] == "STP" else None)
    if ref is not None and q.last > 0 and \
            abs(ref - q.last) / q.last * 100.0 > sim.price_constraint_pct:
        out.append(("o163", f'The following order "{_desc(p)}" price exceeds \nthe Percentage '
                            f"constraint of {sim.price_constraint_pct:g}%." + sure))
    if inst.sec_type == STOCK and p["qty"] > sim.size_limit:
        out.append(("o383", f'The following order "{_desc(p)}" size exceeds the Size Limit '
                            f"of {sim.size_limit:g}." + sure))
    px = p["lmt"] if p["lmt"] is not None else (q.ask if p["side"] == "BUY" else q.bid)
    value = (p["qty"] * px * sim.engine.usd_rate(inst.currency)) if p["qty"] else p["cash"]
    if value > sim.value_limit:
        out.append(("o451", f'The following order "{_desc(p)}" value estimate of '
                            f"{value:,.2f} USD exceeds \nthe Total Value Limit of "
                            f"{sim.value_limit:,.0f} USD." + sure))
    if p["type"] == "MKT":
        if inst.sec_type == CRYPTO:
            out.append(("o10288", "You are submitting a market order for a crypto currency. "
                                  "Crypto prices can move quickly and the order may fill far "
                                  "from the last price." + sure))
        else:
            out.append(("o10151", "A Market Order is an instruction to trade your order at "
                                  "any available price. The price you get may differ from "
                                  "the last price, most of all in a fast market." + sure))
            if inst.sec_type == STOCK:
                out.append(("o10153", "<h4>Confirm Mandatory Cap Price</h4>To avoid trading "
                                      "at a price that is not consistent with a fair and "
                                      "orderly market, IB may set a cap (for a buy order) or "
                                      "a floor (for a sell order)." + sure))
    if p["type"] in ("STP", "STP LMT", "TRAIL"):
        out.append(("o10331", "You are about to submit a stop order. Please be aware of the "
                              "various stop order types available and the risks associated "
                              "with each one." + sure))
    if p["cash"] is not None and not p["qty"]:
        out.append(("o10223", "<h4>Cash Quantity Order Confirmation</h4>Orders that express "
                              "size using a monetary value (cash quantity) are provided on a "
                              "non-guaranteed basis." + sure))
    return [(mid, text) for mid, text in out if mid not in sim.suppressed]


def _question(sim: PortalView, pending: Pending) -> Reply:
    mid, text = pending.questions.pop(0)
    rid = sim.new_reply_id()
    sim.replies[rid] = pending
    return Reply(200, [{"id": rid, "message": [text], "isSuppressed": False,
                        "messageIds": [mid]}])


def _duplicate(sim: PortalView, coid: str) -> bool:
    return bool(coid) and any(o.order_ref == coid for o in sim.engine.orders.values())


def _dup_reply(coid: str) -> Reply:
    return Reply(200, {"error": f"Order couldn't be submitted: Local order ID={coid} is "
                                "already registered."})


def parse_orders(sim: PortalView, acct: str, body: Any) -> list[dict[str, Any]]:
    """The orders of a ``{"orders": [...]}`` body: one order, a bracket (children name
    their parent's ``cOID`` in ``parentId``) or an OCA group (``isSingleGroup``).

    Raises:
        HttpError: 400 for a malformed body or order, or a child whose parent is not
            in the same request.
    """
    orders = body.get("orders") if isinstance(body, dict) else None
    if not isinstance(orders, list) or not orders:
        raise HttpError(400, 'the body must be {"orders": [ {...} ]}')
    parsed = [parse_order(sim, acct, raw) for raw in orders]
    coids = [p["coid"] for p in parsed]
    for p, raw in zip(parsed, orders, strict=True):
        if p["parent_coid"] and p["parent_coid"] not in coids:
            raise HttpError(400, f"parentId {p['parent_coid']} names no cOID of this request")
        p["oca"] = bool(raw.get("isSingleGroup")) and len(parsed) > 1
    if len(parsed) > 1 and not any(p["parent_coid"] or p["oca"] for p in parsed):
        raise HttpError(400, "several orders in one request must form a bracket (parentId) "
                             "or an OCA group (isSingleGroup)")
    return parsed


async def place_orders(sim: PortalView, req: Request, params: dict) -> Reply:
    acct = params["acct"]
    sim.check_account(acct)
    plist = parse_orders(sim, acct, req.json())
    for p in plist:
        if await sim.engine_call(_duplicate, sim, p["coid"]):
            return _dup_reply(p["coid"])
    if sim.exclusive_replies:
        sim.replies.clear()
    questions = list({mid: (mid, text) for p in plist
                      for mid, text in questions_for(sim, p)}.values())
    if questions:
        return _question(sim, Pending(plist, questions))
    return await _place(sim, acct, plist)


async def reply(sim: PortalView, req: Request, params: dict) -> Reply:
    body = req.json()
    pending = sim.replies.pop(params["reply_id"], None)
    if pending is None:
        raise HttpError(400, f"Reply ID {params['reply_id']} is not valid or has expired")
    if not isinstance(body, dict) or body.get("confirmed") is not True:
        return Reply(200, {"error": "The order was not confirmed and was not placed."})
    if pending.questions:
        return _question(sim, pending)
    return await _place(sim, sim.account, pending.orders)


def _sim_order(sim: PortalView, acct: str, p: dict, order_id: int) -> SimOrder:
    return SimOrder(order_id=order_id, client_id=PORTAL_CLIENT_ID, perm_id=0, account=acct,
                    inst=p["inst"], action=p["side"], quantity=p["qty"], order_type=p["type"],
                    lmt_price=p["lmt"], aux_price=p["aux"], trailing_percent=p["pct"],
                    trail_stop_price=p["trail_stop"], tif=p["tif"], order_ref=p["coid"],
                    outside_rth=p["outside"],
                    extra={"exchange": p["inst"].exchange, "portal": True, "cashQty": p["cash"]})


async def _place(sim: PortalView, acct: str, plist: list[dict]) -> Reply:
    def submit() -> tuple[list[SimOrder], str, str]:
        for p in plist:
            if _duplicate(sim, p["coid"]):
                return [], "duplicate", p["coid"]
        orders = [_sim_order(sim, acct, p, sim.next_portal_order_id()) for p in plist]
        by_coid = {o.order_ref: o for o in orders if o.order_ref}
        group = f"oca-{orders[0].order_id}" if any(p["oca"] for p in plist) else ""
        bracket = any(p["parent_coid"] for p in plist)
        for o, p in zip(orders, plist, strict=True):
            if p["parent_coid"]:
                o.parent_id = by_coid[p["parent_coid"]].order_id
            if p["oca"]:
                o.oca_group, o.oca_type = group, 1
            # A bracket goes out with its last order (so no child misses its parent).
            o.transmit = not bracket or o is orders[-1]
        events = []
        for o in orders:
            events += sim.engine.submit(o, sim.market.now())
        sim.dispatch_events(events)
        errors = [e.message for e in events if e.kind == "error" and e.code != 202]
        return orders, errors[0] if errors else "", ""

    orders, error, dup = await sim.engine_call(submit)
    if dup:
        return _dup_reply(dup)
    sim.order_count += len(orders)
    if error:
        def cancel_rest() -> None:  # one refused order sinks the request, as a whole
            for o in orders:
                sim.rejected.add(o.perm_id)
                if o.is_open:
                    sim.dispatch_events(sim.engine.cancel(o.client_id, o.order_id,
                                                          sim.market.now()))
        await sim.engine_call(cancel_rest)
        return Reply(200, {"error": error.replace("Order rejected - reason:", "")})
    out = []
    for order in orders:
        row = {"order_id": str(order.perm_id), "order_status": order.status,
               "encrypt_message": "1"}
        if order.order_ref:
            row["local_order_id"] = order.order_ref
        out.append(row)
    return Reply(200, out)


async def suppress(sim: PortalView, req: Request, params: dict) -> Reply:
    body = req.json()
    ids = body.get("messageIds") if isinstance(body, dict) else None
    if not isinstance(ids, list):
        raise HttpError(400, 'the body must be {"messageIds": [...]}')
    sim.suppressed.update(str(i) for i in ids)
    return Reply(200, {"status": "submitted"})


async def suppress_reset(sim: PortalView, req: Request, params: dict) -> Reply:
    sim.suppressed.clear()
    return Reply(200, {"status": "submitted"})


# --------------------------------------------------------------- live orders
def _stamp(t: float | None, fmt: str = "%y%m%d%H%M%S") -> str:
    return dt.datetime.fromtimestamp(t or 0.0, dt.timezone.utc).strftime(fmt)


def status_of(sim: PortalView, o: SimOrder) -> str:
    """The order's status as the gateway shows it (a refused order is Inactive)."""
    return "Inactive" if o.perm_id in sim.rejected else o.status


def order_row(sim: PortalView, o: SimOrder) -> dict:
    """One row of ``GET /iserver/account/orders``."""
    inst = o.inst
    dec = inst.price_decimals
    when = o.completed_at or o.submitted_at
    px = o.lmt_price if o.lmt_price is not None else o.aux_price
    desc = (f"{o.action.title()} {o.quantity:g} {_NICE[o.order_type]}"
            + (f" {px:.{dec}f}" if px is not None else "") + f", {o.tif}")
    status = status_of(sim, o)
    row = {"acct": sim.account, "conidex": str(inst.con_id), "conid": inst.con_id,
           "account": sim.account, "orderId": o.perm_id, "cashCcy": inst.currency,
           "sizeAndFills": f"{o.filled:g}/{o.quantity:g}", "orderDesc": desc,
           "description1": inst.key, "ticker": inst.key, "secType": inst.sec_type,
           "listingExchange": inst.primary_exchange, "remainingQuantity": float(o.remaining),
           "filledQuantity": float(o.filled), "totalSize": float(o.quantity),
           "companyName": inst.long_name, "status": status, "order_ccp_status": status,
           "origOrderType": _ORIG[o.order_type], "supportsTaxOpt": "1",
           "lastExecutionTime": _stamp(when), "orderType": _NICE[o.order_type],
           "bgColor": "#FFFFFF", "fgColor": "#000000", "isEventTrading": "0",
           "timeInForce": _TIF_SHOWN.get(o.tif, o.tif),
           "lastExecutionTime_r": int((when or 0.0) * 1000), "side": o.action,
           "outsideRTH": bool(o.outside_rth)}
    if o.order_ref:
        row["order_ref"] = o.order_ref
    parent = sim.engine.parent_of(o)
    if parent is not None:  # a bracket child names its parent, as the gateway does
        row["parentId"] = parent.perm_id
    if o.lmt_price is not None:
        row["price"] = f"{o.lmt_price:.{dec}f}"
    if o.aux_price is not None:
        row["auxPrice"] = f"{o.aux_price:.{dec}f}"
    if o.filled:
        row["avgPrice"] = f"{o.avg_fill_price:.{dec + 2}f}".rstrip("0").rstrip(".")
    return row


def _norm(status: str) -> str:
    return status.replace("_", "").replace(" ", "").lower()


async def live_orders(sim: PortalView, req: Request, params: dict) -> Reply:
    first = not sim.session.orders_polled
    sim.session.orders_polled = True
    if first and sim.orders_first_call_empty:
        return Reply(200, {"orders": [], "snapshot": False})
    wanted = {_norm(s) for s in req.query.get("filters", "").split(",") if s.strip()}

    def rows() -> list[dict]:
        out = [order_row(sim, o) for o in sim.engine.orders.values()]
        return [r for r in out if not wanted or _norm(r["status"]) in wanted]

    return Reply(200, {"orders": await sim.engine_call(rows), "snapshot": True})


def find_order(sim: PortalView, order_id: str) -> SimOrder:
    """The order whose REST id (the engine's permId) is ``order_id``.

    Raises:
        HttpError: 400 for a malformed or unknown id.
    """
    try:
        perm = int(order_id)
    except ValueError:
        raise HttpError(400, f"Invalid order id {order_id!r}") from None
    for o in sim.engine.orders.values():
        if o.perm_id == perm:
            return o
    raise HttpError(400, f"OrderID {perm} doesn't exist")


async def order_status(sim: PortalView, req: Request, params: dict) -> Reply:
    def build() -> dict:
        o = find_order(sim, params["order_id"])
        inst = o.inst
        dec = inst.price_decimals
        status = status_of(sim, o)
        out = {"sub_type": None, "request_id": str(o.perm_id % 10000), "server_id": "0",
               "order_id": o.perm_id, "conidex": str(inst.con_id), "conid": inst.con_id,
               "symbol": inst.symbol, "side": o.action[0], "contract_description_1": inst.key,
               "listing_exchange": inst.primary_exchange, "option_acct": "c",
               "company_name": inst.long_name, "size": f"{o.quantity:g}",
               "total_size": f"{o.quantity:g}", "currency": inst.currency,
               "account": sim.account, "order_type": _ORIG[o.order_type],
               "cum_fill": f"{o.filled:g}", "order_status": status,
               "order_ccp_status": status, "tif": o.tif, "fg_color": "#000000",
               "bg_color": "#FFFFFF", "order_not_editable": not o.is_open,
               "editable_fields": "", "cannot_cancel_order": not o.is_open,
               "deactivate_order": False, "sec_type": inst.sec_type,
               "available_chart_periods": "#R|1", "order_description": order_row(sim, o)[
                   "orderDesc"], "order_clearing_account": sim.account,
               "size_and_fills": f"{o.filled:g}/{o.quantity:g}",
               "remaining_quantity": f"{o.remaining:g}", "filled_quantity": f"{o.filled:g}",
               "order_time": _stamp(o.submitted_at), "order_ref": o.order_ref or None}
        if o.filled:
            out["average_price"] = f"{o.avg_fill_price:.{dec + 2}f}"
            out["last_fill_price"] = f"{o.last_fill_price:.{dec}f}"
        if o.lmt_price is not None:
            out["limit_price"] = f"{o.lmt_price:.{dec}f}"
        if o.aux_price is not None:
            out["stop_price"] = f"{o.aux_price:.{dec}f}"
        return out

    return Reply(200, await sim.engine_call(build))


async def trades(sim: PortalView, req: Request, params: dict) -> Reply:
    def build() -> list[dict]:
        out = []
        for f in sim.engine.fills:
            o, inst = f.order, f.order.inst
            dec = inst.price_decimals
            verb = "Bot" if o.action == "BUY" else "Sold"
            out.append({
                "execution_id": f.exec_id, "symbol": inst.symbol, "supports_tax_opt": "1",
                "side": o.action[0],
                "order_description": f"{verb} {f.shares:g} @ {f.price:.{dec}f} on "
                                     f"{inst.primary_exchange}",
                "trade_time": _stamp(f.time, "%Y%m%d-%H:%M:%S"),
                "trade_time_r": int(f.time * 1000), "size": float(f.shares),
                "price": f"{f.price:.{dec}f}", "order_ref": o.order_ref or None,
                "submitter": "user", "exchange": inst.primary_exchange,
                "commission": f"{f.commission:.2f}",
                "net_amount": round(f.shares * f.price, 2), "account": sim.account,
                "accountCode": sim.account, "company_name": inst.long_name,
                "contract_description_1": inst.key, "sec_type": inst.sec_type,
                "listing_exchange": inst.primary_exchange, "conid": inst.con_id,
                "conidEx": str(inst.con_id), "clearing_id": "IB", "clearing_name": "IB",
                "liquidation_trade": "0", "is_event_trading": "0", "order_id": o.perm_id})
        return out

    return Reply(200, await sim.engine_call(build))


ROUTES = [
    Route(("POST",), "/iserver/account/{acct}/orders", place_orders, iserver=True,
          preflight=True),
    Route(("POST",), "/iserver/reply/{reply_id}", reply, iserver=True, preflight=True),
    Route(("POST",), "/iserver/questions/suppress", suppress, iserver=True),
    Route(("POST",), "/iserver/questions/suppress/reset", suppress_reset, iserver=True),
    Route(("GET",), "/iserver/account/orders", live_orders, iserver=True, preflight=True),
    Route(("GET",), "/iserver/account/order/status/{order_id}", order_status, iserver=True,
          preflight=True),
    Route(("GET",), "/iserver/account/trades", trades, iserver=True, preflight=True),
]
