"""The fleet: several agent processes trading one account through one gateway.

What they share, and how:

- client ids (:mod:`.client_ids`): a process whose configured id is taken
  connects with the next free one of a range;
- safety (:mod:`.guard`): the account-wide risk lock, the halt latch of
  ``emergency_stop()``, client-order-id claims and the daily-loss baseline,
  kept in a :mod:`.store`: files under the user's runtime directory
  (:mod:`.local`, the processes of one host) or Redis (:mod:`.redis_store`,
  every host that shares the URL).

I/O-free rules (keys, records, the pending-exposure sum, messages) live in
:mod:`.state`; the stores only move bytes. Importing this package imports
neither redis nor ib_async.
"""

from __future__ import annotations

__all__: list[str] = []
