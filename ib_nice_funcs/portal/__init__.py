"""Client Portal Web API (CP Gateway) client: the backup path when TWS / IB Gateway is down.

Layers, each in its own module:

* :mod:`.throttle`: token buckets, concurrency caps and the 429 penalty box
  (I/O-free, fake-clock testable);
* :mod:`.mapping` and :mod:`.order_mapping`: JSON <-> this package's shapes
  (I/O-free);
* :mod:`.http`: one ``requests`` Session with TLS, GET-only retries, timeouts;
* :mod:`.session`: status, re-auth, pre-flights, the tickle keep-alive;
* :mod:`.client`: contracts, snapshots, history, portfolio, live orders;
* :mod:`.orders`: the question/reply loop, idempotent cOIDs, cancels.

The data source built on them is :class:`ib_nice_funcs.sources.portal.PortalSource`.
"""

from .client import PortalClient
from .orders import OrderDesk
from .throttle import PenaltyBox, Throttle, TokenBucket

__all__ = ["OrderDesk", "PenaltyBox", "PortalClient", "Throttle", "TokenBucket"]
