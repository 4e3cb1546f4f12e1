"""Reading the journal: ``n.journal()`` and the ``--since`` forms it accepts."""

from __future__ import annotations

import logging
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings, get_settings
from .store import COLUMNS, JournalUnreadableError, read_rows, resolve_path
from .writer import flush_writer

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["journal", "read_journal", "parse_since", "journal_path", "SINCE_FORMS"]

log = logging.getLogger("ib_nice_funcs")

#: The accepted ``since`` forms, for error messages and ``--help``.
SINCE_FORMS = (
    "an ISO date or time in UTC ('2026-12-01', '2026-12-01T14:30', '2026-12-01 14:30:00+00:00'), "
    "a duration back from now ('90s', '30m', '4h', '7d', '2w'), 'today' (since 00:00 UTC), "
    "epoch seconds, or a datetime"
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(value: Any, now: float) -> float | None:
    """``value`` as UTC epoch seconds (None stays None); ``now`` anchors durations and 'today'.

    Raises:
        ValueError: a form not in :data:`SINCE_FORMS` (the message lists them).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"since={value!r} is not a time; use {SINCE_FORMS}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"since={value!r} is not a time; use {SINCE_FORMS}")
        return float(value)
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return stamp.timestamp()
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"since={value!r} is not a time; use {SINCE_FORMS}")
    text = value.strip()
    if text.lower() == "today":
        day = datetime.fromtimestamp(now, timezone.utc).replace(hour=0, minute=0, second=0,
                                                                 microsecond=0)
        return day.timestamp()
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2).lower()]
    try:
        return float(text) if re.fullmatch(r"\d+(\.\d+)?", text) else _iso(text)
    except ValueError:
        raise ValueError(f"since={value!r} is not a time; use {SINCE_FORMS}") from None


def _iso(text: str) -> float:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def journal_path(settings: Settings | None = None) -> Path | None:
    """The journal file the settings name (None: the journal is off)."""
    return resolve_path((settings or get_settings()).journal)


def _check_agent(agent: Any) -> str | None:
    if agent is None:
        return None
    if not isinstance(agent, str) or not agent.strip():
        raise ValueError(f"agent={agent!r} must be an agent's name (a non-empty string) or None")
    return agent.strip()


def read_journal(
    since: Any = None, agent: str | None = None, settings: Settings | None = None
) -> pd.DataFrame:
    """The journal as a frame, oldest first (strict: errors raise).

    Columns: ``time`` (UTC) and :data:`~ib_nice_funcs.trade_journal.store.COLUMNS`
    (``fill_time`` as UTC too). This process's queued rows are written
    first (waits up to 5 s).

    Raises:
        ValueError: an unknown ``since`` form, or an agent the journal has
            never seen (the message names the ones it has).
        JournalUnreadableError: the file is locked, corrupt or from another version.
    """
    settings = settings or get_settings()
    agent = _check_agent(agent)
    start = parse_since(since, float(settings.clock()))
    path = resolve_path(settings.journal)
    if path is None:
        return rows_frame([])
    flush_writer(path)
    rows = read_rows(path, start, None)
    if agent is not None:
        seen = sorted({r["agent"] for r in read_rows(path, None, None) if r["agent"]})
        if agent not in seen:
            raise ValueError(
                f"agent={agent!r} has no rows in the journal {path}; agents seen: "
                f"{', '.join(seen) or 'none yet'}")
        rows = [r for r in rows if r["agent"] == agent]
    return rows_frame(rows)


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Journal rows as a frame with ``time`` and ``fill_time`` as UTC timestamps."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["id", *COLUMNS])
    frame.insert(0, "time", pd.to_datetime(frame["ts"].astype(float), unit="s", utc=True))
    frame["fill_time"] = pd.to_datetime(frame["fill_time"].astype(float), unit="s", utc=True)
    return frame.drop(columns=["id"]).reset_index(drop=True)


def journal(since: Any = None, agent: str | None = None) -> pd.DataFrame:
    """Every journaled order event (``n.journal()``): sent, refused, failed over, status, fill,
    commission; one row each, oldest first.

    Args:
        since: Only rows from then on: an ISO date/time (UTC), a duration back
            ('30m', '7d'), 'today', epoch seconds or a datetime.
        agent: Only that agent's rows (the ``agent`` setting, default the script's name).

    Returns:
        A frame with ``time`` (UTC), ``kind``, ``agent``, ``symbol``, ``side``,
        ``quantity``, ``client_order_id``, ``order_id``, ``status``,
        ``reason``, ``arrival_price``, ``price``, ``exec_id``, ``commission``,
        ``slippage_bps`` (positive = adverse) and more; empty (with those
        columns, one WARNING) when the journal is off or cannot be read.

    Raises:
        ValueError: an unknown ``since`` form or agent (the message lists the accepted ones).
    """
    try:
        return read_journal(since, agent)
    except JournalUnreadableError as exc:
        log.warning("journal(): %s; returning an empty frame. Fix or move the file, or point "
                    "IB_NICE_FUNCS_JOURNAL at another path", exc)
        return rows_frame([])
