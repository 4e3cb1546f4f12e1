"""The built-in sources and the order a Client asks its sources in.

:func:`build_source` makes a built-in source (``ib``, ``portal``,
``yfinance``); :func:`ordered_sources` turns a ``source=`` argument into
the names to ask, the configured sources first (by position) and the
registered ones by priority; :func:`ib_first` says whether IB is asked
first (then a fresh live ticker may answer without asking anything). The
Client keeps the sources it built; nothing here holds state. Each built-in
source's module is imported only when that source is built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import SourceUnavailableError
from ..freshness import utc_from_epoch
from . import BUILTIN_PRIORITY_STEP, registered_sources

if TYPE_CHECKING:  # pragma: no cover
    from .._gateway import IBGateway
    from ..config import Settings

__all__ = ["BUILTIN_SOURCES", "build_source", "ib_first", "ordered_sources",
           "unknown_source_message"]

#: The sources this package brings; ``source=`` also takes ``"auto"`` and registered names.
BUILTIN_SOURCES: tuple[str, ...] = ("ib", "portal", "yfinance")


def build_source(name: str, settings: Settings, gateway: Callable[[], IBGateway]) -> Any:
    """A new built-in source called ``name``, or None when ``name`` is no built-in one.

    ``gateway()`` gives the IB connection manager (asked only for ``ib``).

    Raises:
        SourceUnavailableError: the Client Portal source is not in this version.
    """
    if name == "ib":
        from .ib import IBSource

        return IBSource(gateway())
    if name == "yfinance":
        from .yahoo import YahooSource

        clock = settings.clock
        return YahooSource(now=lambda: utc_from_epoch(clock()))
    if name == "portal":
        try:
            from .portal import PortalSource
        except ImportError:
            raise SourceUnavailableError(
                "the Client Portal source is not available in this version"
            ) from None
        return PortalSource(settings)
    return None


def unknown_source_message(configured: Sequence[str], name: str) -> str:
    """The ValueError message for a ``source=`` naming no source; lists the valid ones."""
    valid = ["auto", *configured, *registered_sources()]
    return f"unknown source {name!r}; valid: {', '.join(dict.fromkeys(valid))}"


def ordered_sources(configured: Sequence[str], source: str) -> list[str]:
    """Names of the sources a data call with ``source=`` asks, in order.

    ``configured`` is the ``sources`` setting (priorities 10, 20, 30... by
    position); ``"auto"`` (or empty) adds the registered sources by priority.

    Raises:
        TypeError: ``source`` is not a string.
        ValueError: ``source`` names no configured or registered source.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a string, not {type(source).__name__}")
    key = source.strip().lower()
    extra = registered_sources()
    if key in ("", "auto"):
        ranked = [(BUILTIN_PRIORITY_STEP * (k + 1), n) for k, n in enumerate(configured)]
        ranked += [(prio, n) for n, (_, prio) in extra.items() if n not in configured]
        return [n for _, n in sorted(ranked, key=lambda p: p[0])]
    if key in BUILTIN_SOURCES or key in extra or key in configured:
        return [key]
    raise ValueError(unknown_source_message(configured, key))


def ib_first(configured: Sequence[str], source: str) -> bool:
    """Whether IB is the first source asked for ``source`` (no registered source ranks above it)."""
    if source == "ib":
        return True
    if source != "auto" or configured[0] != "ib":
        return False
    return all(prio >= BUILTIN_PRIORITY_STEP for _, prio in registered_sources().values())
