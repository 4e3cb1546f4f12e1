"""The ``nice_funcs_hyperliquid`` face: HyperLiquid call shapes over IB.

Make ``src/nice_funcs_hyperliquid.py`` the one line::

    from ib_nice_funcs.hyperliquid import *

Names, argument order, result shapes and failure values are HyperLiquid's;
symbols, USD notional amounts and ``leverage`` at IB are explained in
:mod:`ib_nice_funcs.perp`. The ``account`` argument (an eth_account object
there) is accepted everywhere and ignored: orders go to the configured IB
account; :func:`_get_account_from_env` returns a stand-in whose ``address``
is that account id.

Two call shapes of the trading agent that the original module does not have
are served as well: ``get_position(token)`` and
``get_token_balance_usd(token)`` without ``account`` (the position dict with
``position_amount``..., as Aster's), and ``chunk_kill``, ``limit_buy``,
``limit_sell`` with Aster's arguments. With ``account``, ``get_position``
returns HyperLiquid's 7-tuple.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from . import perp
from .aster import limit_buy, limit_sell  # the trading agent's exit path, same shape
from .errors import IBNiceFuncsError
from .model import OrderResult

__all__ = [
    "DEFAULT_LEVERAGE",
    "IBAccountRef",
    "_get_account_from_env",
    "adjust_leverage_usd_size",
    "ai_entry",
    "ask_bid",
    "cancel_all_orders",
    "chunk_kill",
    "close_position",
    "get_account_value",
    "get_all_positions",
    "get_balance",
    "get_current_price",
    "get_data",
    "get_position",
    "get_sz_px_decimals",
    "get_token_balance_usd",
    "kill_switch",
    "limit_buy",
    "limit_order",
    "limit_sell",
    "market_buy",
    "market_sell",
    "open_short",
    "pnl_close",
    "set_leverage",
]

log = logging.getLogger("ib_nice_funcs")

#: HyperLiquid's default; accepted for the same call shapes, never sizes an order here.
DEFAULT_LEVERAGE = 5
#: HyperLiquid serves at most this many bars per call.
MAX_ROWS = 5000


@dataclass(frozen=True)
class IBAccountRef:
    """What :func:`_get_account_from_env` returns: ``address`` is the IB account id (or "")."""

    address: str


def _get_account_from_env() -> IBAccountRef:
    """A stand-in for HyperLiquid's account object; needs no private key."""
    from .config import get_settings

    return IBAccountRef(get_settings().account or "")


def ask_bid(symbol: Any) -> tuple[float, float, list[Any]]:
    """``(ask, bid, l2_levels)``: IB's one price for both, no book levels;
    ``(0, 0, [])`` on failure."""
    value = perp.price(symbol)
    return (value, value, []) if value is not None else (0.0, 0.0, [])


def get_sz_px_decimals(symbol: Any) -> tuple[int, int]:
    """``(size_decimals, price_decimals)``: IB rounds sizes itself;
    (8, 2) for crypto, (0, 2) else."""
    return (8, 2) if str(perp.coin(symbol)).endswith("-USD") else (0, 2)


def get_current_price(symbol: Any) -> float:
    """Current price; ``0.0`` (plus one WARNING) on failure."""
    value = perp.price(symbol)
    return value if value is not None else 0.0


def _hl_tuple(symbol: Any, pos: dict[str, Any] | None) -> tuple[Any, ...]:
    name = perp.label(symbol)
    if not pos or not pos["position_amount"]:
        return [], False, 0, name, 0, 0, True
    amount = float(pos["position_amount"])
    raw = {"coin": name, "szi": str(amount), "entryPx": str(pos["entry_price"]),
           "returnOnEquity": str(pos["pnl_percentage"] / 100.0),
           "unrealizedPnl": str(pos["pnl"]), "positionValue": str(abs(pos["market_value"]))}
    return ([raw], True, amount, name, float(pos["entry_price"]), float(pos["pnl_percentage"]),
            amount > 0)


