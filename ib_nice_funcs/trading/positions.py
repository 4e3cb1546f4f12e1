"""PositionDesk: positions, account values and reconciliation.

Data calls are never blocked by the live-account guard. The router asks
TWS / IB Gateway, and with ``order_failover`` on the Client Portal while TWS
is unreachable (rows then carry ``source`` "portal"). The dicts are shaped
by the pure helpers of :mod:`.position_rows` (re-exported here).

Every helper is a coroutine ``*_async`` for the loop thread plus a blocking
one-liner over it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from ..errors import IBNiceFuncsError
from ..symbols import Instrument, parse_symbol
from .contracts import finite, holds, is_instrument, multiplier_of, position_symbol
from .desk import Desk
from .position_rows import (
    PERP_KEYS,
    Unknown,
    agent_book,
    diff_positions,
    no_position,
    perp_keys,
    position_dict,
    unknown_position,
    with_perp_keys,
)

__all__ = [
    "PERP_KEYS",
    "PositionDesk",
    "Unknown",
    "diff_positions",
    "no_position",
    "perp_keys",
    "position_dict",
    "unknown_position",
    "with_perp_keys",
]

log = logging.getLogger("ib_nice_funcs")


class PositionDesk(Desk):
    """``get_position``, ``get_all_positions``, account values and reconciliation."""

    async def _rows(self, deadline: float, instrument: Instrument | None = None,
                    priced: bool = True) -> list[dict[str, Any]]:
        """Non-zero positions as nice_funcs dicts (only ``instrument``'s when given).

        A TWS position IB sent no mark for is priced afresh (any source; at
        cost when none answers); ``priced`` False skips that (quantities only).
        """
        holdings = await self.router.holdings(deadline)
        rows: list[dict[str, Any]] = []
        for held in holdings:
            if isinstance(held, dict):  # the Client Portal's row
                if held["quantity"] and (instrument is None or is_instrument(
                        instrument, held.get("con_id"), held.get("symbol"))):
                    rows.append(with_perp_keys(held))
                continue
            pos, mark = held
            if instrument is not None and not holds(instrument, pos.contract):
                continue
            rows.append(await self._as_dict(pos, mark, deadline) if priced else
                        {"symbol": position_symbol(pos.contract),
                         "quantity": float(pos.position)})
        return rows

    async def _as_dict(self, pos: Any, mark: float | None, deadline: float) -> dict[str, Any]:
        contract = pos.contract
        mult = multiplier_of(contract)
        symbol = position_symbol(contract)
        avg = (finite(pos.avgCost) or 0.0) / mult
        price = mark
        if price is None:
            try:
                price = await self.ctx.price(symbol, max(deadline, time.monotonic() + 0.5))
            except (IBNiceFuncsError, ValueError, TypeError) as exc:
                log.debug("no price for %s (%s); valuing it at cost", symbol, exc)
                price = avg
        return position_dict(
            symbol, float(pos.position), avg, float(price), mult,
            currency=contract.currency or "USD", con_id=contract.conId, sec_type=contract.secType,
        )

    async def _account_number(self, tags: tuple[str, ...], timeout: float | None) -> float:
        value = await self.router.account_number(tags, self.ctx.deadline(timeout))
        if value is None:
            raise IBNiceFuncsError(
                f"IB reported no {tags[0]} for the account; check that TWS / IB Gateway is "
                "logged in and the account is set (IB_ACCOUNT)"
            )
        return value

    # -- coroutines --------------------------------------------------------------------

    async def get_position_async(self, symbol: Any, *,
                                 timeout: float | None = None) -> dict[str, Any]:
        """:meth:`get_position` as a coroutine for the loop thread."""
        instrument = parse_symbol(symbol)
        rows = await self._rows(self.ctx.deadline(timeout), instrument)
        return rows[0] if rows else no_position(instrument.symbol)

    async def get_all_positions_async(self, *, timeout: float | None = None
                                      ) -> list[dict[str, Any]]:
        """:meth:`get_all_positions` as a coroutine for the loop thread."""
        return await self._rows(self.ctx.deadline(timeout))

    async def get_token_balance_usd_async(self, symbol: Any, *,
                                          timeout: float | None = None) -> float:
        """:meth:`get_token_balance_usd` as a coroutine for the loop thread."""
        deadline = self.ctx.deadline(timeout)
        pos = await self.get_position_async(symbol, timeout=max(0.1, deadline - time.monotonic()))
        if not pos["has_position"]:
            return 0.0
        if pos.get("sec_type") == "CASH" and pos["symbol"].startswith("USD"):
            return float(pos["quantity"])  # a USD-based FX pair is held in dollars
        return float(pos["market_value"]) * await self.ctx.usd_rate(
            pos.get("currency", "USD"), deadline)

    async def get_account_value_async(self, *, timeout: float | None = None) -> float:
        """:meth:`get_account_value` as a coroutine for the loop thread."""
        return await self._account_number(("NetLiquidation",), timeout)

    async def get_balance_async(self, *, timeout: float | None = None) -> float:
        """:meth:`get_balance` as a coroutine for the loop thread."""
        return await self._account_number(("AvailableFunds", "TotalCashValue"), timeout)

    async def get_cash_async(self, *, timeout: float | None = None) -> float:
        """:meth:`get_cash` as a coroutine for the loop thread."""
        return await self._account_number(("TotalCashValue",), timeout)

    async def reconcile_positions_async(self, expected: Mapping[str, float], *,
                                        tolerance: float = 1e-9,
                                        timeout: float | None = None) -> dict[str, Any]:
        """:meth:`reconcile_positions` as a coroutine for the loop thread."""
        book = agent_book(expected)
        actual: dict[str, float] = {}
        for row in await self._rows(self.ctx.deadline(timeout), priced=False):
            actual[row["symbol"]] = actual.get(row["symbol"], 0.0) + float(row["quantity"])
        differences = diff_positions(book, actual, tolerance)
        if differences:
            log.warning(
                "reconcile_positions: %d difference(s) between the agent's book and IB: %s",
                len(differences),
                ", ".join(f"{d['symbol']} expected {d['expected']:g} actual {d['actual']:g}"
                          for d in differences),
            )
        return {"success": True, "matched": not differences, "differences": differences,
                "expected": book, "actual": actual}

    # -- the blocking API ----------------------------------------------------------------

    def get_position(self, symbol: Any, *, timeout: float | None = None) -> dict[str, Any]:
        """The account's position in ``symbol``, as a nice_funcs dict.

        Blocks up to ``timeout`` seconds (default: the ``timeout`` setting).

        Returns:
            ``has_position, quantity, symbol, avg_cost, current_price,
            market_value, unrealized_pnl, unrealized_pnl_pct``, ``known``
            (True) (plus ``currency``, ``con_id``, ``sec_type``);
            ``has_position`` False and zeros when the gateway says nothing
            is held. ``market_value`` is in the contract's currency (USD for
            US stocks and crypto).

        Raises:
            ValueError, TypeError: a malformed symbol or timeout (nothing sent).
            ConnectionFailedError, RequestTimeoutError: the gateway failed; the
                position is unknown (never reported as flat).
        """
        return self._block(lambda: self.get_position_async(symbol, timeout=timeout),
                           self._seconds(timeout), "positions")

    def get_all_positions(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every non-zero position of the account, as nice_funcs dicts.

        Blocks up to ``timeout`` seconds. ``[]`` only when the gateway says
        the account holds nothing; a failure raises like :meth:`get_position`.
        """
        return self._block(lambda: self.get_all_positions_async(timeout=timeout),
                           self._seconds(timeout), "positions")

    def get_token_balance_usd(self, symbol: Any, *, timeout: float | None = None) -> float:
        """USD value of the position in ``symbol`` (negative for a short; 0.0 when flat).

        Blocks up to ``timeout`` seconds. Raises like :meth:`get_position`.
        """
        return self._block(lambda: self.get_token_balance_usd_async(symbol, timeout=timeout),
                           self._seconds(timeout), "positions")

    def get_account_value(self, *, timeout: float | None = None) -> float:
        """Net liquidation value of the account (IB's ``NetLiquidation``), in USD.

        Blocks up to ``timeout`` seconds.

        Raises:
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
            IBNiceFuncsError: IB reported no value.
        """
        return self._block(lambda: self.get_account_value_async(timeout=timeout),
                           self._seconds(timeout), "NetLiquidation")

    def get_balance(self, *, timeout: float | None = None) -> float:
        """Funds available for new positions (IB's ``AvailableFunds``; cash if absent).

        Blocks up to ``timeout`` seconds. Raises like :meth:`get_account_value`.
        """
        return self._block(lambda: self.get_balance_async(timeout=timeout),
                           self._seconds(timeout), "AvailableFunds")

    def get_cash(self, *, timeout: float | None = None) -> float:
        """The account's cash in USD (IB's ``TotalCashValue``; negative when borrowing).

        Blocks up to ``timeout`` seconds. Raises like :meth:`get_account_value`.
        """
        return self._block(lambda: self.get_cash_async(timeout=timeout),
                           self._seconds(timeout), "TotalCashValue")

    def reconcile_positions(self, expected: Mapping[str, float], *, tolerance: float = 1e-9,
                            timeout: float | None = None) -> dict[str, Any]:
        """Compare an agent's own book with the positions IB reports.

        Blocks up to ``timeout`` seconds. Sends nothing; it only reports.

        Args:
            expected: Symbol -> signed quantity the agent believes it holds
                (any spelling :func:`~ib_nice_funcs.parse_symbol` accepts).
            tolerance: Absolute quantity difference treated as equal.

        Returns:
            ``{"success": True, "matched": bool, "differences": [...],
            "expected": {...}, "actual": {...}}``; see :func:`diff_positions`.

        Raises:
            TypeError, ValueError: ``expected`` is not a mapping of symbols to numbers.
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
        """
        agent_book(expected)  # bad input raises here, before anything is asked
        return self._block(lambda: self.reconcile_positions_async(
            expected, tolerance=tolerance, timeout=timeout), self._seconds(timeout),
            "reconcile_positions")
