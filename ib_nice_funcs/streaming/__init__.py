"""Streaming: live tickers, kept-up-to-date bars, and price streams for agents.

* :class:`Tickers`: streaming market-data lines per client: hot symbols are
  answered from live ticks with no message; ``subscribe()`` /
  ``stream_prices()`` attach to the same lines. Budgeted (setting
  ``max_market_data_lines``), least recently used out first, renewed after a
  reconnect or IB's 1101.
* :class:`BarSubscriptions`: ``keepUpToDate`` historical subscriptions, so an
  agent polling bars sends one historical request per symbol and timeframe.
* :class:`Subscription` (callback on a worker thread) and
  :class:`PriceStream` (sync iterator) of :class:`PriceUpdate` tuples.

The policies (when a symbol goes live, staleness, budgets) are documented in
the two manager modules.
"""

from ._barsub import BarSubscriptions
from ._sinks import Mailbox, PriceStream, PriceUpdate, Subscription
from ._tickers import LiveQuote, MarketDataLinesExhaustedError, Tickers

__all__ = [
    "BarSubscriptions",
    "LiveQuote",
    "Mailbox",
    "MarketDataLinesExhaustedError",
    "PriceStream",
    "PriceUpdate",
    "Subscription",
    "Tickers",
]
