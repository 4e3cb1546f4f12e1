"""Order argument validation: programming errors are caught before anything is sent.

Every check raises ``ValueError`` (bad value) or ``TypeError`` (wrong type)
with a message naming the argument and what is allowed, so an agent's bug
shows up at once instead of as a broker rejection later.

Every number has explicit bounds (:data:`MIN_QUANTITY`..:data:`MAX_QUANTITY`,
:data:`MIN_PRICE`..:data:`MAX_PRICE`, :data:`MIN_USD`..:data:`MAX_USD`), so a
typo such as ``limit_buy("AAPL", 100, 1e-300)`` (1e302 shares) or a quantity
of ``1e308`` is refused here, before anything is sent, and never reaches
Decimal arithmetic or IB.
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..symbols import parse_symbol

__all__ = [
    "MAX_PRICE",
    "MAX_QUANTITY",
    "MAX_USD",
    "MIN_PRICE",
    "MIN_QUANTITY",
    "MIN_USD",
    "ORDER_TYPES",
    "SIDES",
    "TIFS",
    "OrderRequest",
    "new_client_order_id",
    "quantity_for_usd",
    "check_usd_at_price",
    "validate_order",
    "validate_percentage",
    "validate_usd_amount",
]

ORDER_TYPES: tuple[str, ...] = ("MKT", "LMT", "STP", "TRAIL", "MOC", "LOC", "MIDPRICE")
SIDES: tuple[str, ...] = ("BUY", "SELL")
TIFS: tuple[str, ...] = ("DAY", "GTC", "IOC", "OPG", "FOK")

#: Order sizes, in units (shares, coins, base currency). The floor is one satoshi;
#: the ceiling is far above any agent's order and far below float trouble.
MIN_QUANTITY = 1e-8
MAX_QUANTITY = 1e9
#: Prices and price distances (limit, stop, trailing amount). The floor is below
#: any tick IB lists (sub-penny stocks trade in 0.0001) and refuses 1e-300.
MIN_PRICE = 1e-6
MAX_PRICE = 1e9
#: USD amounts of the ``*_buy`` helpers: a cent up to a billion dollars.
MIN_USD = 0.01
MAX_USD = 1e9

_ORDER_TYPE_ALIASES = {"MARKET": "MKT", "LIMIT": "LMT", "STOP": "STP"}
_NEEDS_LIMIT = frozenset({"LMT", "LOC"})
# MIDPRICE takes an optional price cap in lmtPrice.
_TAKES_LIMIT = frozenset({"LMT", "LOC", "MIDPRICE"})
# TRAIL takes an optional initial stop (IB's trailStopPrice).
_TAKES_STOP = frozenset({"STP", "TRAIL"})
_ORDER_REF_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")


@dataclass(frozen=True)
class OrderRequest:
    """A validated, normalised order; what the trading layer sends.

    Attributes:
        symbol: The symbol as given (stripped), or an ib_async Contract.
        side: ``BUY`` or ``SELL``.
        quantity: Positive quantity.
        order_type: One of :data:`ORDER_TYPES`.
        limit_price: Limit price (LMT, LOC; optional cap for MIDPRICE).
        stop_price: Stop trigger (STP; optional initial stop for TRAIL).
        trail_percent: Trailing distance in percent (TRAIL).
        trail_amount: Trailing distance in price units (TRAIL).
        tif: One of :data:`TIFS`.
        client_order_id: IB ``orderRef``; generated when not given, so a
            resend after a reconnect can be recognised.
    """

    symbol: Any
    side: str
    quantity: float
    order_type: str = "MKT"
    limit_price: float | None = None
    stop_price: float | None = None
    trail_percent: float | None = None
    trail_amount: float | None = None
    tif: str = "DAY"
    client_order_id: str = ""


def _number(name: str, value: object, low: float | None = None, high: float | None = None) -> float:
    """A positive finite float in ``[low, high]``, or the error naming ``name``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive number, got the bool {value!r}")
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__} {value!r}")
    try:
        x = float(value)
    except (OverflowError, ValueError):  # an int of 400 digits, a Fraction beyond float
        raise ValueError(f"{name} must be a positive, finite number, got {value!r:.40}") from None
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}")
    if low is not None and x < low:
        raise ValueError(f"{name} must be at least {low:g}, got {value!r}")
    if high is not None and x > high:
        raise ValueError(f"{name} must be at most {high:g}, got {value!r}")
    return x


