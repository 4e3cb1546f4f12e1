"""Commission and market-data cost maths for IBKR Pro (fixed pricing).

Plain arithmetic for the ``costs`` CLI command and for agents that want to
know what a trade or a data subscription costs before acting. Figures are
IBKR's published fixed-rate schedule for US accounts (interactivebrokers.com,
"Commissions" and "Market Data Pricing" pages, as summarised in the project's
``ib_facts.md``); exchange, regulatory and clearing pass-through fees are not
included. IB changes these schedules: treat the numbers as estimates.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "COMMISSION_SCHEDULE",
    "MARKET_DATA_FEES",
    "MarketDataFee",
    "commission_usd",
    "monthly_data_cost",
]

#: Monthly commissions (USD) at which IB waives non-professional data fees.
DATA_FEE_WAIVER_COMMISSIONS_USD = 30.0

# secType -> (what the rate applies to, rate, minimum per order, maximum as a
# fraction of trade value or None). "share"/"contract" rates are per unit;
# "value" rates are a fraction of the trade value.
COMMISSION_SCHEDULE: dict[str, tuple[str, float, float, float | None]] = {
    # Stocks/ETFs: USD 0.005 per share, min USD 1.00, max 1% of trade value.
    "STK": ("share", 0.005, 1.00, 0.01),
    # Options: USD 0.65 per contract, min USD 1.00 per order.
    "OPT": ("contract", 0.65, 1.00, None),
    # Spot FX (IDEALPRO): 0.20 basis points of trade value, min USD 2.00.
    "CASH": ("value", 0.20e-4, 2.00, None),
    # Crypto (Paxos): 0.18% of trade value (the highest tier), min USD 1.75,
    # max 1% of trade value.
    "CRYPTO": ("value", 0.0018, 1.75, 0.01),
}

_SEC_TYPE_ALIASES = {
    "STOCK": "STK",
    "ETF": "STK",
    "OPTION": "OPT",
    "FX": "CASH",
    "FOREX": "CASH",
}


def _number(name: str, value: object, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return x


def commission_usd(sec_type: str, quantity: float, price: float) -> float:
    """IBKR Pro fixed commission for one order, in USD.

    Stocks: USD 0.005/share, at least USD 1.00, at most 1% of the trade value
    (when 1% is below the minimum, the 1% cap is what IB charges). Options:
    USD 0.65/contract, at least USD 1.00. FX: 0.2 bps of the trade value, at
    least USD 2.00. Crypto: 0.18% of the trade value, at least USD 1.75, at most
    1% of the trade value.

    Args:
        sec_type: ``STK``, ``OPT``, ``CASH`` or ``CRYPTO`` (also ``stock``,
            ``option``, ``fx``, ``crypto``; any case).
        quantity: Shares, contracts or units; the sign (buy/sell) is ignored.
        price: Price per unit in USD (per option *contract*: premium x 100).

    Returns:
        The commission in USD; 0.0 for a zero quantity (nothing trades).

    Raises:
        ValueError: unknown ``sec_type``; NaN/inf or negative price.
        TypeError: non-numeric quantity or price.
    """
    if not isinstance(sec_type, str):
        raise TypeError(f"sec_type must be a str such as 'STK', got {sec_type!r}")
    key = sec_type.strip().upper()
    key = _SEC_TYPE_ALIASES.get(key, key)
    if key not in COMMISSION_SCHEDULE:
        raise ValueError(
            f"sec_type {sec_type!r} has no commission schedule here; use one of "
            f"{', '.join(COMMISSION_SCHEDULE)}"
        )
    if isinstance(quantity, bool) or not isinstance(quantity, numbers.Real):
        raise TypeError(f"quantity must be a number, got {type(quantity).__name__} {quantity!r}")
    qty = abs(float(quantity))
    if not math.isfinite(qty):
        raise ValueError(f"quantity must be finite, got {quantity!r}")
    px = _number("price", price, allow_zero=True)
    if qty == 0:
        return 0.0
    basis, rate, minimum, max_fraction = COMMISSION_SCHEDULE[key]
    value = qty * px
    fee = value * rate if basis == "value" else qty * rate
    fee = max(fee, minimum)
    if max_fraction is not None:
        fee = min(fee, value * max_fraction)
    return round(fee, 4)


@dataclass(frozen=True)
class MarketDataFee:
    """Monthly fee of one market-data subscription.

    Attributes:
        non_professional: USD/month for non-professional subscribers.
        professional: USD/month for professional subscribers, or None when
            this table has no professional price for it.
        description: What the subscription covers.
    """

    non_professional: float
    professional: float | None
    description: str


#: Monthly market-data fees by subscription name. Non-professional fees are
#: waived in a month with at least USD 30 of commissions; professional fees
#: never are.
MARKET_DATA_FEES: dict[str, MarketDataFee] = {
    "us_equity_bundle": MarketDataFee(
        4.50, None, "US Equity and Options Add-On Streaming Bundle (NYSE, NASDAQ, AMEX, OPRA)"
    ),
    "nyse": MarketDataFee(1.50, 50.00, "NYSE (Network A/CTA), top of book"),
    "nasdaq": MarketDataFee(1.50, 24.00, "NASDAQ (Network C/UTP), top of book"),
    "amex": MarketDataFee(1.50, None, "NYSE American, BATS, ARCA (Network B), top of book"),
}


def monthly_data_cost(
    subscriptions: Iterable[str], monthly_commissions: float, professional: bool = False
) -> float:
    """Market-data cost for a month, in USD.

    Args:
        subscriptions: Names from :data:`MARKET_DATA_FEES` (any case; repeats
            count once).
        monthly_commissions: Commissions paid in the month, USD.
        professional: Professional subscriber (higher fees, no waiver).

    Returns:
        The total; 0.0 for a non-professional with at least USD 30 of
        commissions.

    Raises:
        ValueError: an unknown subscription, one without a professional price
            when ``professional`` is set, or negative/NaN commissions.
    """
    if isinstance(subscriptions, str):
        subscriptions = [subscriptions]
    commissions = _number("monthly_commissions", monthly_commissions, allow_zero=True)
    names = {str(s).strip().lower() for s in subscriptions}
    total = 0.0
    for name in sorted(names):
        fee = MARKET_DATA_FEES.get(name)
        if fee is None:
            raise ValueError(
                f"unknown market-data subscription {name!r}; known: {', '.join(MARKET_DATA_FEES)}"
            )
        if professional:
            if fee.professional is None:
                raise ValueError(
                    f"no professional price for {name!r} in this table; professional prices "
                    f"are known for: "
                    + ", ".join(k for k, v in MARKET_DATA_FEES.items() if v.professional)
                )
            total += fee.professional
        else:
            total += fee.non_professional
    if not professional and commissions >= DATA_FEE_WAIVER_COMMISSIONS_USD:
        return 0.0
    return round(total, 2)
