"""The ``nice_funcs_aster`` face: Aster DEX call shapes over IB.

Make ``src/nice_funcs_aster.py`` the one line::

    from ib_nice_funcs.aster import *

and an agent's ``n.ai_entry("BTC", 900, leverage=9)``, ``n.get_position("BTC")``,
``n.chunk_kill("BTC", 3, 199)``... trade on the configured IB account.
Names, argument order, result keys and failure values are Aster's; what
symbols, USD notional amounts and ``leverage`` mean at IB is in
:mod:`ib_nice_funcs.perp` (in short: ``BTC`` is ``BTC-USD``, amounts are USD
notional, ``leverage`` is checked and sizes nothing, risk limits always apply,
orders are market orders). Importing opens no connection; the first call
connects (settings: :func:`ib_nice_funcs.configure` and the environment).
"""

from __future__ import annotations

import math
from typing import Any

from . import perp
from .agent_calls import usd_amount_or_none
from .model import OrderResult

__all__ = [
    "DEFAULT_LEVERAGE",
    "DEFAULT_SYMBOL_SUFFIX",
    "ai_entry",
    "chunk_kill",
    "format_symbol",
    "get_account_balance",
    "get_best_bid_ask",
    "get_position",
    "get_symbol_precision",
    "get_token_balance_usd",
    "limit_buy",
    "limit_sell",
    "market_buy",
    "market_sell",
    "open_short",
    "token_price",
]

#: Aster's default; accepted for the same call shapes, never sizes an order here.
DEFAULT_LEVERAGE = 5
DEFAULT_SYMBOL_SUFFIX = "USDT"


def format_symbol(token: str) -> str:
    """Aster's spelling: ``BTC`` -> ``BTCUSDT`` (the package reads both as ``BTC-USD``)."""
    return token if token.endswith(DEFAULT_SYMBOL_SUFFIX) else f"{token}{DEFAULT_SYMBOL_SUFFIX}"


def get_symbol_precision(symbol: Any) -> tuple[int, int]:
    """``(price_precision, quantity_precision)``: IB rounds sizes itself;
    (2, 8) for crypto, (2, 0) else."""
    crypto = str(perp.coin(symbol)).endswith("-USD")
    return (2, 8) if crypto else (2, 0)


def token_price(address: Any) -> float:
    """Current price; ``0`` (plus one WARNING) on failure, as Aster's."""
    value = perp.price(address)
    return value if value is not None else 0


def get_best_bid_ask(symbol: Any) -> tuple[float | None, float | None]:
    """``(best_bid, best_ask)``; IB's one price here for both; ``(None, None)`` on failure."""
    value = perp.price(symbol)
    return (value, value) if value is not None else (None, None)


def get_position(token_mint_address: Any) -> dict[str, Any] | None:
    """``{position_amount (signed), entry_price, mark_price, pnl, pnl_percentage, is_long, ...}``.

    A flat account gives ``position_amount`` 0; None (plus one WARNING) when
    the position could not be read. ``pnl_percentage`` is the return on the
    position's cost (no leverage multiplier at IB).
    """
    return perp.position(token_mint_address)


def get_token_balance_usd(token_mint_address: Any) -> float:
    """Absolute USD value of the position; ``0`` when flat, NaN (one WARNING) when it
    could not be read: an unknown position is never reported as flat (every
    comparison with NaN is False, so no branch of an agent acts on it)."""
    pos = perp.position(token_mint_address)
    if not pos:
        return math.nan
    return abs(float(pos["position_amount"]) * float(pos["mark_price"]))


def market_buy(token: Any, amount: float, slippage: Any = None,
               leverage: float = DEFAULT_LEVERAGE) -> OrderResult | None:
    """Open or add to a long: buy ``amount`` USD notional at market. The order dict, or None."""
    perp.check_leverage(leverage)
    return perp.buy_usd(token, amount)


def limit_buy(token: Any, amount: float, slippage: Any = None,
              leverage: float = DEFAULT_LEVERAGE) -> OrderResult | None:
    """Like :func:`market_buy` (Aster chases the bid until filled; IB fills at market)."""
    return market_buy(token, amount, slippage, leverage)


def market_sell(token: Any, amount: float, slippage: Any = None,
                leverage: float = DEFAULT_LEVERAGE) -> OrderResult | None:
    """Close a long by ``amount`` USD (capped at the position), or open a
    short of ``amount`` when flat.

    Returns the order dict, or None (plus one WARNING) on failure.
    """
    perp.check_leverage(leverage)
    return perp.sell_usd(token, amount)


def limit_sell(token: Any, amount: float, slippage: Any = None,
               leverage: float = DEFAULT_LEVERAGE) -> OrderResult | None:
    """Like :func:`market_sell` (Aster chases the ask; IB fills at market)."""
    return market_sell(token, amount, slippage, leverage)


def open_short(token: Any, amount: float, slippage: Any = None,
               leverage: float = DEFAULT_LEVERAGE) -> OrderResult | None:
    """Sell ``amount`` USD notional short at market; the order dict or None.

    IB refuses shorts of crypto (and of stocks it cannot borrow): None and
    one WARNING then.
    """
    perp.check_leverage(leverage)
    what = f"open_short({perp.label(token)}, {amount!r})"
    if usd_amount_or_none(what, amount) is None:
        return None
    from .trading.module_api import market_sell_usd

    return perp.filled_or_none(market_sell_usd(perp.coin(token), amount))


def chunk_kill(token_mint_address: Any, max_usd_order_size: float, slippage: Any = None) -> bool:
    """Close the whole position (long or short) in market orders of at most
    ``max_usd_order_size`` USD.

    True when flat at the end (also when nothing was held). The number of
    orders is unbounded; the time is bounded by the ``chunked_order_budget_s``
    setting.
    """
    return perp.close_in_chunks(token_mint_address, max_usd_order_size)


def ai_entry(symbol: Any, amount: float, max_chunk_size: float | None = None,
             leverage: float = DEFAULT_LEVERAGE, use_limit: bool = True) -> bool:
    """Bring the long position up to ``amount`` USD notional, in chunks; True on success.

    Chunks are at most ``max_chunk_size`` and the ``max_order_usd`` setting.
    ``use_limit`` is accepted and ignored (market orders).
    """
    perp.check_leverage(leverage)
    return perp.enter(symbol, amount, max_chunk_size)


def get_account_balance() -> dict[str, float] | None:
    """``{"available", "total_equity", "position_margin", "unrealized_pnl"}``; None on failure."""
    return perp.account_balance()