def _choice(name: str, value: object, allowed: tuple[str, ...], aliases: dict[str, str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {', '.join(allowed)}; got {value!r}")
    s = value.strip().upper()
    s = aliases.get(s, s)
    if s not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return s


def _price(name: str, value: object) -> float:
    return _number(name, value, MIN_PRICE, MAX_PRICE)


def _optional_price(name: str, value: object) -> float | None:
    return None if value is None else _price(name, value)


def validate_order(
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
) -> OrderRequest:
    """Validate and normalise an order's arguments.

    Args:
        symbol: Non-empty symbol text, or an ib_async Contract.
        side: ``BUY``/``SELL`` (any case).
        quantity: In [:data:`MIN_QUANTITY`, :data:`MAX_QUANTITY`]; not a bool.
        order_type: One of :data:`ORDER_TYPES` (any case; ``market``,
            ``limit``, ``stop`` also accepted).
        limit_price: Required for LMT and LOC; optional cap for MIDPRICE.
            Prices are in [:data:`MIN_PRICE`, :data:`MAX_PRICE`].
        stop_price: Required for STP; optional initial stop for TRAIL.
        trail_percent: TRAIL distance in percent, in (0, 100).
        trail_amount: TRAIL distance in price units, a price.
        tif: One of :data:`TIFS` (any case).
        client_order_id: Your idempotency key (1-40 characters of letters,
            digits and ``_ . : -``); generated when None.

    Returns:
        The :class:`OrderRequest`.

    Raises:
        ValueError: a value outside what is allowed (message names the
            argument and the allowed values).
        TypeError: an argument of the wrong type.
    """
    if isinstance(symbol, str):
        sym: Any = symbol.strip()
        if not sym:
            raise ValueError(
                "symbol is empty; pass a symbol such as 'AAPL' or an ib_async Contract"
            )
        parse_symbol(symbol)  # the spelling (ASCII, a known form) before anything else
    elif hasattr(symbol, "secType") and hasattr(symbol, "symbol"):
        # Every field checked now; a duck-typed object becomes an ib_async Contract.
        sym = parse_symbol(symbol).contract
    else:
        raise TypeError(f"symbol must be a str or an ib_async Contract, got {symbol!r}")
    s = _choice("side", side, SIDES, {"B": "BUY", "S": "SELL"})
    qty = _number("quantity", quantity, MIN_QUANTITY, MAX_QUANTITY)
    otype = _choice("order_type", order_type, ORDER_TYPES, _ORDER_TYPE_ALIASES)
    t = _choice("tif", tif, TIFS, {})
    lmt = _optional_price("limit_price", limit_price)
    stp = _optional_price("stop_price", stop_price)

    if otype in _NEEDS_LIMIT and lmt is None:
        raise ValueError(f"limit_price is required for order_type {otype}")
    if lmt is not None and otype not in _TAKES_LIMIT:
        raise ValueError(
            f"limit_price is only used with order_type {', '.join(sorted(_TAKES_LIMIT))}; "
            f"got limit_price={limit_price!r} with {otype}"
        )
    if otype == "STP" and stp is None:
        raise ValueError("stop_price is required for order_type STP")
    if stp is not None and otype not in _TAKES_STOP:
        raise ValueError(
            f"stop_price is only used with order_type STP or TRAIL; got "
            f"stop_price={stop_price!r} with {otype}"
        )

    # IB accepts auction orders only as day orders, and opening-auction (OPG)
    # time in force only on market and limit orders: refuse here, not at IB.
    if otype in ("MOC", "LOC") and t != "DAY":
        raise ValueError(f"order_type {otype} needs tif='DAY', got tif={tif!r}")
    if t == "OPG" and otype not in ("MKT", "LMT"):
        raise ValueError(f"tif OPG is only for order_type MKT or LMT, got {otype}")

    pct = amt = None
    if otype == "TRAIL":
        if (trail_percent is None) == (trail_amount is None):
            raise ValueError(
                "order_type TRAIL needs exactly one of trail_percent (in (0, 100)) or "
                f"trail_amount (> 0); got trail_percent={trail_percent!r}, "
                f"trail_amount={trail_amount!r}"
            )
        if trail_percent is not None:
            pct = _number("trail_percent", trail_percent)
            if pct >= 100:
                raise ValueError(f"trail_percent must be in (0, 100), got {trail_percent!r}")
        else:
            amt = _price("trail_amount", trail_amount)
    elif trail_percent is not None or trail_amount is not None:
        raise ValueError(
            f"trail_percent/trail_amount are only used with order_type TRAIL, got {otype}"
        )

    if client_order_id is None:
        coid = new_client_order_id()
    elif not isinstance(client_order_id, str) or not _ORDER_REF_RE.match(client_order_id):
        raise ValueError(
            "client_order_id must be 1-40 characters of letters, digits and _ . : -, "
            f"got {client_order_id!r}"
        )
    else:
        coid = client_order_id
    return OrderRequest(sym, s, qty, otype, lmt, stp, pct, amt, t, coid)


def validate_usd_amount(x: float, name: str = "usd_amount") -> float:
    """A positive, finite USD amount.

    Args:
        x: The amount.
        name: Argument name for the error message.

    Returns:
        ``x`` as a float.

    Raises:
        ValueError: outside [:data:`MIN_USD`, :data:`MAX_USD`], NaN, inf, or a bool.
        TypeError: not a number.
    """
    return _number(name, x, MIN_USD, MAX_USD)


def check_usd_at_price(usd: float, price: float, name: str = "limit_price") -> None:
    """Refuse a USD amount and price whose quantity is beyond :data:`MAX_QUANTITY`.

    ``limit_buy("AAPL", 100, 1e-6)`` asks for 100 million shares: a typo,
    refused before anything is sent rather than sized and sent.

    Raises:
        ValueError: ``usd / price`` exceeds :data:`MAX_QUANTITY`.
    """
    if usd / price > MAX_QUANTITY:
        raise ValueError(
            f"${usd:,.2f} at {name}={price!r} is {usd / price:.3g} units, more than the "
            f"{MAX_QUANTITY:g} allowed in one order; check {name}"
        )


def validate_percentage(p: float, name: str = "percentage") -> float:
    """A percentage in (0, 100].

    Args:
        p: The percentage (100 = all of it).
        name: Argument name for the error message.

    Returns:
        ``p`` as a float.

    Raises:
        ValueError: outside (0, 100], NaN, or a bool.
        TypeError: not a number.
    """
    x = _number(name, p)
    if x > 100:
        raise ValueError(f"{name} must be in (0, 100], got {p!r}")
    return x


def _decimal(x: float) -> Decimal:
    # repr() gives the shortest decimal that round-trips, so 0.1 stays 0.1.
    return Decimal(repr(float(x)))


def quantity_for_usd(
    usd: float, price: float, size_increment: float = 1.0, min_size: float | None = None
) -> float:
    """How much ``usd`` buys at ``price``, rounded DOWN to ``size_increment``.

    Decimal arithmetic keeps ``0.3 / 0.1`` from becoming 2 increments.

    Args:
        usd: Amount to spend, > 0.
        price: Price per unit, > 0.
        size_increment: Tradable step: 1 for whole shares, e.g. 1e-8 for crypto.
        min_size: Smallest order the venue takes; default ``size_increment``.

    Returns:
        The quantity, or 0.0 when it is below ``min_size``.

    Raises:
        ValueError, TypeError: a non-positive or non-numeric argument.
    """
    u = _decimal(validate_usd_amount(usd, "usd"))
    p = _decimal(_number("price", price))
    inc = _decimal(_number("size_increment", size_increment))
    minimum = inc if min_size is None else _decimal(_number("min_size", min_size))
    steps = (u / p / inc).to_integral_value(rounding="ROUND_FLOOR")
    qty = steps * inc
    if qty < minimum:
        return 0.0
    return float(qty)


_counter = itertools.count()
_PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,12}$")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


def new_client_order_id(prefix: str = "inf") -> str:
    """A new unique, short, IB ``orderRef``-safe order id.

    Form ``{prefix}-{time}{seq}{random}``, e.g. ``inf-lq3k9x2a0f7c1k``: the
    time (ms, base 36) keeps ids from different runs apart, the process-wide
    counter keeps ids in one run apart, and random bits keep two processes
    started in the same millisecond apart.

    Args:
        prefix: 1-12 letters/digits naming the agent or strategy.

    Returns:
        The id (at most 40 characters).

    Raises:
        ValueError: a prefix with other characters or too long.
    """
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix must be 1-12 letters or digits, got {prefix!r}")
    stamp = _base36(time.time_ns() // 1_000_000)
    seq = _base36(next(_counter) % 36**3).rjust(3, "0")
    rand = _base36(int.from_bytes(os.urandom(4), "big")).rjust(7, "0")
    return f"{prefix}-{stamp}{seq}{rand}"
