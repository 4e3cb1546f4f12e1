"""The order vocabulary both venues speak: order states (no I/O, no broker imports).

Below :mod:`ib_nice_funcs.trading` and :mod:`ib_nice_funcs.portal`; both
import it and it imports neither.
"""

from __future__ import annotations

__all__ = ["ACCEPTED_STATES", "DONE_STATES", "UNKNOWN"]

#: Statuses after which an order can no longer fill: ib_async's DoneStates
#: plus TWS's ``Inactive`` and the Client Portal's ``Rejected`` and ``Expired``.
DONE_STATES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive", "Rejected",
                         "Expired"})
#: Statuses of an order IB has accepted and is working.
ACCEPTED_STATES = frozenset({"Submitted", "PreSubmitted"})
#: The status of an order whose fate is not known (``success`` None).
UNKNOWN = "Unknown"
