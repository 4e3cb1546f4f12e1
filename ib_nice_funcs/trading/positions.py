"""Positions, account values and reconciliation.

Pure helpers (:func:`position_dict`, :func:`no_position`,
:func:`unknown_position`, :func:`diff_positions`) shape the nice_funcs dicts;
:class:`PositionsMixin` adds the blocking ``get_position`` family to the
Trader. Data calls are never blocked by the live-account guard. With
``order_failover`` on, positions and account values come from the Client
Portal while TWS is unreachable (rows then carry ``source`` "portal").
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConnectionFailedError, IBNiceFuncsError, PositionUnknownError
from ..symbols import Instrument, parse_symbol
from ._core import TraderCore
from .account import account_number
from .contracts import finite, multiplier_of, position_symbol

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Contract

__all__ = [
    "PERP_KEYS",
    "PositionsMixin",
    "Unknown",
    "diff_positions",
    "no_position",
    "perp_keys",
    "position_dict",
    "unknown_position",
    "with_perp_keys",
]

log = logging.getLogger("ib_nice_funcs")

#: The perp-exchange names of a position's facts (see :func:`perp_keys`).
PERP_KEYS: tuple[str, ...] = ("amount", "pnl_percent", "position_amount", "entry_price",
                              "mark_price", "pnl", "pnl_percentage", "is_long")
#: The numeric fields of a position dict (all Unknown when the position is).
_NUMBER_KEYS = ("quantity", "avg_cost", "current_price", "market_value", "unrealized_pnl",
                "unrealized_pnl_pct")


def _refuse(*_: Any) -> Any:
    raise TypeError("a position value is unknown (the call failed); check pos['known'] first")


class Unknown(str):
    """A position value the library could not learn: neither true nor false.

    Why not ``None``, ``False`` or a truthy marker: agents write
    ``if not pos["has_position"]: market_buy(...)`` and
    ``if pos["has_position"]: market_sell(...)``. A falsy value (``None``,
    ``False``, ``0.0``) makes the first buy again on a position that may
    exist; a truthy one makes the second act on one that may not. So any
    truth test (``if``, ``not``, ``bool()``, ``and``/``or``) raises
    :class:`~ib_nice_funcs.errors.PositionUnknownError` naming the cause, and
    so do arithmetic and ordering (TypeError), while ``pos["known"] is False``
    says it without raising. It is a ``str`` equal to ``"unknown"`` so that the
    dict still prints, logs and ``json.dumps`` as ``"unknown"``.
    """

    reason: str

    def __new__(cls, reason: str = "") -> Unknown:
        self = super().__new__(cls, "unknown")
        self.reason = reason
        return self

    def __getnewargs__(self) -> tuple[str]:  # copy / pickle
        return (self.reason,)

    def __bool__(self) -> bool:
        raise PositionUnknownError(
            "this position value is unknown, not flat and not held: "
            f"{self.reason or 'the call failed'}. Check pos['known'] before testing "
            "has_position or quantity, and ask again"
        )

    def __repr__(self) -> str:
        return "Unknown"

    __add__ = __radd__ = __mul__ = __rmul__ = __mod__ = __rmod__ = _refuse


def unknown_position(symbol: str, error: str) -> dict[str, Any]:
    """The nice_funcs dict for a position that could not be read (the call failed).

    ``known`` is False, ``status`` ``"unknown"``, ``error`` the cause, and
    ``has_position`` plus every number is an :class:`Unknown` (a truth test
    on it raises), so no agent reads it as flat.
    """
    value = Unknown(error)
    return {"has_position": value, **dict.fromkeys(_NUMBER_KEYS, value), "symbol": symbol,
            "known": False, "status": "unknown", "error": error,
            # The perp names too: ``pos.get("position_amount", 0)`` must not read as flat.
            **dict.fromkeys(PERP_KEYS, value)}


def no_position(symbol: str) -> dict[str, Any]:
    """The nice_funcs dict for a symbol the account does not hold."""
    return {
        "has_position": False,
        "quantity": 0.0,
        "symbol": symbol,
        "avg_cost": 0.0,
        "current_price": 0.0,
        "market_value": 0.0,
        "unrealized_pnl": 0.0,
        "unrealized_pnl_pct": 0.0,
        "known": True,
    } | perp_keys(0.0, 0.0, 0.0, 0.0, 0.0)


def with_perp_keys(position: dict[str, Any]) -> dict[str, Any]:
    """``position`` (a nice_funcs position dict from any venue) plus :func:`perp_keys`.

    An unknown position (``known`` False) is returned as it is: its values are
    :class:`Unknown` already.
    """
    if position.get("known") is False:
        return position
    return {**position, **perp_keys(
        position.get("quantity") or 0.0, position.get("avg_cost") or 0.0,
        position.get("current_price") or 0.0, position.get("unrealized_pnl") or 0.0,
        position.get("unrealized_pnl_pct") or 0.0,
    )}


def perp_keys(
    quantity: float, avg_cost: float, price: float, pnl: float, pnl_pct: float
) -> dict[str, Any]:
    """The perp-exchange names of a position (Aster / HyperLiquid agents read these).

    ``position_amount`` is signed (negative = short), ``pnl_percentage`` is
    the return on the position's cost in percent (IB has no per-position
    leverage, so it is not multiplied by one).
    """
    return {
        # The exchange manager's Solana branch reads ``amount`` and ``pnl_percent``.
        "amount": float(quantity),
        "pnl_percent": float(pnl_pct),
        "position_amount": float(quantity),
        "entry_price": float(avg_cost),
        "mark_price": float(price),
        "pnl": float(pnl),
        "pnl_percentage": float(pnl_pct),
        "is_long": quantity > 0,
    }


def position_dict(
    symbol: str,
    quantity: float,
    avg_cost: float,
    current_price: float,
    multiplier: float = 1.0,
    **extra: Any,
) -> dict[str, Any]:
    """The nice_funcs position dict.

    Args:
        symbol: Canonical symbol.
        quantity: Signed quantity (negative = short).
        avg_cost: Average cost per unit (IB's avgCost divided by the multiplier).
        current_price: Current price per unit.
        multiplier: Contract multiplier (1 for stocks, FX, crypto).
        extra: Extra keys appended (e.g. ``currency``, ``con_id``).

    Returns:
        ``has_position, quantity, symbol, avg_cost, current_price,
        market_value, unrealized_pnl, unrealized_pnl_pct`` (percent, signed
        so that a short gains when the price falls), ``known`` (True),
        then the same facts under the perp names of :func:`perp_keys`.
    """
    qty = float(quantity)
    market_value = qty * current_price * multiplier
    unrealized = (current_price - avg_cost) * qty * multiplier
    pct = 0.0
    if avg_cost > 0 and qty:
        pct = (current_price / avg_cost - 1.0) * 100.0 * (1 if qty > 0 else -1)
    out = {
        "has_position": qty != 0,
        "quantity": qty,
        "symbol": symbol,
        "avg_cost": float(avg_cost),
        "current_price": float(current_price),
        "market_value": market_value,
        "unrealized_pnl": unrealized,
        "unrealized_pnl_pct": pct,
        "known": True,
    } | perp_keys(qty, avg_cost, current_price, unrealized, pct)
    out.update(extra)
    return out


def diff_positions(
    expected: Mapping[str, float], actual: Mapping[str, float], tolerance: float = 1e-9
) -> list[dict[str, Any]]:
    """Differences between an agent's book and the broker's, by symbol.

    Args:
        expected: Symbol -> signed quantity the agent believes it holds.
        actual: Symbol -> signed quantity the broker reports.
        tolerance: Differences up to this (absolute) are equal.

    Returns:
        One dict per differing symbol, sorted by symbol: ``symbol``,
        ``expected``, ``actual``, ``difference`` (actual - expected) and
        ``kind``: ``missing_at_broker`` (expected, none held),
        ``unexpected_at_broker`` (held, not expected) or ``quantity_mismatch``.
    """
    out = []
    for symbol in sorted(set(expected) | set(actual)):
        e = float(expected.get(symbol, 0.0))
        a = float(actual.get(symbol, 0.0))
        if abs(a - e) <= tolerance:
            continue
        if a == 0:
            kind = "missing_at_broker"
        elif e == 0:
            kind = "unexpected_at_broker"
        else:
            kind = "quantity_mismatch"
        out.append(
            {"symbol": symbol, "expected": e, "actual": a, "difference": a - e, "kind": kind})
    return out


def _finite(value: numbers.Real) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int or Fraction beyond float
        return False


def _matches(instrument: Instrument, contract: Contract) -> bool:
    given = instrument.contract
    if given is not None and getattr(given, "conId", 0):
        return given.conId == contract.conId
    return position_symbol(contract) == instrument.symbol and (
        not instrument.sec_type or instrument.sec_type == contract.secType
    )


class PositionsMixin(TraderCore):
    """``get_position``, ``get_all_positions``, account values and reconciliation."""

    # -- loop side -------------------------------------------------------------------

    async def _holdings_async(self) -> list[tuple[Any, float | None]]:
        """Fresh positions with IB's mark price per unit (None when IB sent none)."""

        async def ask(ib: IB) -> list[tuple[Any, float | None]]:
            positions = await self._positions_async(ib)
            account = self._data_account()
            # IB's marks are a subscription: held, so only used while the link is
            # current (else each position is priced afresh).
            held = ib.portfolio(account or "") if self.gateway.health.current else []
            marks = {item.contract.conId: item for item in held}
            out = []
            for pos in positions:
                item = marks.get(pos.contract.conId)
                price = finite(item.marketPrice) if item is not None else None
                out.append((pos, price if price and price > 0 else None))
            return out

        return await self.gateway.request(ask, "positions")

    # -- thread side -----------------------------------------------------------------

    def _holdings(self, deadline: float) -> list[tuple[Any, float | None]]:
        holdings = self._run(self._holdings_async, deadline, "positions")
        self._failover.note_up()
        return holdings

    def _as_dict(self, pos: Any, mark: float | None, deadline: float) -> dict[str, Any]:
        contract = pos.contract
        mult = multiplier_of(contract)
        symbol = position_symbol(contract)
        avg = (finite(pos.avgCost) or 0.0) / mult
        price = mark
        if price is None:
            try:
                price = self.client.price(symbol, timeout=max(0.5, deadline - time.monotonic()))
            except (IBNiceFuncsError, ValueError, TypeError) as exc:
                log.debug("no price for %s (%s); valuing it at cost", symbol, exc)
                price = avg
        return position_dict(
            symbol, float(pos.position), avg, float(price), mult,
            currency=contract.currency or "USD", con_id=contract.conId, sec_type=contract.secType,
        )

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
        instrument = parse_symbol(symbol)
        deadline = self._deadline(timeout)
        try:
            holdings = self._holdings(deadline)
        except ConnectionFailedError as exc:
            found = self._failover.position(instrument, exc, deadline)
            return with_perp_keys(found) if found is not None else no_position(instrument.symbol)
        for pos, mark in holdings:
            if _matches(instrument, pos.contract):
                return self._as_dict(pos, mark, deadline)
        return no_position(instrument.symbol)

    def get_all_positions(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every non-zero position of the account, as nice_funcs dicts.

        Blocks up to ``timeout`` seconds. ``[]`` only when the gateway says
        the account holds nothing; a failure raises like :meth:`get_position`.
        """
        deadline = self._deadline(timeout)
        try:
            holdings = self._holdings(deadline)
        except ConnectionFailedError as exc:
            return [with_perp_keys(r) for r in self._failover.positions(exc, deadline) if r["quantity"]]
        return [self._as_dict(pos, mark, deadline) for pos, mark in holdings]

    def get_token_balance_usd(self, symbol: Any, *, timeout: float | None = None) -> float:
        """USD value of the position in ``symbol`` (negative for a short; 0.0 when flat).

        Blocks up to ``timeout`` seconds. Raises like :meth:`get_position`.
        """
        deadline = self._deadline(timeout)
        pos = self.get_position(symbol, timeout=max(0.1, deadline - time.monotonic()))
        if not pos["has_position"]:
            return 0.0
        currency = pos.get("currency", "USD")
        if pos.get("sec_type") == "CASH" and pos["symbol"].startswith("USD"):
            return float(pos["quantity"])  # a USD-based FX pair is held in dollars
        return float(pos["market_value"]) * self._usd_rate(currency, deadline)

    def _account_number(self, tags: tuple[str, ...], timeout: float | None) -> float:
        deadline = self._deadline(timeout)

        async def ask(ib: IB) -> float | None:
            account = self._data_account()
            values = await self._account_values_async(ib, account)
            for tag in tags:
                value = account_number(values, tag, account)
                if value is not None:
                    return value
            return None

        try:
            value = self._run(lambda: self.gateway.request(ask, tags[0]), deadline, tags[0])
        except ConnectionFailedError as exc:
            value = self._failover.account_number(tags, exc, deadline)
        if value is None:
            raise IBNiceFuncsError(
                f"IB reported no {tags[0]} for the account; check that TWS / IB Gateway is "
                "logged in and the account is set (IB_ACCOUNT)"
            )
        return value

    def get_account_value(self, *, timeout: float | None = None) -> float:
        """Net liquidation value of the account (IB's ``NetLiquidation``), in USD.

        Blocks up to ``timeout`` seconds.

        Raises:
            ConnectionFailedError, RequestTimeoutError: the gateway failed.
            IBNiceFuncsError: IB reported no value.
        """
        return self._account_number(("NetLiquidation",), timeout)

    def get_balance(self, *, timeout: float | None = None) -> float:
        """Funds available for new positions (IB's ``AvailableFunds``; cash if absent).

        Blocks up to ``timeout`` seconds. Raises like :meth:`get_account_value`.
        """
        return self._account_number(("AvailableFunds", "TotalCashValue"), timeout)

    def get_cash(self, *, timeout: float | None = None) -> float:
        """The account's cash in USD (IB's ``TotalCashValue``; negative when borrowing).

        Blocks up to ``timeout`` seconds. Raises like :meth:`get_account_value`.
        """
        return self._account_number(("TotalCashValue",), timeout)

    def reconcile_positions(
        self,
        expected: Mapping[str, float],
        *,
        tolerance: float = 1e-9,
        timeout: float | None = None,
    ) -> dict[str, Any]:
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
        if not isinstance(expected, Mapping):
            raise TypeError("expected must be a mapping of symbol -> quantity, got "
                            f"{type(expected).__name__}")
        book: dict[str, float] = {}
        for key, qty in expected.items():
            if isinstance(qty, bool) or not isinstance(qty, numbers.Real) or not _finite(qty):
                raise ValueError(f"expected[{key!r}] must be a finite number, got {qty!r:.40}")
            name = parse_symbol(key).symbol
            book[name] = book.get(name, 0.0) + float(qty)
        deadline = self._deadline(timeout)
        actual: dict[str, float] = {}
        for pos, _ in self._holdings(deadline):
            name = position_symbol(pos.contract)
            actual[name] = actual.get(name, 0.0) + float(pos.position)
        differences = diff_positions(book, actual, tolerance)
        if differences:
            log.warning(
                "reconcile_positions: %d difference(s) between the agent's book and IB: %s",
                len(differences),
                ", ".join(f"{d['symbol']} expected {d['expected']:g} actual {d['actual']:g}"
                          for d in differences),
            )
        return {
            "success": True,
            "matched": not differences,
            "differences": differences,
            "expected": book,
            "actual": actual,
        }
