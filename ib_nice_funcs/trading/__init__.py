"""Trading helpers: order validation, risk checks, orders and positions.

Nothing here runs at import; modules are imported where they are used.
:class:`Trader` (``client.trading``) is resolved lazily from
:mod:`ib_nice_funcs.trading.orders`; the module-level nice_funcs functions
live in :mod:`ib_nice_funcs.trading.module_api`. The order vocabulary
(request, order-type rows, result, states) is :mod:`ib_nice_funcs.model`,
below this package and the Client Portal's; the trading commands of the CLI
are :mod:`ib_nice_funcs.cli.trading`. Lower modules here are typed against
the protocols of :mod:`ib_nice_funcs.trading.context`, never against the
classes that build them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Trader", "NoPositionError", "OrderSizeError"]

if TYPE_CHECKING:  # pragma: no cover
    from .orders import NoPositionError, OrderSizeError, Trader


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import orders

        return getattr(orders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