def get_position(symbol: Any, account: Any = None) -> Any:
    """The position, in the caller's shape.

    With ``account`` (HyperLiquid's shape): ``(positions, im_in_pos, pos_size,
    pos_sym, entry_px, pnl_perc, is_long)``; the no-position tuple (plus one
    WARNING) when it could not be read. Without (the trading agent's shape):
    the dict with ``position_amount``, ``entry_price``, ``mark_price``,
    ``pnl``, ``pnl_percentage``, ``is_long``; None on failure.
    """
    pos = perp.position(symbol)
    return pos if account is None else _hl_tuple(symbol, pos)


def get_token_balance_usd(token_mint_address: Any, account: Any = None) -> float:
    """Absolute USD value of the position; ``0`` when flat, NaN (one WARNING) when it
    could not be read: an unknown position is never reported as flat (every
    comparison with NaN is False, so no branch of an agent acts on it)."""
    pos = perp.position(token_mint_address)
    if not pos:
        return math.nan
    return abs(float(pos["position_amount"]) * float(pos["mark_price"]))


def set_leverage(symbol: Any, leverage: Any, account: Any = None) -> dict[str, Any]:
    """Checks ``leverage`` (ValueError below 1); IB has no per-symbol leverage to set."""
    perp.check_leverage(leverage)
    return {"status": "ok", "leverage": leverage, "note": "IB sets margin by account type"}


def adjust_leverage_usd_size(symbol: Any, usd_size: float, leverage: Any,
                             account: Any = None) -> tuple[Any, float]:
    """``(leverage, size in units)`` for ``usd_size`` USD at the current price (0 on failure)."""
    set_leverage(symbol, leverage, account)
    value = perp.price(symbol)
    return leverage, (float(usd_size) / value if value else 0.0)


def cancel_all_orders(account: Any = None) -> None:
    """Cancel every open order on the account."""
    from .trading.module_api import cancel_all

    cancel_all()


def limit_order(coin: Any, is_buy: bool, sz: float, limit_px: float, reduce_only: bool,
                account: Any = None) -> OrderResult | dict[str, Any]:
    """A GTC limit order of ``sz`` units at ``limit_px``; the order result dict.

    ``reduce_only`` caps a sell at the long position held (and a buy at the
    short), as HyperLiquid does; nothing is sent when that leaves nothing.
    """
    from .trading.module_api import place_order

    size = float(sz)
    if reduce_only:
        pos = perp.position(coin)
        held = 0.0 if pos is None else float(pos["position_amount"])
        size = min(size, max(0.0, held if not is_buy else -held))
        if size <= 0:
            log.warning("limit_order(%s): nothing sent: reduce_only and no position to reduce",
                        perp.label(coin))
            return {"success": False, "error": "reduce_only with no position to reduce"}
    return place_order(perp.coin(coin), "BUY" if is_buy else "SELL", size, "LMT",
                       limit_price=limit_px, tif="GTC")


def kill_switch(symbol: Any, account: Any = None) -> OrderResult | None:
    """Close the position at market (after cancelling the symbol's orders); None when flat."""
    from .trading.module_api import kill_switch as close_now

    result = close_now(perp.coin(symbol))
    return None if result.get("status") == "NoPosition" else result


def pnl_close(symbol: Any, target: float, max_loss: float, account: Any = None) -> bool:
    """Close when the P&L % reaches ``target`` or falls to ``max_loss``; True when it closed."""
    pos = perp.position(symbol)
    if not pos or not pos["position_amount"]:
        return False
    if pos["pnl_percentage"] >= target or pos["pnl_percentage"] <= max_loss:
        kill_switch(symbol, account)
        return True
    return False


def get_account_value(account: Any = None) -> float:
    """Net liquidation value in USD; ``0.0`` (plus one WARNING) on failure."""
    from .trading.module_api import get_account_value as net_liquidation

    return net_liquidation()


def get_balance(account: Any = None) -> float:
    """Funds available for new positions in USD; ``0.0`` (plus one WARNING) on failure."""
    from .trading.module_api import get_balance as available

    return available()


