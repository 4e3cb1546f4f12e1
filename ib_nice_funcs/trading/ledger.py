"""OrderLedger: what a Trader sent, by client order id, across reconnects.

The client order id travels to IB as the order's ``orderRef``. Before an
order is sent, :meth:`OrderLedger.existing` looks for that id in this ledger,
in ib_async's session state, and (for ids the caller chose, ids sent on an
earlier connection, and orders IB never acknowledged) in the gateway's open
orders, executions and completed orders, so the same id never produces a
second order: not after a reconnect, not after a lost acknowledgement, not
after the agent's process restarts with the same client id. Loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .contracts import position_symbol
from .results import (
    DONE_STATES,
    completed_result,
    effective_status,
    fills_result,
    trade_result,
)

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Fill, Trade

    from ..model import OrderResult

__all__ = ["OrderLedger", "SentOrder", "trade_by_ref"]

log = logging.getLogger("ib_nice_funcs")

#: Ceiling for the executions round trip.
_EXECUTIONS_TIMEOUT_S = 10.0
#: Local statuses that only say a request is in flight, not what IB did with it.
_UNCONFIRMED = frozenset({"PendingSubmit", "PendingCancel", "ApiPending"})


@dataclass
class SentOrder:
    """What the ledger knows about one client order id."""

    client_order_id: str
    symbol: str
    trade: Any = None
    ib: Any = None
    last: OrderResult | None = None
    sent_at: float = field(default_factory=time.monotonic)


def trade_by_ref(ib: IB, client_order_id: str) -> Trade | None:
    """The trade with this orderRef in ib_async's state (a working one first)."""
    found = [t for t in ib.trades() if t.order.orderRef == client_order_id]
    if not found:
        return None
    working = [t for t in found if effective_status(t) not in DONE_STATES]
    return (working or found)[-1]


class OrderLedger:
    """Client order id -> :class:`SentOrder`, plus one lock per id."""

    def __init__(self) -> None:
        self._records: dict[str, SentOrder] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __contains__(self, client_order_id: object) -> bool:
        return client_order_id in self._records

    def __getitem__(self, client_order_id: str) -> SentOrder:
        return self._records[client_order_id]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[SentOrder]:
        return iter(list(self._records.values()))

    def lock(self, client_order_id: str) -> asyncio.Lock:
        """The lock that serialises check-then-send for one id."""
        return self._locks.setdefault(client_order_id, asyncio.Lock())

    def remember(
        self, client_order_id: str, symbol: str, trade: Trade | None, ib: IB,
        result: OrderResult | None,
    ) -> None:
        """Record (or update) what is known about ``client_order_id``."""
        record = self._records.get(client_order_id)
        if record is None:
            record = self._records[client_order_id] = SentOrder(client_order_id, symbol)
        if trade is not None:
            record.trade, record.ib = trade, ib
        if result is not None:
            record.last = result.copy()

    async def existing(
        self,
        ib: IB,
        client_order_id: str,
        thorough: bool,
        open_trades: Callable[[], Awaitable[list[Trade]]],
        completed_trades: Callable[[], Awaitable[list[Trade]]],
    ) -> Trade | OrderResult | None:
        """An order already placed with this id: its live trade, a result dict, or None.

        Args:
            ib: The connected session.
            client_order_id: The id (IB ``orderRef``).
            thorough: Also ask the gateway (open orders of every client,
                executions, completed orders); done for ids the caller chose.
                Ids this ledger sent on an earlier connection, or sent on this
                one and never acknowledged, are always checked thoroughly.
            open_trades: Coroutine function listing the gateway's open orders.
            completed_trades: Coroutine function listing its completed orders.
        """
        record = self._records.get(client_order_id)
        if record is not None and record.ib is ib and record.trade is not None:
            if effective_status(record.trade) not in _UNCONFIRMED:
                return record.trade
            # Sent (or cancelled) on this connection and never confirmed, e.g. the ack
            # was lost: the gateway's lists tell whether it is working, done or unknown.
            found = await self._at_gateway(ib, client_order_id, record.symbol, open_trades,
                                           completed_trades)
            if found is None:
                log.warning(
                    "order %s (%s) was sent but never confirmed, and the gateway reports no "
                    "open, completed or executed order with that id: it never arrived; "
                    "sending it now", client_order_id, record.symbol)
            return found
        trade = trade_by_ref(ib, client_order_id)
        if trade is not None:
            return trade
        fills = [f for f in ib.fills() if f.execution.orderRef == client_order_id]
        if fills:
            symbol = record.symbol if record is not None else position_symbol(fills[0].contract)
            return fills_result(fills, client_order_id, symbol)
        if thorough or record is not None:
            found = await self._at_gateway(
                ib, client_order_id, record.symbol if record is not None else None, open_trades,
                completed_trades)
            if found is not None:
                return found
        last = record.last if record is not None else None
        if last is not None and last.get("status") in DONE_STATES:
            return last.copy()
        if record is not None:
            log.warning(
                "order %s (%s) was sent before the connection dropped, but the gateway reports "
                "no open order and no execution for it: it never arrived; sending it now",
                client_order_id, record.symbol,
            )
        return None

    @staticmethod
    async def _at_gateway(
        ib: IB,
        client_order_id: str,
        symbol: str | None,
        open_trades: Callable[[], Awaitable[list[Trade]]],
        completed_trades: Callable[[], Awaitable[list[Trade]]],
    ) -> Trade | OrderResult | None:
        """The order with this orderRef as the gateway lists it, or None when it lists none.

        Open orders first (their answer also refreshes this client's own trade
        with IB's status), then completed orders and executions.
        """
        for open_trade in await open_trades():
            if open_trade.order.orderRef == client_order_id:
                return open_trade
        executions: list[Fill] = await asyncio.wait_for(
            ib.reqExecutionsAsync(), _EXECUTIONS_TIMEOUT_S
        )
        fills = [f for f in executions if f.execution.orderRef == client_order_id]
        done = [t for t in await completed_trades() if t.order.orderRef == client_order_id]
        if done:
            trade = done[-1]
            return completed_result(trade, fills, symbol or position_symbol(trade.contract))
        if fills:
            return fills_result(fills, client_order_id,
                                symbol or position_symbol(fills[0].contract))
        return None

    def reattach(self, ib: IB) -> int:
        """After a (re)connect: point records at the new session's trades; returns how many.

        ib_async loads this client's open and completed orders and the day's
        executions while connecting, so no round trip is needed; ids still
        unknown are checked with the gateway on their next use.
        """
        matched = 0
        for record in self._records.values():
            if record.ib is ib:
                continue
            trade = trade_by_ref(ib, record.client_order_id)
            if trade is not None:
                record.trade, record.ib = trade, ib
                record.last = trade_result(trade, record.symbol)
                matched += 1
        return matched
