"""Interactive Brokers behind one-line, synchronous nice_funcs calls.

    import ib_nice_funcs as n
    n.token_price("AAPL")
    n.get_ohlcv_data("BTC-USD", "1h", days_back=2)

Importing the package opens no socket, prints nothing and imports neither
ib_async, pandas, yfinance nor requests: names are resolved lazily on first
use, and the first call that needs the gateway connects.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# Public name -> module that defines it (resolved on first attribute access).
_EXPORTS: dict[str, str] = {
    # data
    "token_price": "nice_funcs",
    "get_current_price": "nice_funcs",
    "token_prices": "nice_funcs",
    "get_ohlcv_data": "nice_funcs",
    "get_data": "nice_funcs",
    "subscribe": "nice_funcs",
    "stream_prices": "nice_funcs",
    # trading
    "market_buy": "trading.module_api",
    "market_sell": "trading.module_api",
    "market_sell_usd": "trading.module_api",
    "limit_buy": "trading.module_api",
    "limit_sell": "trading.module_api",
    "place_order": "trading.module_api",
    "cancel_order": "trading.module_api",
    "cancel_all": "trading.module_api",
    "get_open_orders": "trading.module_api",
    "get_position": "trading.module_api",
    "get_all_positions": "trading.module_api",
    "get_token_balance_usd": "trading.module_api",
    "get_cash": "trading.module_api",
    "get_account_value": "trading.module_api",
    "get_balance": "trading.module_api",
    "kill_switch": "trading.module_api",
    "chunk_kill": "trading.module_api",
    "close_position": "trading.module_api",
    "emergency_stop": "trading.module_api",
    "resume_trading": "trading.module_api",
    "reconcile_positions": "trading.module_api",
    # the Moon Dev agents' own calls
    "ai_entry": "agent_calls",
    "fetch_wallet_holdings_og": "agent_calls",
    "fetch_wallet_token_single": "agent_calls",
    "close_all_positions": "agent_calls",
    "journal": "trade_journal.api",
    # plumbing
    "configure": "nice_funcs",
    "default_client": "nice_funcs",
    "close": "nice_funcs",
    "Client": "client",
    "Settings": "config",
    "PriceQuote": "freshness",
    "register_source": "sources",
    "DataSource": "sources",
    "unregister_source": "sources",
    "install": "_install",
    "parse_symbol": "symbols",
    "parse_timeframe": "timeframes",
    # errors
    "IBNiceFuncsError": "errors",
    "ConfigurationError": "errors",
    "ConnectionFailedError": "errors",
    "RequestTimeoutError": "errors",
    "UnknownSymbolError": "errors",
    "NoDataError": "errors",
    "PacingViolationError": "errors",
    "MarketDataNotSubscribedError": "errors",
    "SourceUnavailableError": "errors",
    "AllSourcesFailedError": "errors",
    "OrderRejectedError": "errors",
    "RiskLimitError": "errors",
    "LiveTradingDisabledError": "errors",
    "NoPositionError": "errors",
    "MarketDataLinesExhaustedError": "errors",
    "OrderSizeError": "errors",
    "ClientIdInUseError": "errors",
    "TradingHaltedError": "errors",
    "FleetUnavailableError": "errors",
    "NonAsciiSymbolError": "errors",
    "PositionUnknownError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'ib_nice_funcs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ._install import install
    from .agent_calls import (
        ai_entry,
        close_all_positions,
        fetch_wallet_holdings_og,
        fetch_wallet_token_single,
    )
    from .client import Client
    from .config import Settings
    from .errors import (
        AllSourcesFailedError,
        ClientIdInUseError,
        ConfigurationError,
        ConnectionFailedError,
        FleetUnavailableError,
        IBNiceFuncsError,
        LiveTradingDisabledError,
        MarketDataLinesExhaustedError,
        MarketDataNotSubscribedError,
        NoDataError,
        NonAsciiSymbolError,
        NoPositionError,
        OrderRejectedError,
        OrderSizeError,
        PacingViolationError,
        PositionUnknownError,
        RequestTimeoutError,
        RiskLimitError,
        SourceUnavailableError,
        TradingHaltedError,
        UnknownSymbolError,
    )
    from .nice_funcs import (
        close,
        configure,
        default_client,
        get_current_price,
        get_data,
        get_ohlcv_data,
        stream_prices,
        subscribe,
        token_price,
        token_prices,
    )
    from .sources import DataSource, register_source, unregister_source
    from .symbols import parse_symbol
    from .timeframes import parse_timeframe
    from .trade_journal.api import journal
    from .trading.module_api import (
        cancel_all,
        cancel_order,
        chunk_kill,
        close_position,
        emergency_stop,
        get_account_value,
        get_all_positions,
        get_balance,
        get_cash,
        get_open_orders,
        get_position,
        get_token_balance_usd,
        kill_switch,
        limit_buy,
        limit_sell,
        market_buy,
        market_sell,
        market_sell_usd,
        place_order,
        reconcile_positions,
        resume_trading,
    )
