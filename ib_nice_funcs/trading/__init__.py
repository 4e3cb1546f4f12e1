"""Trading: orders, closing, positions, behind one router and two venues.

Nothing here runs at import; modules are imported where they are used.

- :mod:`.trader`: the one place :class:`Trader` (``client.trading``) is
  assembled from the thin public siblings :mod:`.orders`, :mod:`.closing`
  and :mod:`.positions` (each method a coroutine plus a blocking one-liner);
- :mod:`.router`: the failover policy, once;
- :mod:`.venues`: TWS / IB Gateway (loop thread, async) and the Client
  Portal (blocking HTTP);
- pure rooms: :mod:`.sizing`, :mod:`.risk`, :mod:`.account`,
  :mod:`.validation`, :mod:`.results`, :mod:`.position_rows`,
  :mod:`.contracts`, :mod:`.ledger`;
- :mod:`.context`: what they share, passed down once;
- :mod:`.module_api`: the module-level nice_funcs functions.

The order vocabulary (request, order-type rows, result, states) is
:mod:`ib_nice_funcs.model`, below this package and the Client Portal's; the
trading commands of the CLI are :mod:`ib_nice_funcs.cli.trading`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Trader", "NoPositionError", "OrderSizeError"]

if TYPE_CHECKING:  # pragma: no cover
    from ..errors import NoPositionError, OrderSizeError
    from .trader import Trader


def __getattr__(name: str) -> Any:
    if name == "Trader":
        from .trader import Trader

        return Trader
    if name in __all__:
        from .. import errors

        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