def get_all_positions(account: Any = None) -> list[dict[str, Any]]:
    """``[{"symbol", "size", "entry_price", "pnl_percent", "is_long"}]``;
    ``[]`` (one WARNING) on failure."""
    from .trading.module_api import get_all_positions as every

    return [{"symbol": p["symbol"], "size": float(p["quantity"]),
             "entry_price": float(p["avg_cost"]), "pnl_percent": float(p["unrealized_pnl_pct"]),
             "is_long": p["quantity"] > 0}
            for p in every() or []]


def market_buy(symbol: Any, usd_size: float, account: Any = None) -> OrderResult | None:
    """Buy ``usd_size`` USD notional at market; the order result, or None on failure."""
    return perp.buy_usd(symbol, usd_size)


def market_sell(symbol: Any, usd_size: float, account: Any = None) -> OrderResult | None:
    """Sell ``usd_size`` USD notional at market (out of a long first, then
    short); None on failure."""
    return perp.sell_usd(symbol, usd_size)




def close_position(symbol: Any, account: Any = None) -> OrderResult | None:
    """Close the position at market; None when flat."""
    return kill_switch(symbol, account)


def chunk_kill(token_mint_address: Any, max_usd_order_size: float | None = None,
               slippage: Any = None) -> bool:
    """Close the whole position in market orders of at most
    ``max_usd_order_size`` USD; True when flat."""
    return perp.close_in_chunks(token_mint_address, max_usd_order_size)


def ai_entry(symbol: Any, amount: float, max_chunk_size: float | None = None,
             leverage: float = DEFAULT_LEVERAGE, account: Any = None) -> bool:
    """Bring the long position up to ``amount`` USD notional; True on success."""
    perp.check_leverage(leverage)
    return perp.enter(symbol, amount, max_chunk_size)


def open_short(token: Any, amount: float, slippage: Any = None,
               leverage: float = DEFAULT_LEVERAGE, account: Any = None) -> OrderResult | None:
    """Sell ``amount`` USD notional short at market; None (plus one WARNING) when refused."""
    from .aster import open_short as short

    return short(token, amount, slippage, leverage)


def get_data(symbol: Any, timeframe: str = "15m", bars: int = 100,
             add_indicators: bool = True) -> Any:
    """The last ``bars`` bars (at most 5000) as HyperLiquid's frame.

    Columns ``timestamp`` (naive UTC) ``open high low close volume`` and, with
    ``add_indicators``, ``sma_20 sma_50 rsi`` MACD 12/26/9 and Bollinger 5/2
    (:mod:`ib_nice_funcs.perp_frames`). Timeframes as HyperLiquid and the
    collector write them (``15m 1h 4h 6h 12h 1d 3d 1w 1month``). An empty
    ``DataFrame()`` (plus one WARNING) on failure.

    Raises:
        ValueError, TypeError: unknown timeframe, bars < 1, a symbol that is not text.
    """
    import pandas as pd

    from .nice_funcs import default_client, refused_symbol
    from .perp_frames import hyperliquid_frame
    from .timeframes import days_for_bars

    bars = min(bars, MAX_ROWS) if isinstance(bars, int) and not isinstance(bars, bool) else bars
    days = days_for_bars(timeframe, bars)
    name = perp.coin(symbol)
    if not str(name).endswith("-USD"):
        # Stocks trade ~6.5 h on weekdays: ask for enough calendar days to hold ``bars``.
        days = days * 24 / 6.5 + 3
    what = f"get_data({perp.label(symbol)}, {timeframe!r}, {bars!r})"
    if refused_symbol(what, name):
        return pd.DataFrame()
    try:
        frame = default_client().ohlcv(name, timeframe, days)
    except (IBNiceFuncsError, OSError) as exc:
        log.warning("%s failed: %s", what, exc)
        return pd.DataFrame()
    return hyperliquid_frame(frame.iloc[-bars:].reset_index(drop=True), add_indicators)
