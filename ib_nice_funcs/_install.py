"""install(module): put IB in front of an existing nice_funcs module."""

from __future__ import annotations

import functools
import logging
from typing import Any

__all__ = ["install"]

log = logging.getLogger("ib_nice_funcs")

#: The functions wrapped, and how to tell that IB gave nothing.
_WRAPPED = ("token_price", "get_current_price", "get_ohlcv_data", "get_data")


def _empty(result: Any) -> bool:
    if result is None:
        return True
    return bool(getattr(result, "empty", False))


def install(module: Any) -> Any:
    """Wrap ``module``'s data functions so IB is asked first.

    For each of ``token_price``, ``get_current_price``, ``get_ohlcv_data`` and
    ``get_data`` that ``module`` defines, the module's attribute is replaced by
    a wrapper that calls the ib_nice_funcs function of the same name and
    falls back to the module's own function when IB returns nothing (None or
    an empty frame) or when the symbol is not one IB can parse (e.g. a
    Solana mint address). Installing twice is harmless.

    Args:
        module: a nice_funcs-style module (or any object with those attributes).

    Returns:
        The same module, for chaining.
    """
    from . import nice_funcs

    originals: dict[str, Any] = getattr(module, "_ib_nice_funcs_originals", {})
    for name in _WRAPPED:
        current = getattr(module, name, None)
        if current is None:
            continue
        original = originals.get(name, current)
        originals[name] = original
        ours = getattr(nice_funcs, name)

        @functools.wraps(original)
        def wrapper(*args: Any, _ours: Any = ours, _original: Any = original, _name: str = name,
                    **kwargs: Any) -> Any:
            try:
                result = _ours(*args, **kwargs)
            except (ValueError, TypeError) as exc:
                log.debug("%s: not an IB symbol (%s); using the module's own", _name, exc)
                return _original(*args, **kwargs)
            if _empty(result):
                return _original(*args, **kwargs)
            return result

        wrapper.__ib_nice_funcs_wrapped__ = True  # type: ignore[attr-defined]
        setattr(module, name, wrapper)
    try:
        module._ib_nice_funcs_originals = originals
    except AttributeError:  # pragma: no cover - objects with __slots__
        pass
    return module
