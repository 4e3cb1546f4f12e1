"""Falling back from one data source to the next: what is said, and how often.

When the first source fails and a later one answers, the caller gets data
from elsewhere; that must be said, but once, not on every call of a polling
agent: one WARNING per symbol and *outage* of the failed source. An outage
starts when a source fails for a connection-type reason (down, silent, timed
out, unavailable) after having answered, and ends when it answers again; the
next drop is a new outage. (While yfinance runs as a fallback, the yfinance
source demotes its own threads' third-party log records to DEBUG: this
package reports the failure itself, once.) :func:`demote_loggers` does the
same for good, for ib_async's loggers.

Also :func:`combine_errors`, one error for a request every source failed.

Threading contract: :class:`FallbackNotices` may be used from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from cachetools import LRUCache

from .errors import (
    AllSourcesFailedError,
    ConnectionFailedError,
    IBNiceFuncsError,
    RequestTimeoutError,
    SourceUnavailableError,
)

__all__ = ["FallbackNotices", "DemoteToDebug", "demote_loggers", "combine_errors"]

log = logging.getLogger("ib_nice_funcs")

#: Failures that mean "the source is out", not "it has no such data".
_OUTAGE_ERRORS = (ConnectionFailedError, RequestTimeoutError, SourceUnavailableError, OSError)


class FallbackNotices:
    """Once-per-symbol-and-outage WARNINGs for answers from a fallback source."""

    def __init__(self, max_remembered: int = 4096) -> None:
        self._lock = threading.Lock()
        self._down: set[str] = set()
        self._outage: Counter[str] = Counter()
        self._said: LRUCache[tuple, bool] = LRUCache(maxsize=max_remembered)

    def failed(self, source: str, error: BaseException) -> None:
        """``source`` failed; an outage-type error starts an outage unless one is on."""
        if not isinstance(error, _OUTAGE_ERRORS):
            return
        with self._lock:
            if source not in self._down:
                self._down.add(source)
                self._outage[source] += 1

    def answered(self, source: str) -> None:
        """``source`` answered: its outage (if any) is over."""
        if source in self._down:
            with self._lock:
                self._down.discard(source)

    def fell_back(self, what: str, symbol: str, errors: Mapping[str, BaseException],
                  answered_by: str) -> bool:
        """Log one WARNING for ``symbol`` answered by ``answered_by`` after ``errors``.

        Returns True when it was logged, False when already said in this outage.
        """
        if not errors:
            return False
        with self._lock:
            key = (symbol, answered_by, tuple(sorted((n, self._outage[n]) for n in errors)))
            if key in self._said:
                return False
            self._said[key] = True
        causes = "; ".join(f"{name}: {error}" for name, error in errors.items())
        log.warning(
            "%s: answered by %s instead of %s (%s). Said once per symbol and outage of %s",
            what, answered_by, ", ".join(errors), causes, " / ".join(errors),
        )
        return True


class DemoteToDebug(logging.Filter):
    """Turns another library's WARNING/ERROR records into DEBUG ones.

    This package reports every failure itself, once, with the symbol and a
    remedy; a library's own records for the same event would print a second,
    rawer line in every script that configures no logging. They stay
    visible at DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_filters: dict[str, DemoteToDebug] = {}
_filters_lock = threading.Lock()


def demote_loggers(names: Iterable[str]) -> None:
    """Demote these loggers' records to DEBUG for good (idempotent)."""
    with _filters_lock:
        for name in names:
            if name not in _filters:
                _filters[name] = DemoteToDebug()
                logging.getLogger(name).addFilter(_filters[name])


def combine_errors(
    what: str, errors: dict[str, BaseException], order: Sequence[str]
) -> IBNiceFuncsError:
    """One error for a request every source failed, naming each source's cause.

    When every source failed the same way (e.g. all said "unknown symbol"),
    the error keeps that type so callers can catch it precisely.
    """
    if not errors:
        return AllSourcesFailedError(f"{what}: no source answered in time", {})
    if len(errors) == 1:
        name, only = next(iter(errors.items()))
        detail = str(only)
    else:
        detail = "; ".join(f"{n}: {e}" for n, e in errors.items())
    kinds = {type(e) for e in errors.values()}
    if len(kinds) == 1:
        kind = kinds.pop()
        if issubclass(kind, IBNiceFuncsError) and kind is not AllSourcesFailedError:
            try:
                combined = kind(detail if what in detail else f"{what}: {detail}")
            except TypeError:  # an error class with a different constructor
                combined = next(iter(errors.values()))  # type: ignore[assignment]
            return combined
    return AllSourcesFailedError(f"{what}: every source failed ({detail})", errors)
