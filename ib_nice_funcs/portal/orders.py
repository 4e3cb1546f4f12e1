"""Orders over the Client Portal: the question/reply loop, idempotent client order ids, cancels.

``POST /iserver/account/{acct}/orders`` does not always place the order: it
may answer with a *question* ("price exceeds the percentage constraint",
"market order: confirm the cap price"...) that must be confirmed with
``POST /iserver/reply/{id}``, whose answer may be the next question. The
loop is bounded (:attr:`OrderDesk.max_confirmations`) and every question is
logged at INFO. Submissions are serialised per gateway: concurrent ones race
on reply ids (a new submission invalidates the pending questions of another).

Idempotency: each order carries a client order id (``cOID``, IB's
``orderRef``). Before sending, the live orders are searched for it, so an
order placed before (by this process, by a restart, or by the TWS side
before a failover) is returned instead of being sent again; the gateway's
own "already registered" refusal is handled the same way. A POST is never
retried: after a timeout the order may exist, and the caller asks
:meth:`OrderDesk.find` before trying again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from ..errors import RequestTimeoutError, UnknownSymbolError
from ..model import ORDER_TYPES as _VALID_ORDER_TYPES
from ..model import OrderRequest, order_result
from .http import PortalHTTPError
from .mapping import parse_number
from .order_mapping import (
    DONE_STATES,
    classify_order_answer,
    open_order_row,
    order_body,
    rows_for,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..symbols import Instrument
    from .client import PortalClient

__all__ = ["OrderDesk", "ORDER_TYPES", "result_dict"]

log = logging.getLogger("ib_nice_funcs.portal")

#: The same order types as the TWS path (one row each, in ib_nice_funcs.model).
ORDER_TYPES = frozenset(_VALID_ORDER_TYPES)
#: Statuses of an order the broker accepted and is working.
_ACCEPTED = frozenset({"Submitted", "PreSubmitted", "PendingSubmit", "PendingCancel"})
#: A live-orders answer is reused this long by find(): the endpoint allows 1 per 5 s.
_LIVE_ORDERS_TTL_S = 5.0
#: How long a market order is followed until it reports a fill.
_FILL_WAIT_S = 3.0

Confirm = Callable[[Sequence[str], Sequence[str]], bool]


def result_dict(*, success: bool, **fields: Any) -> dict[str, Any]:
    """The order result dict of the TWS trading helpers, with ``source="portal"``.

    A plain dict (a copy of the :class:`~ib_nice_funcs.model.OrderResult`): the desk
    updates it as the order's status comes in."""
    fields.setdefault("source", "portal")
    return dict(order_result(success=success, **fields))


def _success(status: str, filled: float) -> bool:
    return status == "Filled" or status in _ACCEPTED or (filled > 0 and status != "Inactive")


