"""The fleet: several agent processes trading one account through one gateway.

What they share, and where it lives:

- client ids (:mod:`.client_ids`): a process whose configured id is taken
  connects with the next free one of ``client_ids``;
- safety (:mod:`.guard`, used by the trading layer): the account-wide risk
  lock, the halt latch of ``emergency_stop()``, client-order-id claims, the
  opening orders the others count, and the daily-loss baseline, kept in a
  :mod:`.store`: files of this host (:mod:`.local`, always) or Redis
  (:mod:`.redis_store`, with ``redis_url``);
- data, with ``redis_url`` only: one market-data line per symbol
  (:mod:`.quotes`), one kept-up-to-date bar series per symbol and finished
  ranges (:mod:`.bars`), qualified contracts asked of IB once
  (:mod:`.contracts`), one historical pacing budget (:mod:`.pacing`) and
  a grant of IB's message rate per process by demand (:mod:`.messages`), all through
  one blocking client per use (:mod:`.link`); one WARNING per process when
  Redis goes away or comes back (:mod:`.health`);
- ``doctor``'s view of all this (:mod:`.status`), and a watcher's read of
  the halt, the day's baseline and the processes with working orders
  (:mod:`.view`, for the dashboard).

I/O-free rules (records, their encoding, keys, the exposure of working
orders, messages) live in :mod:`.state`. Importing this package imports
neither redis nor ib_async.
"""

from __future__ import annotations

__all__: list[str] = []
