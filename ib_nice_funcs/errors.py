"""Exception hierarchy and Interactive Brokers error codes.

`Client` raises these; the module-level nice_funcs functions catch them and
turn them into ``None`` / an empty frame / ``{"success": False, ...}`` plus
one WARNING. Each exception message names what was asked, what happened and
what to do about it.

IB's numeric error codes are grouped here, in one place, as named frozensets;
:func:`classify_ib_error` decides whether a code is informational, a reason to
retry later, or a reason to fall back to the next source.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "IBNiceFuncsError",
    "ConfigurationError",
    "ConnectionFailedError",
    "RequestTimeoutError",
    "UnknownSymbolError",
    "NonAsciiSymbolError",
    "NoDataError",
    "PacingViolationError",
    "MarketDataNotSubscribedError",
    "MarketDataLinesExhaustedError",
    "SourceUnavailableError",
    "AllSourcesFailedError",
    "OrderRejectedError",
    "RiskLimitError",
    "LiveTradingDisabledError",
    "NoPositionError",
    "OrderSizeError",
    "ClientIdInUseError",
    "TradingHaltedError",
    "FleetUnavailableError",
    "PositionUnknownError",
    "classify_ib_error",
]


class IBNiceFuncsError(Exception):
    """Root of every error this package raises on an operational failure."""


class ConfigurationError(IBNiceFuncsError, ValueError):
    """A setting (from ``configure()`` or the environment) is invalid."""


class ConnectionFailedError(IBNiceFuncsError, ConnectionError):
    """The gateway could not be reached, refused us, or dropped the connection."""


class RequestTimeoutError(IBNiceFuncsError, TimeoutError):
    """A request got no answer within its timeout."""


class UnknownSymbolError(IBNiceFuncsError):
    """The source has no instrument for the symbol (IB error 200)."""


class NonAsciiSymbolError(UnknownSymbolError, ValueError):
    """Symbol text with non-ASCII characters (``"ıbm"``, ``"ſpy"``, ``"ﬁ"``); nothing was sent.

    Tickers are ASCII. Upper-casing such text would turn look-alikes into
    other tickers (``"ıbm".upper() == "IBM"``), so it is refused instead. A
    ValueError for :class:`~ib_nice_funcs.client.Client` callers (bad
    input); an :class:`UnknownSymbolError` for the module-level functions,
    which return their failure value and log one WARNING, as for any symbol
    no source knows (agents often take symbols from text they did not write).
    """


class NoDataError(IBNiceFuncsError):
    """The request was understood but returned no data."""


class PacingViolationError(IBNiceFuncsError):
    """IB refused a historical request for breaking its pacing rules (error 162)."""


class MarketDataNotSubscribedError(IBNiceFuncsError):
    """The account has no market-data subscription for the instrument."""


class SourceUnavailableError(IBNiceFuncsError):
    """A source cannot serve the request at all (not installed, switched off...)."""


class AllSourcesFailedError(IBNiceFuncsError):
    """Every source in the order failed; ``errors`` maps source name to its error."""

    def __init__(self, message: str, errors: dict[str, BaseException] | None = None) -> None:
        super().__init__(message)
        self.errors: dict[str, BaseException] = dict(errors or {})


class OrderRejectedError(IBNiceFuncsError):
    """The broker rejected an order; ``code`` is IB's error code when known."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RiskLimitError(IBNiceFuncsError):
    """An order would breach a risk limit; nothing was sent.

    ``breach`` is the :class:`ib_nice_funcs.trading.risk.RiskBreach` found.
    """

    def __init__(self, message: str, breach: object | None = None) -> None:
        super().__init__(message)
        self.breach = breach


class LiveTradingDisabledError(IBNiceFuncsError):
    """An order was aimed at a live (non-paper) account without the explicit switch."""


class MarketDataLinesExhaustedError(IBNiceFuncsError):
    """Every market-data line of the budget (``max_market_data_lines``) is
    held by a subscription."""


class NoPositionError(IBNiceFuncsError):
    """A sell or close was asked for a symbol the account holds none of (nothing sent)."""


