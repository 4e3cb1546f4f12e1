"""I/O-free mapping of orders between this package and the Client Portal's JSON.

Order arguments -> the CP order body (the price fields from the order
type's row in :data:`ib_nice_funcs.model.ORDER_SPECS`); order and reply answers -> "placed /
question / error"; live-order rows -> this package's open-order dicts. Like
:mod:`ib_nice_funcs.portal.mapping`, every reader tolerates ids as strings
or ints, missing fields and extra fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..model import DONE_STATES, ORDER_TYPE_ALIASES, portal_body_fields, spec_of
from .mapping import as_conid, canonical_symbol, parse_number

__all__ = [
    "DONE_STATES",
    "OrderAnswer",
    "classify_order_answer",
    "live_orders_rows",
    "open_order_row",
    "order_body",
    "rows_for",
]



def order_body(
    *,
    conid: int,
    account: str,
    side: str,
    quantity: float,
    order_type: str,
    tif: str,
    client_order_id: str,
    limit_price: float | None = None,
    stop_price: float | None = None,
    trail_percent: float | None = None,
    trail_amount: float | None = None,
    outside_rth: bool = False,
) -> dict[str, Any]:
    """The body of ``POST /iserver/account/{acct}/orders`` for one order.

    The price fields follow the type's row in
    :data:`ib_nice_funcs.model.ORDER_SPECS`: MKT/MOC: no price. LMT/LOC:
    ``price``. STP: the stop in ``price`` (the CP convention) and
    ``auxPrice``. STP LMT (CP ``STOP_LIMIT``): the limit in ``price``, the
    stop in ``auxPrice``. TRAIL: ``trailingAmt`` with ``trailingType``
    ``"%"`` or ``"amt"``, an initial stop in ``price``. MIDPRICE: an
    optional cap in ``price``.

    Raises:
        ValueError: a required price is missing for the order type.
    """
    kind = order_type.upper()
    order: dict[str, Any] = {
        "acctId": account,
        "conid": int(conid),
        "side": side.upper(),
        "quantity": float(quantity),
        "orderType": spec_of(kind).portal_type,
        "tif": tif.upper(),
        "cOID": client_order_id,
        "outsideRTH": bool(outside_rth),
    }
    order.update(portal_body_fields(kind, {
        "limit_price": limit_price, "stop_price": stop_price,
        "trail_percent": trail_percent, "trail_amount": trail_amount}))
    return {"orders": [order]}


@dataclass(frozen=True)
class OrderAnswer:
    """What an order (or reply) POST answered.

    Attributes:
        kind: ``"placed"``, ``"question"`` or ``"error"``.
        order_id: The new order's id (placed).
        status: ``order_status`` (placed).
        reply_id: The id to confirm (question).
        messages: The question's text, or the error.
        message_ids: The question's ids (``o163``...), if given.
    """

    kind: str
    order_id: int | str | None = None
    status: str = ""
    reply_id: str | None = None
    messages: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()


def _texts(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if v not in (None, ""))
    return (str(value),)


def _order_id(value: Any) -> int | str | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def classify_order_answer(payload: Any) -> OrderAnswer:
    """Classify the answer of an order POST or a ``/iserver/reply/{id}`` POST.

    ``[{order_id, order_status}]`` is placed; ``[{id, message[], messageIds[]}]``
    is a question to confirm; ``{"error": ...}`` (or anything else) an error.
    """
    first = payload[0] if isinstance(payload, list) and payload else payload
    if isinstance(payload, Mapping) and payload.get("error") and not payload.get("order_id"):
        return OrderAnswer("error", messages=_texts(payload.get("error")))
    if not isinstance(first, Mapping):
        return OrderAnswer("error", messages=(f"unexpected answer: {str(payload)[:200]}",))
    if first.get("error") and not first.get("order_id"):
        return OrderAnswer("error", messages=_texts(first.get("error")))
    if first.get("order_id") not in (None, ""):
        return OrderAnswer("placed", order_id=_order_id(first.get("order_id")),
                           status=str(first.get("order_status") or "Submitted"))
    if first.get("id") not in (None, "") and (first.get("message") or first.get("messageIds")):
        return OrderAnswer("question", reply_id=str(first["id"]),
                           messages=_texts(first.get("message")),
                           message_ids=_texts(first.get("messageIds")))
    return OrderAnswer("error", messages=(f"unexpected answer: {str(payload)[:200]}",))


def _side(value: Any) -> str | None:
    text = str(value or "").strip().upper()
    return {"B": "BUY", "BOT": "BUY", "S": "SELL", "SLD": "SELL"}.get(text, text or None)


def open_order_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One ``GET /iserver/account/orders`` row -> this package's open-order dict.

    Keys as the TWS ``get_open_orders`` rows: ``order_id, perm_id, client_id,
    client_order_id, symbol, side, quantity, order_type, limit_price,
    stop_price, trail_percent, tif, status, filled_qty, remaining, account``,
    plus ``avg_price``, ``con_id`` and ``source`` ("portal").
    """
    filled = parse_number(row.get("filledQuantity")) or 0.0
    remaining = parse_number(row.get("remainingQuantity"))
    total = parse_number(row.get("totalSize"))
    if total is None:
        total = filled + (remaining or 0.0)
    if remaining is None:
        remaining = max(0.0, total - filled)
    kind = str(row.get("orderType") or row.get("origOrderType") or "").upper()
    kind = ORDER_TYPE_ALIASES.get(kind, kind)
    price = parse_number(row.get("price"))
    aux = parse_number(row.get("auxPrice")) or parse_number(row.get("stop_price"))
    ref = row.get("order_ref") or row.get("cOID") or row.get("orderRef")
    return {
        "order_id": _order_id(row.get("orderId") if "orderId" in row else row.get("order_id")),
        "perm_id": None,
        "client_id": None,
        "client_order_id": str(ref) if ref else None,
        "symbol": canonical_symbol(row.get("ticker") or row.get("symbol") or "",
                                   row.get("secType"), row.get("cashCcy")) or None,
        "side": _side(row.get("side")),
        "quantity": float(total),
        "order_type": kind or None,
        "limit_price": price if kind in ("LMT", "LOC", "MIDPRICE", "STP LMT") else None,
        "stop_price": aux if kind == "STP LMT" else (aux or price) if kind == "STP" else None,
        "trail_percent": None,
        "tif": str(row.get("timeInForce") or row.get("tif") or "") or None,
        "status": str(row.get("status") or row.get("order_status") or ""),
        "filled_qty": float(filled),
        "remaining": float(remaining),
        "account": str(row.get("acct") or row.get("account") or "") or None,
        "avg_price": parse_number(row.get("avgPrice")) or None,
        "con_id": as_conid(row.get("conid")),
        "source": "portal",
    }


def live_orders_rows(payload: Any) -> list[Mapping[str, Any]]:
    """The order rows of ``GET /iserver/account/orders`` (``{"orders": [...]}`` or a list)."""
    rows = payload.get("orders") if isinstance(payload, Mapping) else payload
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def rows_for(rows: Iterable[Mapping[str, Any]], client_order_id: str) -> list[dict[str, Any]]:
    """Open-order dicts of the rows carrying ``client_order_id``."""
    out = [open_order_row(r) for r in rows]
    return [r for r in out if r["client_order_id"] == client_order_id]
