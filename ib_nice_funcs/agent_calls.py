"""The Moon Dev agents' own calls, over IB: ``ai_entry``, wallet holdings, close-all.

The public Moon Dev agents (``trading_agent``, ``risk_agent``,
``strategy_agent``, ``copybot_agent``) call these besides the classic data
and order helpers. They are module-level functions like the rest: they
never raise on an operational failure (one WARNING and the original's
failure value instead), and raise ValueError / TypeError for programming
errors before anything is sent.

Solana ideas mapped to an IB account:

* a "wallet" is the configured IB account; its holdings are the account's
  positions (``Mint Address`` is the package's symbol, e.g. ``AAPL``,
  ``BTC-USD``) plus one cash row labelled with the agents' USDC mint address;
* the agents' USDC balance is the account's cash (IB's ``TotalCashValue``);
* ``ai_entry`` tops a position up to a USD target in market orders no larger
  than the ``max_order_usd`` setting, within ``chunked_order_budget_s``.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from typing import TYPE_CHECKING, Any

from .config import USDC_MINT
from .errors import IBNiceFuncsError, OrderSizeError
from .symbols import symbol_label
from .trading.results import DONE_STATES, Outcome

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "EntryResult",
    "WALLET_COLUMNS",
    "ai_entry",
    "close_all_positions",
    "fetch_wallet_holdings_og",
    "fetch_wallet_token_single",
]

log = logging.getLogger("ib_nice_funcs")

#: The columns of the agents' wallet frame.
WALLET_COLUMNS: tuple[str, ...] = ("Mint Address", "Amount", "USD Value")
#: A position within this share of its target counts as there (the original's 97%).
ENTRY_TOLERANCE = 0.03
#: Wallet rows worth less than this (in absolute USD) are dust, left out as the original does.
_DUST_USD = 0.05


class EntryResult(Outcome):
    """``ai_entry``'s result: a dict that is truthy exactly when the entry succeeded.

    Keys: ``success``, ``symbol``, ``target_usd``, ``position_usd`` (after
    the entry), ``bought_usd``, ``orders`` (each child's result), ``error``.
    The agents test the result for truth (``if n.ai_entry(...):``).
    """


def usd_amount_or_none(what: str, amount: Any) -> float | None:
    """``amount`` as a float; None (after one WARNING) when it is zero.

    An agent with no cash sizes its entries at 0: that is an operational
    outcome (nothing to do), not a programming error.

    Raises:
        TypeError: not a number.
        ValueError: negative, NaN or infinite.
    """
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(f"{what}: the USD amount must be a number, got {type(amount).__name__}")
    value = float(amount)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}: the USD amount must be >= 0 and finite, got {amount!r}")
    if value == 0:
        log.warning("%s: nothing sent: the USD amount is 0 (no cash to size the order with?)", what)
        return None
    return value


def ai_entry(
    symbol: Any,
    amount: float,
    max_chunk_size: float | None = None,
    *,
    timeout: float | None = None,
) -> EntryResult:
    """Bring the long position in ``symbol`` up to ``amount`` USD, in market orders.

    Each child order is at most ``max_chunk_size`` USD and never more than the
    ``max_order_usd`` setting; children follow each other as soon as the
    previous one filled. Nothing is bought when the position is already
    within 3% of ``amount``. Every child passes the risk limits; the first
    refused or failed child ends the entry.

    Blocks up to ``timeout`` seconds in total (default: the
    ``chunked_order_budget_s`` setting); each child up to the ``timeout``
    setting.

    Returns:
        An :class:`EntryResult`, truthy on success. A symbol that names
        nothing, a zero amount, a risk breach or a gateway failure give a
        falsy result and one WARNING.

    Raises:
        ValueError, TypeError: a negative / NaN amount or chunk size, a
            symbol that is not text.
    """
    from .nice_funcs import default_client, refused_symbol

    what = f"ai_entry({symbol_label(symbol)}, {amount!r})"
    target = usd_amount_or_none(what, amount)
    cap = None if max_chunk_size is None else usd_amount_or_none(what, max_chunk_size)
    result = EntryResult(success=False, symbol=symbol_label(symbol), target_usd=target or 0.0,
                         position_usd=0.0, bought_usd=0.0, orders=[], error=None)
    if target is None or (max_chunk_size is not None and cap is None):
        result["error"] = "the USD amount is 0"
        return result
    if refused_symbol(what, symbol):
        result["error"] = f"symbol {symbol_label(symbol)!r} is not recognised"
        return result
    client = default_client()
    settings = client.settings
    cap = min(cap or settings.max_order_usd, settings.max_order_usd)
    budget = settings.chunked_order_budget_s if timeout is None else client.resolve_timeout(timeout)
    deadline = time.monotonic() + budget
    trader = client.trading
    try:
        held = trader.get_token_balance_usd(symbol, timeout=min(settings.timeout, budget))
        result["position_usd"] = held
        need = target - held
        while need > target * ENTRY_TOLERANCE:
            left = deadline - time.monotonic()
            if left <= 0:
                raise IBNiceFuncsError(f"out of time after {len(result['orders'])} order(s)")
            try:
                child = trader.market_buy(symbol, min(cap, need),
                                          timeout=min(settings.timeout, left))
            except OrderSizeError:
                if result["orders"]:
                    break  # the rest is below one share / the smallest size: done
                raise
            result["orders"].append(child)
            bought = float(child.get("filled_qty") or 0.0) * float(child.get("avg_price") or 0.0)
            if bought <= 0:
                order_id = child.get("order_id")
                if order_id is not None and child.get("status") not in DONE_STATES:
                    # Not filled in time (market closed?): do not leave it working behind us.
                    trader.cancel_order(order_id, timeout=settings.timeout)
                raise IBNiceFuncsError(
                    f"a child order ended {child.get('status')} unfilled (market closed?)")
            result["bought_usd"] += bought
            need -= bought
        result["success"] = True
    except (IBNiceFuncsError, OSError) as exc:
        result["error"] = str(exc)
        log.warning("%s failed after buying $%.2f: %s", what, result["bought_usd"], exc)
    try:
        result["position_usd"] = trader.get_token_balance_usd(symbol, timeout=settings.timeout)
    except (IBNiceFuncsError, OSError) as exc:  # the entry's outcome stands; only the read failed
        log.debug("%s: could not re-read the position: %s", what, exc)
    return result


def _wallet_rows(timeout: float | None) -> list[dict[str, Any]]:
    from .nice_funcs import default_client

    trader = default_client().trading
    cash = trader.get_cash(timeout=timeout)
    rows: list[dict[str, Any]] = [{"Mint Address": USDC_MINT, "Amount": cash, "USD Value": cash}]
    for pos in trader.get_all_positions(timeout=timeout):
        value = float(pos["market_value"])
        if (pos.get("currency") or "USD") != "USD":
            value = trader.get_token_balance_usd(pos["symbol"], timeout=timeout)
        rows.append({"Mint Address": pos["symbol"], "Amount": float(pos["quantity"]),
                     "USD Value": value})
    return [r for r in rows if abs(r["USD Value"]) > _DUST_USD]


def fetch_wallet_holdings_og(address: Any = None, *, timeout: float | None = None) -> pd.DataFrame:
    """The account's holdings as the agents' wallet frame: ``Mint Address, Amount, USD Value``.

    ``address`` (a Solana wallet in the original) is accepted and ignored:
    the holdings are the configured IB account's. One row per position
    (``Mint Address`` is the symbol, e.g. ``AAPL``, ``BTC-USD``; shorts have
    negative amounts and values) and one cash row labelled with the USDC mint
    address the agents exclude from trading. Rows worth under $0.05 are left
    out, as in the original. Blocks up to a few ``timeout`` s.

    Returns:
        The frame; an empty one with those columns (plus one WARNING) on failure.
    """
    import pandas as pd

    try:
        rows = _wallet_rows(timeout)
    except (IBNiceFuncsError, OSError) as exc:
        log.warning("fetch_wallet_holdings_og() failed: %s (check TWS / IB Gateway; "
                    "'ib-nice-funcs doctor' tests it)", exc)
        rows = []
    frame = pd.DataFrame(rows, columns=list(WALLET_COLUMNS))
    return frame.astype({"Amount": "float64", "USD Value": "float64"})


def fetch_wallet_token_single(address: Any, token_mint_address: Any) -> pd.DataFrame:
    """The wallet frame's row for one symbol (empty when not held or on failure).

    Raises:
        TypeError: ``token_mint_address`` is neither text nor a Contract.
    """
    from .nice_funcs import refused_symbol
    from .symbols import parse_symbol
    from .trading.module_api import is_cash_symbol

    frame = fetch_wallet_holdings_og(address)
    if is_cash_symbol(token_mint_address):
        return frame[frame["Mint Address"] == USDC_MINT].reset_index(drop=True)
    what = f"fetch_wallet_token_single({symbol_label(token_mint_address)})"
    if refused_symbol(what, token_mint_address):
        return frame.iloc[0:0]
    name = parse_symbol(token_mint_address).symbol
    return frame[frame["Mint Address"] == name].reset_index(drop=True)


def close_all_positions(*, timeout: float | None = None) -> dict[str, Any]:
    """Close every position of the account (each with ``kill_switch``); cash stays.

    Returns:
        ``{"success", "closed": [kill_switch results], "error"}``; ``success``
        False (plus one WARNING) when a position could not be read or closed.
    """
    from .nice_funcs import default_client
    from .trading.module_api import kill_switch

    try:
        held = default_client().trading.get_all_positions(timeout=timeout)
    except (IBNiceFuncsError, OSError) as exc:
        log.warning("close_all_positions() failed: could not read the positions: %s", exc)
        return {"success": False, "closed": [], "error": str(exc)}
    closed = [kill_switch(p["symbol"], timeout=timeout) for p in held]
    failed = [c for c in closed if not c.get("success")]
    error = None
    if failed:
        error = "; ".join(f"{c.get('symbol')}: {c.get('error')}" for c in failed)
        log.warning("close_all_positions() left %d position(s) open: %s", len(failed), error)
    return {"success": not failed, "closed": closed, "error": error}
