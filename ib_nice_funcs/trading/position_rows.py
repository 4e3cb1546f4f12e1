"""The nice_funcs position dicts, without I/O.

:func:`position_dict`, :func:`no_position`, :func:`unknown_position` and
:func:`with_perp_keys` shape what ``get_position`` returns (TWS and Client
Portal rows alike); :class:`Unknown` is the value of a position the library
could not learn; :func:`diff_positions` compares an agent's book with IB's.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping
from typing import Any, TypedDict

from ..errors import PositionUnknownError
from ..symbols import parse_symbol

__all__ = [
    "PERP_KEYS",
    "PositionDifference",
    "ReconcileResult",
    "Unknown",
    "diff_positions",
    "no_position",
    "perp_keys",
    "position_dict",
    "agent_book",
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


class PositionDifference(TypedDict):
    """One symbol where the agent's book and the broker's positions differ."""

    symbol: str
    expected: float
    actual: float
    difference: float
    kind: str


class _ReconcileKeys(TypedDict):
    success: bool
    matched: bool
    differences: list[PositionDifference]
    expected: dict[str, float]
    actual: dict[str, float] | None


class ReconcileResult(_ReconcileKeys, total=False):
    """``reconcile_positions``' result; ``actual`` None (and ``error``) when not known."""

    error: str



def diff_positions(
    expected: Mapping[str, float], actual: Mapping[str, float], tolerance: float = 1e-9
) -> list[PositionDifference]:
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
    out: list[PositionDifference] = []
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


def agent_book(expected: Mapping[str, float]) -> dict[str, float]:
    """An agent's book as ``{canonical symbol: signed quantity}`` (spellings merged).

    Raises:
        TypeError: ``expected`` is not a mapping.
        ValueError: a quantity is not a finite number, or a symbol is malformed.
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
    return book


def _finite(value: numbers.Real) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int or Fraction beyond float
        return False
