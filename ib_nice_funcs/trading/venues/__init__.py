"""Where orders go: TWS / IB Gateway and the Client Portal, behind one shape.

- :mod:`.tws` and :mod:`.tws_closing`: TWS / IB Gateway over ib_async
  (coroutines for the loop thread);
- :mod:`.portal` and :mod:`.portal_closing`: the Client Portal (blocking
  HTTP, run by the router on a worker thread).

Only :mod:`ib_nice_funcs.trading.router` decides which one an operation uses.
"""
