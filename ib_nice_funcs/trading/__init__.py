"""Trading helpers: order validation, risk checks, orders and positions.

Nothing here runs at import; modules are imported where they are used.
:class:`Trader` (``client.trading``) is resolved lazily from
:mod:`ib_nice_funcs.trading.orders`; the module-level nice_funcs functions
live in :mod:`ib_nice_funcs.trading.module_api`.
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