class OrderSizeError(IBNiceFuncsError):
    """An amount is below the smallest tradable size at the current price (nothing sent)."""


class ClientIdInUseError(ConnectionFailedError):
    """IB refused the API client id: another program holds it (IB error 326)."""


class TradingHaltedError(IBNiceFuncsError):
    """Opening orders are refused: an ``emergency_stop()`` latched a halt for the account.

    Closing orders still go. ``resume_trading()`` or ``ib-nice-funcs resume``
    lifts the halt.
    """


class FleetUnavailableError(IBNiceFuncsError):
    """The state shared by the agent processes of an account (Redis, or the
    per-host lock file) cannot be reached, so an opening order cannot be
    checked against the account-wide limits (nothing was sent)."""


class PositionUnknownError(IBNiceFuncsError):
    """Raised when an agent tests the truth of a value that is not known.

    The module-level ``get_position`` returns, when it fails, a dict whose
    ``has_position`` and ``quantity`` are :class:`~ib_nice_funcs.trading.position_rows.Unknown`:
    ``if not pos["has_position"]: buy`` raises this instead of buying again
    on a position that may exist. Check ``pos["known"]`` first.
    """


# --- IB error codes ---------------------------------------------------------

#: Connectivity between TWS/Gateway and IB's servers was lost.
CONNECTIVITY_LOST = frozenset({1100, 2110})
#: Connectivity restored; 1101 means subscriptions were lost and must be redone.
CONNECTIVITY_RESTORED_DATA_LOST = frozenset({1101})
CONNECTIVITY_RESTORED_DATA_KEPT = frozenset({1102})
#: The API client is not connected or could not connect.
NOT_CONNECTED = frozenset({502, 504, 1300})
#: Client id already in use by another API client.
CLIENT_ID_IN_USE = frozenset({326})
#: No security definition for the request.
UNKNOWN_CONTRACT = frozenset({200})
#: Invalid request parameters (bad bar size, duration...).
INVALID_REQUEST = frozenset({321, 320})
#: Historical data service errors: pacing violation, no data, query cancelled.
HISTORICAL_SERVICE = frozenset({162, 165, 366})
#: Market data is not subscribed (delayed data may be available).
NOT_SUBSCRIBED = frozenset({354, 10089, 10090, 10167, 10168, 10186, 10197})
#: Order (or a cancel of it) refused by IB: 10147 names an order id that is
#: not open, 10148 one whose state cannot be cancelled.
ORDER_REJECTED = frozenset({201, 203, 110, 103, 135, 161, 10147, 10148})
#: Order cancelled (also sent as confirmation of our own cancel).
ORDER_CANCELLED = frozenset({202})
#: Order warnings: the order stands.
ORDER_WARNING = frozenset({399, 2109})
#: Informational "farm connection is OK" and friends.
INFORMATIONAL = frozenset(range(2100, 2200)) - {2110}

ErrorAction = Literal["info", "retry", "fallback", "reject", "fail"]


def classify_ib_error(code: int) -> ErrorAction:
    """Decide what an IB error code means for a request.

    Args:
        code: IB's numeric error code.

    Returns:
        ``"info"`` (log at debug, nothing failed), ``"retry"`` (transient: try
        again later on the same source), ``"fallback"`` (this source cannot
        answer: try the next one), ``"reject"`` (an order was refused) or
        ``"fail"`` (the request is wrong; another source will not help).
    """
    if code in INFORMATIONAL or code in CONNECTIVITY_RESTORED_DATA_KEPT or code in ORDER_WARNING:
        return "info"
    if code in CONNECTIVITY_LOST or code in CONNECTIVITY_RESTORED_DATA_LOST:
        return "retry"
    if code in ORDER_REJECTED:
        return "reject"
    if code in INVALID_REQUEST:
        return "fail"
    if (
        code in NOT_CONNECTED
        or code in CLIENT_ID_IN_USE
        or code in UNKNOWN_CONTRACT
        or code in HISTORICAL_SERVICE
        or code in NOT_SUBSCRIBED
    ):
        return "fallback"
    return "fallback"