def _from_row(row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    status = row["status"] or "Submitted"
    ok = _success(status, row["filled_qty"])
    return result_dict(
        success=ok, order_id=row["order_id"], client_order_id=row["client_order_id"],
        status=status, filled_qty=row["filled_qty"], avg_price=row["avg_price"],
        error=None if ok else f"the order is {status} at IB", symbol=row["symbol"],
        side=row["side"], quantity=row["quantity"], order_type=row["order_type"], **extra)


class OrderDesk:
    """Places, finds and cancels orders through one :class:`PortalClient`.

    Threading contract: any thread; submissions are serialised per gateway.
    Each method blocks at most until its ``deadline`` (``time.monotonic()``).

    Args:
        client: The portal client.
        max_confirmations: Questions answered per order before giving up.
        confirm: Decides each question (``message_ids, messages -> bool``);
            None confirms every question (the risk checks run before sending).
    """

    def __init__(self, client: PortalClient, *, max_confirmations: int = 5,
                 confirm: Confirm | None = None) -> None:
        self.client = client
        self.max_confirmations = int(max_confirmations)
        self.confirm = confirm
        self._lock = threading.Lock()
        # Orders this desk placed, by cOID (a day: IB's live orders are today's).
        self._placed: TTLCache[str, dict[str, Any]] = TTLCache(10_000, 86_400.0)
        self._live: tuple[float, list[Mapping[str, Any]]] | None = None

    # -- look-ups ----------------------------------------------------------------------

    def _live_rows(self, deadline: float, fresh: bool = False) -> list[Mapping[str, Any]]:
        with self._lock:
            cached = self._live
        if not fresh and cached is not None and time.monotonic() - cached[0] < _LIVE_ORDERS_TTL_S:
            return cached[1]
        rows = self.client.live_orders(deadline)
        with self._lock:
            self._live = (time.monotonic(), rows)
        return rows

    def find(
        self, client_order_id: str, deadline: float, *, fresh: bool = False
    ) -> dict[str, Any] | None:
        """The order placed with ``client_order_id`` (from any client), or None.

        An order this desk placed is known locally and only its status is
        refreshed; otherwise the live orders are searched. That endpoint
        allows one request per 5 s, so an answer younger than 5 s is reused
        unless ``fresh`` (the gateway's own duplicate-cOID refusal covers the
        gap). Blocks until ``deadline``.

        Returns:
            The order result dict (``existing=True``; ``success`` says whether
            it is working or filled), or None when no order carries that id today.

        Raises:
            ConnectionFailedError, RequestTimeoutError, SourceUnavailableError.
        """
        with self._lock:
            known = self._placed.get(client_order_id)
        if known is not None and known.get("order_id") is not None:
            result = {**known, "existing": True}
            got = self.status(known["order_id"], deadline)
            if got is not None and got["status"]:
                ok = _success(got["status"], got["filled_qty"])
                result.update(status=got["status"], filled_qty=got["filled_qty"],
                              avg_price=got["avg_price"] or result.get("avg_price"), success=ok,
                              error=None if ok else f"the order is {got['status']} at IB")
            return result
        matches = rows_for(self._live_rows(deadline, fresh), client_order_id)
        if not matches:
            return None
        result = _from_row(matches[-1], existing=True)
        with self._lock:
            self._placed[client_order_id] = result
        return result

    def open_orders(self, deadline: float) -> list[dict[str, Any]]:
        """Working orders on the account (any client), as open-order dicts.

        Raises:
            ConnectionFailedError, RequestTimeoutError, SourceUnavailableError.
        """
        rows = [open_order_row(r) for r in self._live_rows(deadline, fresh=True)]
        return [r for r in rows if r["status"] not in DONE_STATES]

    def status(self, order_id: int | str, deadline: float) -> dict[str, Any] | None:
        """``GET /iserver/account/order/status/{id}`` as ``{status, filled_qty, avg_price}``.

        Returns None when the gateway does not serve that endpoint or the id
        (the caller keeps what it knew).
        """
        try:
            body = self.client.session.call(
                "GET", f"/iserver/account/order/status/{order_id}", deadline=deadline,
                what=f"status of order {order_id}", translate=False)
        except (PortalHTTPError, RequestTimeoutError) as exc:
            log.debug("order status of %s unavailable: %s", order_id, exc)
            return None
        if not isinstance(body, Mapping):
            return None
        return {"status": str(body.get("order_status") or body.get("status") or ""),
                "filled_qty": parse_number(body.get("cum_fill")) or 0.0,
                "avg_price": parse_number(body.get("average_price")) or None}

    # -- placing -----------------------------------------------------------------------

    def place(
        self,
        instrument: Instrument,
        side: str,
        quantity: float,
        order_type: str = "MKT",
        *,
        deadline: float,
        limit_price: float | None = None,
        stop_price: float | None = None,
        trail_percent: float | None = None,
        trail_amount: float | None = None,
        tif: str = "DAY",
        client_order_id: str | None = None,
        check_existing: bool = True,
    ) -> dict[str, Any]:
        """Place one order given as loose fields (see :meth:`place_request`).

        Raises:
            Like :meth:`place_request`.
        """
        request = OrderRequest(
            symbol=instrument.symbol, side=str(side).strip().upper(), quantity=quantity,
            order_type=str(order_type).strip().upper(), limit_price=limit_price,
            stop_price=stop_price, trail_percent=trail_percent, trail_amount=trail_amount,
            tif=tif, client_order_id=client_order_id or "")
        return self.place_request(instrument, request, quantity, deadline=deadline,
                                  check_existing=check_existing)

    def place_request(self, instrument: Instrument, request: OrderRequest, quantity: float, *,
                      deadline: float, check_existing: bool = True) -> dict[str, Any]:
        """Place ``request`` for ``quantity`` units, confirming the gateway's questions;
        never sends a cOID twice.

        ``request`` is the trading layer's validated order as it is (its
        prices already on the contract's grid), or one :meth:`place` built.

        Blocks until the gateway placed or refused it, at most until
        ``deadline``; a market order is then followed for up to 3 s (within
        the deadline) until it reports its fill.

        Returns:
            The result dict: ``success, order_id, client_order_id, status,
            filled_qty, avg_price, error`` (+ ``code, symbol, side, quantity,
            order_type, source, questions``). A refusal or a declined question
            is ``success=False`` with ``error``; an order that already
            existed is returned with ``existing=True``.

        Raises:
            ValueError: bad side, quantity, order type or missing price (nothing sent).
            UnknownSymbolError: no such contract (nothing sent).
            RequestTimeoutError: no answer in time; the order may exist, so ask
                :meth:`find` with the client order id before trying again.
            ConnectionFailedError, SourceUnavailableError: the gateway failed
                or is backing off after a 429 (nothing sent).
        """
        side, kind = request.side, request.order_type
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side={side!r} must be BUY or SELL")
        if kind not in ORDER_TYPES:
            raise ValueError(f"order_type={kind!r}; valid: {', '.join(sorted(ORDER_TYPES))}")
        if isinstance(quantity, bool) or not isinstance(quantity, (int, float)) or not quantity > 0:
            raise ValueError(f"quantity={quantity!r} must be a positive number")
        coid = request.client_order_id or f"nf-{uuid.uuid4().hex[:20]}"
        facts = {"symbol": instrument.symbol, "side": side, "quantity": float(quantity),
                 "order_type": kind, "client_order_id": coid}
        order_lock = self.client.http.guards.order_lock
        if not order_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise RequestTimeoutError(f"place order {coid}: another order submission to this "
                                      "gateway held the line until the timeout; nothing was sent")
        try:
            if check_existing:
                existing = self.find(coid, deadline)
                if existing is not None:
                    log.info("order %s already exists at IB (status %s); not sending it again",
                             coid, existing["status"])
                    return existing
            conid = self.client.conid(instrument, deadline)
            if conid is None:
                raise UnknownSymbolError(f"place order {coid}: the Client Portal knows no "
                                         f"contract for {instrument.symbol!r}; nothing was sent")
            account = self.client.account(deadline)
            body = order_body(conid=conid, account=account, side=side, quantity=quantity,
                              order_type=kind, tif=request.tif, client_order_id=coid,
                              limit_price=request.limit_price, stop_price=request.stop_price,
                              trail_percent=request.trail_percent,
                              trail_amount=request.trail_amount)
            result = self._submit(body, coid, facts, deadline)
        finally:
            order_lock.release()
        if result["success"] and result["order_id"] is not None:
            result = self._follow(result, kind, request.tif, deadline)
        if result.get("order_id") is not None:
            with self._lock:
                # find() now answers from here: the cached live orders predate this order.
                self._placed[coid] = result
        return result

    def _post(self, path: Any, payload: Any, deadline: float, what: str, coid: str) -> Any:
        """POST an order or a reply, once; an HTTP refusal is returned as the answer."""
        try:
            return self.client.session.call("POST", path, json=payload, deadline=deadline,
                                            what=what, translate=False)
        except PortalHTTPError as exc:
            if exc.status == 401 or exc.status in (502, 503, 504):
                raise self.client.session.translate(exc) from None
            return exc.payload if isinstance(exc.payload, (dict, list)) else {"error": exc.text}
        except RequestTimeoutError as exc:
            raise RequestTimeoutError(
                f"{exc}. The order may have reached IB: call find_order({coid!r}) before "
                "sending it again") from None

    def _submit(self, body: dict[str, Any], coid: str, facts: dict[str, Any],
                deadline: float) -> dict[str, Any]:
        what = f"place order {coid} ({facts['side']} {facts['quantity']:g} {facts['symbol']} " \
               f"{facts['order_type']})"
        answer = classify_order_answer(self._post(
            lambda acct: f"/iserver/account/{acct}/orders", body, deadline, what, coid))
        asked: list[str] = []
        confirmations = 0
        while answer.kind == "question" and confirmations < self.max_confirmations:
            confirmations += 1
            asked.extend(answer.message_ids or answer.messages[:1])
            text = " | ".join(m.replace("\n", " ") for m in answer.messages)
            ok = self.confirm(answer.message_ids, answer.messages) if self.confirm else True
            log.info("order %s: the gateway asks %s: %s -> %s", coid,
                     ",".join(answer.message_ids) or "a question", text[:300],
                     "confirmed" if ok else "declined")
            answer = classify_order_answer(self._post(
                f"/iserver/reply/{answer.reply_id}", {"confirmed": bool(ok)}, deadline, what,
                coid))
            if not ok:
                return result_dict(success=False, status="Cancelled", questions=asked,
                                   error=f"declined the gateway's question ({text[:200]})",
                                   **facts)
        if answer.kind == "question":
            return result_dict(
                success=False, status="NotPlaced", questions=asked,
                error=f"the gateway asked more than {self.max_confirmations} questions; the "
                      "order was not placed", **facts)
        if answer.kind == "placed":
            status = answer.status or "Submitted"
            ended = status in DONE_STATES and status != "Filled"
            return result_dict(success=not ended, order_id=answer.order_id, status=status,
                               questions=asked,
                               error=f"the order ended {status} at IB" if ended else None,
                               **facts)
        error = "; ".join(answer.messages) or "refused"
        if "already registered" in error.lower() or "duplicate" in error.lower():
            existing = self.find(coid, deadline, fresh=True)
            if existing is not None:
                log.info("order %s was already registered at IB; returning it", coid)
                return existing
            return result_dict(success=False, status="Duplicate", questions=asked,
                               error=f"IB already has an order with client order id {coid} "
                                     f"({error}); call find_order({coid!r}) for it", **facts)
        return result_dict(success=False, status="Rejected", questions=asked,
                           error=f"the Client Portal rejected the order: {error}", **facts)

    def _follow(self, result: dict[str, Any], kind: str, tif: str,
                deadline: float) -> dict[str, Any]:
        """Refresh a new order's status; follow a market/IOC order until it fills."""
        immediate = kind == "MKT" or tif.upper() in ("IOC", "FOK")
        until = min(deadline, time.monotonic() + (_FILL_WAIT_S if immediate else 0.0))
        pause = 0.05
        while True:
            got = self.status(result["order_id"], deadline)
            if got is None:
                return result
            if got["status"]:
                result = {**result, "status": got["status"], "filled_qty": got["filled_qty"],
                          "avg_price": got["avg_price"] or result["avg_price"]}
                ok = _success(got["status"], got["filled_qty"])
                result["success"] = ok
                result["error"] = None if ok else f"the order ended {got['status']} at IB"
            if not immediate or result["status"] in DONE_STATES:
                return result
            if time.monotonic() + pause >= until:
                return result
            time.sleep(pause)  # a paper fill takes a moment; the rate limit spaces us anyway
            pause = min(0.5, pause * 2)

    # -- cancelling ------------------------------------------------------------------------

    def cancel(self, order_id: int | str, deadline: float) -> dict[str, Any]:
        """Cancel one order by IB order id (int) or client order id (str).

        Blocks until the gateway confirmed (up to 3 s of following the order's
        status, within ``deadline``).

        Returns:
            A result dict: ``success`` True when the order ended cancelled;
            False with ``error`` when unknown, already done or filled first.

        Raises:
            ConnectionFailedError, RequestTimeoutError, SourceUnavailableError.
        """
        coid = None
        if isinstance(order_id, str) and not order_id.strip().isdigit():
            coid = order_id.strip()
            # A stale miss only means "not found" (nothing is placed), so a live-orders
            # answer younger than 5 s will do.
            found = self.find(coid, deadline)
            if found is None or found.get("order_id") is None:
                return result_dict(success=False, client_order_id=coid, status="NotFound",
                                   error=f"no order with client order id {coid!r} today")
            order_id = found["order_id"]
        what = f"cancel order {order_id}"
        try:
            body = self.client.session.call(
                "DELETE", lambda acct: f"/iserver/account/{acct}/order/{order_id}",
                deadline=deadline, what=what, translate=False)
        except PortalHTTPError as exc:
            if exc.status == 401 or exc.status >= 500:
                raise self.client.session.translate(exc) from None
            body = exc.payload if isinstance(exc.payload, dict) else {"error": exc.text}
        with self._lock:
            self._live = None
        if isinstance(body, Mapping) and body.get("error"):
            return result_dict(success=False, order_id=order_id, client_order_id=coid,
                               status="NotCancelled", error=str(body["error"]))
        result = result_dict(success=True, order_id=order_id, client_order_id=coid,
                             status="PendingCancel")
        until = min(deadline, time.monotonic() + _FILL_WAIT_S)
        pause = 0.05
        while True:
            got = self.status(order_id, deadline)
            if got is None:
                return result  # no status endpoint: the gateway's acknowledgement is all we have
            status = got["status"]
            result.update(status=status or result["status"], filled_qty=got["filled_qty"],
                          avg_price=got["avg_price"])
            if status in ("Cancelled", "ApiCancelled"):
                return {**result, "success": True, "error": None}
            if status in DONE_STATES:
                note = "it filled before the cancel arrived" if status == "Filled" else \
                    f"the order is {status}"
                return {**result, "success": False, "error": note}
            if time.monotonic() + pause >= until:
                return {**result, "success": False,
                        "error": f"IB has not confirmed the cancel yet (status {status})"}
            time.sleep(pause)
            pause = min(0.5, pause * 2)
