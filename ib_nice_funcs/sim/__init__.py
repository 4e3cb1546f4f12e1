"""Paper gateway simulators: a TWS socket-protocol server over a seeded market.

Public names: :class:`PaperMarket` (I/O-free synthetic market),
:class:`TWSSimulator` (asyncio server), :func:`run_simulator` (context
manager running one on a background thread) and :func:`serve_forever`
(foreground, for the CLI).
"""

from ._history import PacingRules
from .market import PaperMarket
from .runner import SimulatorHandle, run_simulator, serve_forever
from .tws import TWSSimulator

__all__ = ["PaperMarket", "TWSSimulator", "run_simulator", "serve_forever", "PacingRules",
           "SimulatorHandle"]
