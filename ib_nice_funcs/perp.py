"""What the perp-exchange faces (:mod:`.aster`, :mod:`.hyperliquid`) share.

Both originals trade USD-notional perpetuals with a per-order leverage.
Mapped to IB:

* symbols: a bare coin name (``BTC``, ``ETH``, ``SOL``: the bases in
  :data:`~ib_nice_funcs.symbols.CRYPTO_BASES`) is that coin against USD
  (``BTC-USD``); anything else is read as the package reads it (``AAPL``,
  ``BTCUSDT``, ``EURUSD``);
* amounts are USD notional, as in the originals: ``market_buy(sym, 900)``
  buys $900 worth;
* ``leverage``: IB sets no leverage per order. The margin an order needs
  comes from the account's type (cash, Reg T or portfolio margin), so
  ``leverage`` is checked (a number >= 1, else ValueError) and otherwise
  ignored: it never makes an order bigger, and every order passes the risk
  limits (``max_position_usd``, ``max_exposure_usd``) on its notional;
* a sell beyond what is held opens a short, which IB allows for shortable
  stocks and refuses for crypto (PAXOS is long only): that refusal is the
  failure value and one WARNING;
* IB fills these as market orders: the originals' limit-order chase ends
  filled at about the touch, which is what a market order does here.

Every function returns the original's failure value (None, False, 0, an
empty frame) with one WARNING on an operational failure or symbol text that
names nothing, and raises ValueError / TypeError for programming errors.
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any

from .agent_calls import ai_entry as _top_up
from .agent_calls import usd_amount_or_none
from .errors import IBNiceFuncsError
from .model import OrderResult
from .symbols import CRYPTO_BASES
from .trading import module_api as api

__all__ = [
    "account_balance",
    "buy_usd",
    "check_leverage",
    "close_in_chunks",
    "coin",
    "enter",
    "filled_or_none",
    "label",
    "position",
    "price",
    "sell_usd",
]

log = logging.getLogger("ib_nice_funcs")


def coin(symbol: Any) -> Any:
    """The symbol the package trades for a perp face's ``symbol`` (``BTC`` -> ``BTC-USD``).

    Raises:
        TypeError: ``symbol`` is neither text nor a Contract.
    """
    if isinstance(symbol, str):
        text = symbol.strip().upper()
        return f"{text}-USD" if text in CRYPTO_BASES else symbol
    if hasattr(symbol, "secType") and hasattr(symbol, "symbol"):
        return symbol
    raise TypeError(f"symbol must be a str or an ib_async Contract, got {type(symbol).__name__}")


def label(symbol: Any) -> str:
    return symbol if isinstance(symbol, str) else getattr(symbol, "symbol", repr(symbol))


def check_leverage(leverage: Any) -> float:
    """``leverage`` as a float; it sizes nothing at IB (see the module docstring).

    Raises:
        TypeError: not a number.
        ValueError: below 1, NaN or infinite.
    """
    if isinstance(leverage, bool) or not isinstance(leverage, numbers.Real):
        raise TypeError(f"leverage must be a number, got {type(leverage).__name__}")
    value = float(leverage)
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"leverage must be a finite number >= 1, got {leverage!r}")
    return value


def price(symbol: Any) -> float | None:
    """Current price of the coin / symbol (None plus one WARNING on failure)."""
    from .nice_funcs import token_price

    return token_price(coin(symbol))


def position(symbol: Any) -> dict[str, Any] | None:
    """The position dict (nice_funcs and perp keys); None (one WARNING) when it could not be read.

    A flat account gives the dict with ``position_amount`` 0.
    """
    pos = api.get_position(coin(symbol))
    return None if pos.get("error") else pos


def filled_or_none(result: OrderResult) -> OrderResult | None:
    """The order result when it succeeded; None otherwise.

    A market order still working when the call's time ran out (the market is
    closed) is cancelled first, so that the agent, told it failed, does not
    find it filled later.
    """
    if result.get("success") and not result.get("timed_out"):
        return result
    order_id = result.get("order_id")
    if result.get("timed_out") and order_id is not None:
        api.cancel_order(order_id)
        log.info("%s %s: cancelled the unfilled order %s (market closed?)",
                    result.get("side") or "order", result.get("symbol"), order_id)
    return None


def buy_usd(symbol: Any, usd: Any) -> OrderResult | None:
    """Buy ``usd`` notional at market; the order result, or None (one WARNING) on failure."""
    what = f"buy({label(symbol)}, {usd!r})"
    if usd_amount_or_none(what, usd) is None:
        return None
    return filled_or_none(api.market_buy(coin(symbol), usd))


def sell_usd(symbol: Any, usd: Any) -> OrderResult | None:
    """Sell ``usd`` notional at market: first out of a long, the rest (if flat or short) short.

    Out of a long the sale is capped at the position (the originals' reduce-only
    close), so it never flips a long into a short.

    Returns:
        The order result, or None (one WARNING) on failure.
    """
    what = f"sell({label(symbol)}, {usd!r})"
    amount = usd_amount_or_none(what, usd)
    if amount is None:
        return None
    pos = position(symbol)
    if pos is None:
        return None
    if pos["position_amount"] > 0:
        held_usd = abs(pos["market_value"])
        pct = 100.0 if held_usd <= 0 else min(100.0, 100.0 * amount / held_usd)
        result = api.market_sell(coin(symbol), pct)
    else:
        result = api.market_sell_usd(coin(symbol), amount)
    return filled_or_none(result)


def close_in_chunks(symbol: Any, max_usd_order_size: Any = None) -> bool:
    """Flatten the position (long or short) in children of at most ``max_usd_order_size`` USD.

    True when nothing is left (also when nothing was held).
    """
    size = None if max_usd_order_size is None else usd_amount_or_none(
        f"chunk_kill({label(symbol)})", max_usd_order_size)
    return bool(api.chunk_kill(coin(symbol), size).get("success"))


def enter(symbol: Any, amount: Any, max_chunk_size: Any = None) -> bool:
    """Bring the long position up to ``amount`` USD
    (see :func:`~ib_nice_funcs.agent_calls.ai_entry`)."""
    return bool(_top_up(coin(symbol), amount, max_chunk_size))


def account_balance() -> dict[str, float] | None:
    """``{"available", "total_equity", "position_margin", "unrealized_pnl"}`` in USD;
    None on failure.

    ``total_equity`` is IB's NetLiquidation, ``available`` its AvailableFunds,
    ``unrealized_pnl`` the positions' unrealised P&L, and ``position_margin``
    the rest (equity - available - unrealised), so that the three parts add
    up to the equity as in Aster's answer.
    """
    from .nice_funcs import default_client

    trader = default_client().trading
    try:
        equity = trader.get_account_value()
        available = trader.get_balance()
        unrealized = sum(float(p["unrealized_pnl"]) for p in trader.get_all_positions())
    except (IBNiceFuncsError, OSError) as exc:
        log.warning("get_account_balance() failed: %s (check TWS / IB Gateway)", exc)
        return None
    return {
        "available": available,
        "total_equity": equity,
        "position_margin": equity - available - unrealized,
        "unrealized_pnl": unrealized,
    }
