"""Paper gateway simulators: a TWS socket-protocol server over a seeded market.

Public names: :class:`PaperMarket` (I/O-free synthetic market),
:class:`TWSSimulator` (asyncio server), :func:`run_simulator` (context
manager running one on a background thread) and :func:`serve_forever`
(foreground, for the CLI); :class:`MarketClock` (a settable market-hours
clock); :class:`PortalSimulator` (Client Portal REST over
HTTPS, sharing a TWS simulator's market and engine when given one) and
:func:`run_portal_simulator`.
"""

from ._history import PacingRules
from ._portal_runner import PortalHandle, run_portal_simulator
from .clock import MarketClock
from .market import PaperMarket
from .portal import PortalSimulator
from .runner import ServeInfo, SimulatorHandle, run_simulator, serve_forever
from .tws import TWSSimulator

__all__ = ["PaperMarket", "TWSSimulator", "run_simulator", "serve_forever", "PacingRules",
           "SimulatorHandle", "PortalSimulator", "PortalHandle", "run_portal_simulator",
           "MarketClock", "ServeInfo"]
