"""One argument check shared by the timeframe and pacing arithmetic.

Standard library only (``timeframes`` and ``pacing`` import it and are
themselves imported without pandas).
"""

from __future__ import annotations

import math
import numbers

__all__ = ["positive_number"]


def positive_number(name: str, value: object) -> float:
    """``value`` as a float when it is a positive, finite number.

    Raises:
        ValueError: ``value`` is a bool, zero, negative, NaN or infinite.
        TypeError: ``value`` is not a number.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive number, got the bool {value!r}")
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}")
    return x
