"""The module-level nice_funcs trading functions (``n.market_buy(sym, usd)``...).

They run on the default Client's :class:`~ib_nice_funcs.trading.trader.Trader`
and never raise for operational failures (gateway down, timeout, unknown
symbol, live-account guard, risk breach, broker rejection): they log ONE
WARNING naming the symbol, the cause and the remedy, and return
``{"success": False, "error": ...}`` (order helpers; ``success`` None and
``status`` "Unknown" when an order was sent but its fate is not known), an
unknown-position dict (``get_position``: ``known`` False, never "flat"),
``None`` (``get_all_positions``, ``get_token_balance_usd``: never ``[]`` or
``0.0``, which would read as "holds nothing"), ``0.0`` (account values) or
``[]`` (open orders). Programming errors (bad side, NaN amount, percentage
outside (0, 100]...) raise ValueError / TypeError at once, before anything is
sent; a non-ASCII symbol is treated as an unknown symbol (failure value and
one WARNING).

Each call blocks for at most its ``timeout`` (default: the ``timeout``
setting; ``emergency_stop`` three times that).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import (
    ConnectionFailedError,
    IBNiceFuncsError,
    LiveTradingDisabledError,
    OrderRejectedError,
    RequestTimeoutError,
    RiskLimitError,
    UnknownSymbolError,
)
from ..model import OrderResult
from ..symbols import symbol_label
from .position_rows import unknown_position
from .results import UNKNOWN, Outcome, carried_result, empty_result

__all__ = [
    "market_buy",
    "market_sell",
    "market_sell_usd",
    "limit_buy",
    "limit_sell",
    "place_order",
    "cancel_order",
    "cancel_all",
    "get_open_orders",
    "get_position",
    "get_all_positions",
    "get_token_balance_usd",
    "get_cash",
    "is_cash_symbol",
    "get_account_value",
    "get_balance",
    "kill_switch",
    "chunk_kill",
    "close_position",
    "emergency_stop",
    "resume_trading",
    "reconcile_positions",
]

log = logging.getLogger("ib_nice_funcs")
T = TypeVar("T")


def _trader() -> Any:
    from ..nice_funcs import default_client

    return default_client().trading


@dataclass(frozen=True)
class TraderCall:
    """What a module-level function asks of the Trader, and how it turns the outcome
    into its own result.

    The blocking functions here run it at once. ``ib_nice_funcs.aio`` gets it
    from :func:`deferred` and awaits the Trader's ``<method>_async`` twin on
    the loop thread instead, then hands the outcome to the same ``finish``:
    one definition of each function's failure value for both faces.

    Attributes:
        method: The Trader method (its coroutine twin is ``method + "_async"``).
        args, kwargs: Its arguments.
        finish: ``finish(outcome)``, where ``outcome()`` returns the Trader's
            result or raises its error: the function's result (a failure
            value plus one WARNING for an operational failure).
    """

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    finish: Callable[[Callable[[], Any]], Any]


_DEFERRED: ContextVar[bool] = ContextVar("ib_nice_funcs_deferred_trader_call", default=False)


def _through(finish: Callable[[Callable[[], Any]], Any], method: str, *args: Any,
             **kwargs: Any) -> Any:
    call = TraderCall(method, args, kwargs, finish)
    if _DEFERRED.get():
        return call
    return finish(lambda: getattr(_trader(), method)(*args, **kwargs))


def deferred(function: Callable[..., T], *args: Any, **kwargs: Any) -> T | TraderCall:
    """Run a module-level trading function up to its Trader call.

    Returns what the function returns without asking the Trader (a refused
    symbol, a zero amount), else the :class:`TraderCall` it would make.

    Raises:
        ValueError, TypeError: bad arguments, as the function raises them.
    """
    token = _DEFERRED.set(True)
    try:
        return function(*args, **kwargs)
    finally:
        _DEFERRED.reset(token)


def _remedy(exc: BaseException) -> str:
    """A hint to append when the message does not already say what to do."""
    text = str(exc)
    if isinstance(exc, (RiskLimitError, LiveTradingDisabledError)):
        return ""  # their messages say how to change the limit / enable live trading
    if isinstance(exc, OrderRejectedError):
        return " (check buying power, trading permissions and the price against the contract)"
    if isinstance(exc, RequestTimeoutError) and "client_order_id" not in text:
        return " (check TWS / IB Gateway, or raise IB_NICE_FUNCS_TIMEOUT)"
    if isinstance(exc, ConnectionFailedError) and "TWS" not in text:
        return " (check that TWS / IB Gateway is running; 'ib-nice-funcs doctor' tests it)"
    if isinstance(exc, UnknownSymbolError):
        return ""
    if isinstance(exc, OSError) and not isinstance(exc, IBNiceFuncsError):
        return " (check the network path to TWS / IB Gateway)"
    return ""


def _warn(what: str, exc: BaseException) -> None:
    log.warning("%s failed: %s%s", what, exc, _remedy(exc))


def _refused(what: str, symbol: Any) -> bool:
    from ..nice_funcs import refused_symbol

    return refused_symbol(what, symbol)


def _zero_amount(what: str, symbol: Any, usd_amount: Any) -> OrderResult | None:
    """The failure dict (after one WARNING) for a zero USD amount, else None.

    An agent with no cash sizes its orders at 0: nothing to send, not a crash.
    Negative, NaN and non-numbers still raise (in the Trader's validation).
    """
    if (isinstance(usd_amount, (int, float)) and not isinstance(usd_amount, bool)
            and usd_amount == 0):
        log.warning("%s: nothing sent: the USD amount is 0 (no cash to size the order with?)", what)
        return empty_result("the USD amount is 0", symbol=symbol_label(symbol))
    return None


def _order(what: str, symbol: Any, method: str, *args: Any,
           wrap: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
           **kwargs: Any) -> Any:
    """Run an order helper; on an operational failure, one WARNING and a failure dict.

    Symbol text that names no instrument gets the failure dict too (nothing sent).
    ``wrap`` turns the dict into the function's result type.
    """
    if symbol is not None and _refused(what, symbol):
        label = symbol_label(symbol)
        refused = empty_result(f"symbol {label!r} is not recognised", symbol=label)
        return wrap(refused) if wrap is not None else refused

    def finish(call: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
        result = _order_outcome(what, symbol, call)
        return wrap(result) if wrap is not None else result

    return _through(finish, method, *args, **kwargs)


def _order_outcome(what: str, symbol: Any,
                   call: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
    try:
        result = call()
    except (IBNiceFuncsError, OSError) as exc:
        carried = carried_result(exc)
        if carried is not None and carried.get("status") == UNKNOWN:
            # Sent (or maybe sent) with no answer: unknown (None), never "failed".
            log.warning("%s: outcome unknown: %s", what, carried.get("error") or exc)
            unknown: OrderResult = {**carried, "success": None,
                                    "error": carried.get("error") or str(exc)}
            return unknown
        _warn(what, exc)
        out: OrderResult
        if carried is not None:
            out = carried.copy()
            out["success"] = False
            out["error"] = out.get("error") or str(exc)
        else:
            label = symbol_label(symbol) if symbol is not None else None
            out = empty_result(str(exc), symbol=label)
            out["code"] = getattr(exc, "code", None)
        breach = getattr(exc, "breach", None)
        if breach is not None:
            out["risk_limit"] = getattr(breach, "limit", None)
        return out
    if not result.get("success", True):
        # Outcomes the Trader reports without raising (an incomplete emergency
        # stop, an order that could not be cancelled...).
        log.warning("%s failed: %s", what, result.get("error") or result.get("status"))
    return result


#: The failure value of the USD-balance readers: unknown, never "holds nothing".
UNKNOWN_USD = float("nan")


def _value(what: str, fallback: T, method: str, *args: Any, **kwargs: Any) -> T:
    """Run a reader; on an operational failure, one WARNING and ``fallback``."""

    def finish(call: Callable[[], T]) -> T:
        try:
            return call()
        except (IBNiceFuncsError, OSError) as exc:
            _warn(what, exc)
            return fallback

    return _through(finish, method, *args, **kwargs)


# -- orders ------------------------------------------------------------------------


def market_buy(
    symbol: Any,
    usd_amount: float,
    slippage: Any = None,
    *,
    client_order_id: str | None = None,
    wait: bool = True,
    timeout: float | None = None,
) -> OrderResult:
    """Buy about ``usd_amount`` USD of ``symbol`` at market; wait for the fill.

    ``slippage`` is accepted so ``n.market_buy(sym, usd, slippage)`` keeps
    working, and ignored: a market order takes the market price.

    Returns:
        ``{"success", "order_id", "client_order_id", "status", "filled_qty",
        "avg_price", "error", ...}``; ``success`` False (plus one WARNING) on
        any operational failure, including a risk breach or IB's rejection
        (``code`` carries IB's error code).

    Raises:
        ValueError, TypeError: bad arguments (nothing sent).
    """
    what = f"market_buy({symbol_label(symbol)}, {usd_amount!r})"
    zero = _zero_amount(what, symbol, usd_amount)
    if zero is not None:
        return zero
    return _order(what, symbol, "market_buy", symbol, usd_amount,
                  client_order_id=client_order_id, wait=wait, timeout=timeout)


def market_sell(
    symbol: Any,
    percentage: float = 100,
    *,
    client_order_id: str | None = None,
    wait: bool = True,
    timeout: float | None = None,
) -> OrderResult:
    """Sell ``percentage`` (0-100] of the long position in ``symbol`` at market.

    Returns the order result dict (``success`` False when nothing is held).

    Raises:
        ValueError, TypeError: bad arguments (nothing sent).
    """
    return _order(f"market_sell({symbol_label(symbol)}, {percentage!r})", symbol,
                  "market_sell", symbol, percentage, client_order_id=client_order_id,
                  wait=wait, timeout=timeout)


def market_sell_usd(
    symbol: Any,
    usd_amount: float,
    *,
    client_order_id: str | None = None,
    wait: bool = True,
    timeout: float | None = None,
) -> OrderResult:
    """Sell about ``usd_amount`` USD of ``symbol`` at market: reduces a long, then opens a short.

    Returns the order result dict; ``success`` False (plus one WARNING) on
    any operational failure, including a risk breach or a refused short.

    Raises:
        ValueError, TypeError: bad arguments (nothing sent).
    """
    what = f"market_sell_usd({symbol_label(symbol)}, {usd_amount!r})"
    zero = _zero_amount(what, symbol, usd_amount)
    if zero is not None:
        return zero
    return _order(what, symbol, "market_sell_usd", symbol, usd_amount,
                  client_order_id=client_order_id, wait=wait, timeout=timeout)


def limit_buy(
    symbol: Any,
    usd_amount: float,
    limit_price: float,
    *,
    tif: str = "DAY",
    client_order_id: str | None = None,
    wait: bool = True,
    timeout: float | None = None,
) -> OrderResult:
    """Buy ``usd_amount`` USD of ``symbol`` at ``limit_price`` or better; wait until working.

    Raises:
        ValueError, TypeError: bad arguments (nothing sent).
    """
    what = f"limit_buy({symbol_label(symbol)}, {usd_amount!r}, {limit_price!r})"
    zero = _zero_amount(what, symbol, usd_amount)
    if zero is not None:
        return zero
    return _order(what, symbol, "limit_buy", symbol, usd_amount, limit_price, tif=tif,
                  client_order_id=client_order_id, wait=wait, timeout=timeout)


def limit_sell(
    symbol: Any,
    percentage: float,
    limit_price: float,
    *,
    tif: str = "DAY",
    client_order_id: str | None = None,
    wait: bool = True,
    timeout: float | None = None,
) -> OrderResult:
    """Sell ``percentage`` of the long position at ``limit_price`` or better; wait until working.

    Raises:
        ValueError, TypeError: bad arguments (nothing sent).
    """
    return _order(f"limit_sell({symbol_label(symbol)}, {percentage!r}, {limit_price!r})", symbol,
                  "limit_sell", symbol, percentage, limit_price, tif=tif,
                  client_order_id=client_order_id, wait=wait, timeout=timeout)


def place_order(
    symbol: Any,
    side: str,
    quantity: float,
    order_type: str = "MKT",
    limit_price: float | None = None,
    stop_price: float | None = None,
    trail_percent: float | None = None,
    trail_amount: float | None = None,
    tif: str = "DAY",
    client_order_id: str | None = None,
    wait: bool = True,
    timeout: float | None = None,
) -> OrderResult:
    """Place a MKT, LMT, STP, STP LMT, TRAIL, MOC, LOC or MIDPRICE order.

    See :meth:`ib_nice_funcs.trading.trader.Trader.place_order`. Placing
    again with a ``client_order_id`` already used returns that order.

    Raises:
        ValueError, TypeError: bad arguments (nothing sent).
    """
    what = f"place_order({symbol_label(symbol)}, {side!r}, {quantity!r}, {order_type!r})"
    return _order(what, symbol, "place_order", symbol, side, quantity, order_type, limit_price,
                  stop_price, trail_percent, trail_amount, tif, client_order_id, wait, timeout)


def cancel_order(order_id: int | str, *, timeout: float | None = None) -> OrderResult:
    """Cancel one order by IB order id or client order id; ``success`` False when it could not.

    Raises:
        ValueError, TypeError: a malformed id.
    """
    return _order(f"cancel_order({order_id!r})", None, "cancel_order", order_id, timeout=timeout)


def cancel_all(*, timeout: float | None = None) -> dict[str, Any]:
    """Cancel every open order on the account (IB's global cancel)."""
    return _order("cancel_all()", None, "cancel_all", timeout=timeout)


def get_open_orders(*, timeout: float | None = None) -> list[dict[str, Any]]:
    """Open orders on the account as dicts; ``[]`` (plus one WARNING) on failure."""
    return _value("get_open_orders()", [], "get_open_orders", timeout=timeout)


# -- positions and account ---------------------------------------------------------------


def get_position(symbol: Any, *, timeout: float | None = None) -> dict[str, Any]:
    """The position in ``symbol`` (nice_funcs dict, ``known`` True).

    On failure (plus one WARNING): ``known`` False, ``status`` "unknown",
    ``error`` the cause, and ``has_position`` / ``quantity`` / the other
    numbers are :class:`~ib_nice_funcs.trading.position_rows.Unknown`, whose truth
    test raises :class:`~ib_nice_funcs.errors.PositionUnknownError`: an agent's
    ``if not pos["has_position"]: buy`` stops instead of buying again.

    The dict carries the nice_funcs keys (``has_position``, ``quantity``,
    ``avg_cost``, ``current_price``, ``market_value``, ``unrealized_pnl``,
    ``unrealized_pnl_pct``) and the same facts under the perp agents' names
    (``position_amount`` signed, ``entry_price``, ``mark_price``, ``pnl``,
    ``pnl_percentage``, ``is_long``).

    Raises:
        TypeError: ``symbol`` is neither text nor a Contract.
        ValueError: a malformed timeout (nothing sent).
    """
    from ..symbols import parse_symbol

    what = f"get_position({symbol_label(symbol)})"
    if _refused(what, symbol):
        label = symbol_label(symbol)
        return unknown_position(label, f"symbol {label!r} is not recognised")
    try:
        name = parse_symbol(symbol).symbol
    except IBNiceFuncsError as exc:
        name = symbol_label(symbol)
        _warn(f"get_position({name})", exc)
        return unknown_position(name, str(exc))

    def finish(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return call()
        except (IBNiceFuncsError, OSError) as exc:
            _warn(f"get_position({name})", exc)
            return unknown_position(name, str(exc))

    return _through(finish, "get_position", symbol, timeout=timeout)


def get_all_positions(*, timeout: float | None = None) -> list[dict[str, Any]] | None:
    """Every position (nice_funcs dicts; ``[]`` when the account holds nothing).

    ``None`` (plus one WARNING) on failure, never ``[]``: an unknown book is
    not an empty one.
    """
    return _value("get_all_positions()", None, "get_all_positions", timeout=timeout)


def get_token_balance_usd(symbol: Any, *, timeout: float | None = None) -> float:
    """USD value held in ``symbol``; ``0.0`` when flat, NaN (plus one WARNING) on failure.

    NaN, not ``0.0`` or ``None``, because the value is unknown: ``0.0`` and
    ``None`` read as "holds nothing" (``not None`` is True), so an agent would
    buy again; every comparison with NaN is False (``> 0``, ``== 0``,
    ``< target``), so no branch of an agent acts on it, and it still formats
    (``f"{v:.2f}"`` prints ``nan``) where ``None`` would raise.

    A cash symbol (the ``cash_symbols`` setting: ``USD``, ``USDC`` and the
    agents' USDC mint address by default) reads the account's cash (IB's
    ``TotalCashValue``), as a Solana agent reads its USDC balance. Symbol
    text that names no instrument holds nothing: ``0.0`` (plus one WARNING).

    Raises:
        TypeError: ``symbol`` is neither text nor a Contract.
        ValueError: a malformed timeout (nothing sent).
    """
    what = f"get_token_balance_usd({symbol_label(symbol)})"
    if is_cash_symbol(symbol):
        return _value(what, UNKNOWN_USD, "get_cash", timeout=timeout)
    if _refused(what, symbol):
        return 0.0
    return _value(what, UNKNOWN_USD, "get_token_balance_usd", symbol, timeout=timeout)


def is_cash_symbol(symbol: Any) -> bool:
    """True when ``symbol`` names the account's cash (the ``cash_symbols`` setting)."""
    from ..config import get_settings

    if not isinstance(symbol, str):
        return False
    text = symbol.strip().upper()
    return any(text == c.strip().upper() for c in get_settings().cash_symbols)


def get_cash(*, timeout: float | None = None) -> float:
    """The account's cash in USD (IB's ``TotalCashValue``); NaN (plus one WARNING) on failure
    (see :func:`get_token_balance_usd` for why NaN)."""
    return _value("get_cash()", UNKNOWN_USD, "get_cash", timeout=timeout)


def get_account_value(*, timeout: float | None = None) -> float:
    """Net liquidation value in USD; ``0.0`` (plus one WARNING) on failure."""
    return _value("get_account_value()", 0.0, "get_account_value", timeout=timeout)


def get_balance(*, timeout: float | None = None) -> float:
    """Available funds in USD; ``0.0`` (plus one WARNING) on failure."""
    return _value("get_balance()", 0.0, "get_balance", timeout=timeout)


def reconcile_positions(
    expected: Mapping[str, float], *, tolerance: float = 1e-9, timeout: float | None = None
) -> dict[str, Any]:
    """Differences between the agent's book and IB's positions (sends nothing).

    Returns ``{"success", "matched", "differences", "expected", "actual"}``;
    on failure ``success`` and ``matched`` are False, ``actual`` is None (not
    known, not empty) and ``error`` says why.

    Raises:
        ValueError, TypeError: ``expected`` is not a mapping of symbols to numbers.
    """
    def finish(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return call()
        except (IBNiceFuncsError, OSError) as exc:
            _warn("reconcile_positions()", exc)
            return {"success": False, "matched": False, "differences": [],
                    "expected": dict(expected), "actual": None, "error": str(exc)}

    return _through(finish, "reconcile_positions", expected, tolerance=tolerance, timeout=timeout)


# -- getting out ------------------------------------------------------------------------


def kill_switch(symbol: Any, *, timeout: float | None = None) -> OrderResult:
    """Cancel the symbol's open orders and flatten its position at market."""
    return _order(f"kill_switch({symbol_label(symbol)})", symbol, "kill_switch", symbol,
                  timeout=timeout)


def chunk_kill(
    symbol: Any,
    max_order_size: float | None = None,
    slippage: Any = None,
    *,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Flatten the position in market orders of at most ``max_order_size`` USD each.

    The result is truthy exactly when the position is gone (the copybot
    agent tests ``if n.chunk_kill(...)``). ``slippage`` is accepted for
    ``n.chunk_kill(sym, max_usd_order_size, slippage)`` and ignored (market orders).

    Raises:
        ValueError, TypeError: bad arguments (nothing sent).
    """
    return _order(f"chunk_kill({symbol_label(symbol)}, {max_order_size!r})", symbol,
                  "chunk_kill", symbol, max_order_size, slippage, wrap=Outcome, timeout=timeout)


def close_position(symbol: Any, *, timeout: float | None = None) -> OrderResult:
    """Flatten the position in ``symbol`` with one market order (open orders stay)."""
    return _order(f"close_position({symbol_label(symbol)})", symbol, "close_position", symbol,
                  timeout=timeout)


def emergency_stop(*, timeout: float | None = None) -> dict[str, Any]:
    """Cancel every open order on the account, then flatten every position.

    First it latches a halt for the account: every agent process refuses
    opening orders until :func:`resume_trading` (closing orders still go).
    Safe to call twice. Returns ``{"success", "cancelled_orders", "closed",
    "remaining_orders", "remaining_positions", "error"}``.
    """
    return _order("emergency_stop()", None, "emergency_stop", timeout=timeout)


def resume_trading(*, timeout: float | None = None) -> dict[str, Any]:
    """Lift the halt ``emergency_stop()`` latched, for every agent process of the account.

    Returns ``{"success", "account", "was_halted", "halted_by", "error"}``;
    ``success`` False (one WARNING) when the shared state is unreachable.
    """
    return _order("resume_trading()", None, "resume_trading", timeout=timeout)
