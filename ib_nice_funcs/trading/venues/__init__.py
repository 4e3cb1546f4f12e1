"""Where orders go: TWS / IB Gateway and the Client Portal, behind one shape.

- :mod:`.base`: the :class:`~.base.Venue` protocol both meet;
- :mod:`.tws` (orders), :mod:`.tws_account` (positions, account values, the
  risk snapshot) and :mod:`.tws_closing`: TWS / IB Gateway over ib_async
  (coroutines for the loop thread);
- :mod:`.portal` and :mod:`.portal_closing`: the Client Portal (blocking
  HTTP), which :mod:`.portal_failover` runs on a worker thread for one
  failover, as a :class:`~.base.Venue`.

Only :mod:`ib_nice_funcs.trading.router` decides which one an operation uses.
"""
