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
from ..symbols import parse_symbol
from .desk import Desk, blocking
from .position_rows import (
    PERP_KEYS,
    ReconcileResult,
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
        instrument = parse_symbol(symbol)
        rows = await self.router.positions(self.ctx.deadline(timeout), instrument)
        return rows[0] if rows else no_position(instrument.symbol)

    async def get_all_positions_async(self, *, timeout: float | None = None
                                      ) -> list[dict[str, Any]]:
        """Every non-zero position of the account, as nice_funcs dicts.

        Blocks up to ``timeout`` seconds. ``[]`` only when the gateway says
        the account holds nothing; a failure raises like :meth:`get_position`.
        """
        return await self.router.positions(self.ctx.deadline(timeout))

    async def get_token_balance_usd_async(self, symbol: Any, *,
                                          timeout: float | None = None) -> float:
        """USD value of the position in ``symbol`` (negative for a short; 0.0 when flat).

        Blocks up to ``timeout`` seconds. Raises like :meth:`get_position`.
        """
        deadline = self.ctx.deadline(timeout)
        pos = await self.get_position_async(symbol, timeout=max(0.1, deadline - time.monotonic()))
        if not pos["has_position"]:
            return 0.0
        if pos.get("sec_type") == "CASH" and pos["symbol"].startswith("USD"):
            return float(pos["quantity"])  # a USD-based FX pair is held in dollars
        return float(pos["market_value"]) * await self.ctx.usd_rate(
            pos.get("currency", "USD"), deadline)

    async def get_account_value_async(self, *, timeout: float | None = None) -> float:
        """Net liquidation value of the account (IB's ``NetLiquidation``), in USD.

        Blocks up to ``timeout`` seconds.

        Raises:
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
            IBNiceFuncsError: IB reported no value.
        """
        return await self._account_number(("NetLiquidation",), timeout)

    async def get_balance_async(self, *, timeout: float | None = None) -> float:
        """Funds available for new positions (IB's ``AvailableFunds``; cash if absent).

        Blocks up to ``timeout`` seconds. Raises like :meth:`get_account_value`.
        """
        return await self._account_number(("AvailableFunds", "TotalCashValue"), timeout)

    async def get_cash_async(self, *, timeout: float | None = None) -> float:
        """The account's cash in USD (IB's ``TotalCashValue``; negative when borrowing).

        Blocks up to ``timeout`` seconds. Raises like :meth:`get_account_value`.
        """
        return await self._account_number(("TotalCashValue",), timeout)

    async def reconcile_positions_async(self, expected: Mapping[str, float], *,
                                        tolerance: float = 1e-9,
                                        timeout: float | None = None) -> ReconcileResult:
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
        book = agent_book(expected)
        actual: dict[str, float] = {}
        for row in await self.router.positions(self.ctx.deadline(timeout), priced=False):
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

    # -- the blocking API: one-liners over the coroutines ---------------------------------

    get_position = blocking(get_position_async)
    get_all_positions = blocking(get_all_positions_async)
    get_token_balance_usd = blocking(get_token_balance_usd_async)
    get_account_value = blocking(get_account_value_async)
    get_balance = blocking(get_balance_async)
    get_cash = blocking(get_cash_async)
    reconcile_positions = blocking(reconcile_positions_async)


