"""Order changes of the Client Portal simulator: modify, cancel (one or all), what-if.

- ``POST /iserver/account/{acct}/order/{id}`` modifies an open order. The
  body is one order object, as for placing; fields it leaves out keep the
  order's values. Answer: ``[{"order_id", "order_status", "encrypt_message"}]``.
- ``DELETE /iserver/account/{acct}/order/{id}`` cancels one order; id ``-1``
  cancels every open order of the account (``{"msg": "Request was
  submitted", "order_id": -1, ...}``).
- ``POST /iserver/account/{acct}/orders/whatif`` previews an order: the
  amount, commission, and equity/margin/position before, change and after,
  with ``error`` set to the reason the order would be refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._order_rules import size_from_cash, validate
from ._portal_http import HttpError, Reply, Request, Route
from ._portal_orders import find_order, parse_order, parse_orders, status_of
from .matching import SimOrder

if TYPE_CHECKING:
    from .portal import PortalSimulator


def _as_raw(o: SimOrder) -> dict[str, Any]:
    """An open order as the order object that would place it (the base of a modify)."""
    otype = {"STP LMT": "STOP_LIMIT"}.get(o.order_type, o.order_type)
    raw: dict[str, Any] = {"conid": o.inst.con_id, "side": o.action, "orderType": otype,
                           "quantity": o.quantity, "tif": o.tif, "outsideRTH": o.outside_rth}
    if o.order_type == "STP LMT":
        raw.update(price=o.lmt_price, auxPrice=o.aux_price)
    elif o.order_type == "TRAIL":
        pct = o.trailing_percent is not None
        raw.update(trailingType="%" if pct else "amt",
                   trailingAmt=o.trailing_percent if pct else o.aux_price)
    else:
        raw["price"] = o.lmt_price if o.lmt_price is not None else o.aux_price
    return raw


async def modify(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    acct = params["acct"]
    sim.check_account(acct)
    body = req.json()
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be one order object")

    def do() -> Reply:
        old = find_order(sim, params["order_id"])
        if not old.is_open:
            return Reply(200, {"error": f"OrderID {old.perm_id} is not active (status "
                                        f"{status_of(sim, old)}) and cannot be modified"})
        merged = {**_as_raw(old), **{k: v for k, v in body.items() if v is not None}}
        p = parse_order(sim, acct, merged)
        if p["inst"] is not old.inst or p["side"] != old.action or p["type"] != old.order_type:
            raise HttpError(400, "a modify may change price, quantity, tif and outsideRTH; "
                                 "conid, side and orderType must stay")
        new = SimOrder(order_id=old.order_id, client_id=old.client_id, perm_id=old.perm_id,
                       account=acct, inst=old.inst, action=old.action, quantity=p["qty"],
                       order_type=old.order_type, lmt_price=p["lmt"], aux_price=p["aux"],
                       trailing_percent=p["pct"], trail_stop_price=old.trail_stop_price,
                       tif=p["tif"], order_ref=old.order_ref, outside_rth=p["outside"],
                       oca_group=old.oca_group)
        events = sim.engine.submit(new, sim.market.now())
        sim.dispatch_events(events)
        errors = [e.message for e in events if e.kind == "error"]
        if errors:
            return Reply(200, {"error": errors[0].replace("Order rejected - reason:", "")})
        return Reply(200, [{"order_id": str(old.perm_id), "order_status": old.status,
                            "encrypt_message": "1"}])

    return await sim.engine_call(do)


async def cancel(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.check_account(params["acct"])

    def do() -> Reply:
        if params["order_id"].strip() == "-1":
            sim.dispatch_events(sim.engine.cancel_all(sim.market.now()))
            return Reply(200, {"msg": "Request was submitted", "order_id": -1, "conid": -1,
                               "account": sim.account})
        o = find_order(sim, params["order_id"])
        if not o.is_open:
            return Reply(200, {"error": f"OrderID {o.perm_id} is not active (status "
                                        f"{status_of(sim, o)}) and cannot be cancelled"})
        sim.dispatch_events(sim.engine.cancel(o.client_id, o.order_id, sim.market.now()))
        return Reply(200, {"msg": "Request was submitted", "order_id": o.perm_id,
                           "conid": o.inst.con_id, "account": sim.account})

    return await sim.engine_call(do)


def _money(x: float) -> str:
    return f"{x:,.2f}"


async def whatif(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    acct = params["acct"]
    sim.check_account(acct)
    p = parse_orders(sim, acct, req.json())[0]

    def preview() -> dict:
        now = sim.market.now()
        order = SimOrder(order_id=0, client_id=-2, perm_id=0, account=acct, inst=p["inst"],
                         action=p["side"], quantity=p["qty"], order_type=p["type"],
                         lmt_price=p["lmt"], aux_price=p["aux"], trailing_percent=p["pct"],
                         tif=p["tif"], extra={"cashQty": p["cash"]})
        if not order.quantity and p["cash"]:
            order.quantity = size_from_cash(sim.engine, order, now)
        problem = validate(sim.engine, order, now)
        q = sim.market.quote(order.inst.key, now)
        px = p["lmt"] if p["lmt"] is not None else (q.ask if order.action == "BUY" else q.bid)
        rate = sim.engine.usd_rate(order.inst.currency, now)
        amount = order.quantity * px * rate
        comm = sim.engine.commission(order.inst, order.quantity, px, now) if order.quantity \
            else 0.0
        values = sim.engine.values(now)
        held = sim.engine.position_quantity(order.inst)
        after = held + order.quantity * order.sign
        margin_change = 0.25 * (abs(after) - abs(held)) * q.last * rate
        equity = values["EquityWithLoanValue"]

        def row(current: float, change: float) -> dict:
            return {"current": _money(current), "change": _money(change),
                    "after": _money(current + change)}

        return {"amount": {"amount": f"{_money(amount)} USD ({order.quantity:g} Shares)",
                           "commission": f"{comm:.2f} USD",
                           "total": f"{_money(amount + comm)} USD"},
                "equity": row(equity, -comm),
                "initial": row(values["InitMarginReq"], margin_change),
                "maintenance": row(values["MaintMarginReq"], margin_change),
                "position": {"current": f"{held:g}", "change": f"{order.quantity * order.sign:g}",
                             "after": f"{after:g}"},
                "warn": None, "error": problem or None}

    return Reply(200, await sim.engine_call(preview))


ROUTES = [
    Route(("POST",), "/iserver/account/{acct}/orders/whatif", whatif, iserver=True,
          preflight=True),
    Route(("POST",), "/iserver/account/{acct}/order/{order_id}", modify, iserver=True,
          preflight=True),
    Route(("DELETE",), "/iserver/account/{acct}/order/{order_id}", cancel, iserver=True,
          preflight=True),
]
