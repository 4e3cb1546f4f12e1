"""The journal's SQLite file: schema, where it lives, writing rows and reading them.

One table, ``events``: one row per order event (sent, refused, failed over,
status change, fill, commission). SQLite from the standard library in WAL
mode, so several agent processes on one host append to the same file while a
dashboard or ``report`` reads it. A fill or commission carries IB's execution
id, and a unique index on (kind, exec_id) keeps a fill recorded once even when
two processes see it.

Nothing here knows about IB or the trading layer; everything is plain
functions over a path and dicts.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "COLUMNS",
    "EVENT_KINDS",
    "SCHEMA_VERSION",
    "JournalUnreadableError",
    "default_path",
    "resolve_path",
    "default_agent",
    "connect_for_writing",
    "insert_rows",
    "read_rows",
    "summary",
    "PROCESS_COLUMNS",
    "upsert_processes",
    "read_processes",
]

#: ``PRAGMA user_version`` of the files this version writes; a file with another
#: non-zero version is left alone (reported, never rewritten).
SCHEMA_VERSION = 1

#: What each kind of row means.
EVENT_KINDS: dict[str, str] = {
    "sent": "an order went to TWS / IB Gateway",
    "refused": "an order was refused before sending (risk, size, no position, ...)",
    "failover": "an order went to the Client Portal because TWS could not take it",
    "status": "an order's status changed; with a reason: IB rejected it or it failed",
    "fill": "an execution (price, quantity, execution id, slippage)",
    "commission": "IB's commission report for one execution",
}

#: Column name -> SQLite type, in table order (after ``id``).
COLUMNS: dict[str, str] = {
    "ts": "REAL NOT NULL",          # UTC epoch seconds, the trading layer's clock
    "kind": "TEXT NOT NULL",
    "agent": "TEXT",
    "pid": "INTEGER",
    "client_id": "INTEGER",
    "account": "TEXT",
    "symbol": "TEXT",
    "side": "TEXT",
    "quantity": "REAL",
    "order_type": "TEXT",
    "limit_price": "REAL",
    "client_order_id": "TEXT",
    "order_id": "INTEGER",
    "status": "TEXT",
    "reason": "TEXT",               # a short code: risk:max_position_usd, no_position, ...
    "detail": "TEXT",               # the full message
    "arrival_price": "REAL",
    "price": "REAL",
    "exec_id": "TEXT",
    "fill_time": "REAL",
    "commission": "REAL",
    "currency": "TEXT",
    "realized_pnl": "REAL",
    "slippage_bps": "REAL",
    "source": "TEXT",
}

#: The ``processes`` table: one row per agent process, refreshed by its writer's
#: heartbeat (what a dashboard cannot ask another process: its market-data lines,
#: its historical pacing budget, whether it is connected, whether it is alive).
PROCESS_COLUMNS: dict[str, str] = {
    "host": "TEXT NOT NULL",
    "pid": "INTEGER NOT NULL",
    "client_id": "INTEGER NOT NULL",
    "agent": "TEXT",
    "gateway": "TEXT",              # host:port of TWS / IB Gateway
    "connected": "INTEGER",
    "lines": "INTEGER",
    "lines_limit": "INTEGER",
    "pacing_left": "INTEGER",
    "pacing_limit": "INTEGER",
    "ts": "REAL NOT NULL",          # the process's clock at the heartbeat
}

_OFF = {"off", "0", "false", "no", "none", "disabled"}
#: How long a writer waits for another process's lock (it writes on its own thread).
_BUSY_TIMEOUT_MS = 5000


class JournalUnreadableError(Exception):
    """The journal file is locked, corrupt or from another version (``str`` says which)."""


def default_path() -> Path:
    """``$XDG_DATA_HOME/ib_nice_funcs/journal.sqlite3`` (``~/.local/share`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME", "").strip()
    root = Path(base) if base else Path.home() / ".local" / "share"
    return root / "ib_nice_funcs" / "journal.sqlite3"


def resolve_path(setting: str | None) -> Path | None:
    """The journal file the ``journal`` setting names: None when it is off."""
    if setting is None or not str(setting).strip():
        return default_path()
    text = str(setting).strip()
    if text.lower() in _OFF:
        return None
    return Path(text).expanduser()


def default_agent() -> str:
    """The running script's name without its extension; a package's for ``python -m pkg``;
    ``python`` in a REPL."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if not argv0 or argv0 == "-c":
        return "python"
    script = Path(argv0)
    name = script.parent.name if script.stem == "__main__" else script.stem
    return name or "python"


def _schema_sql() -> str:
    cols = ",\n  ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    return (
        "CREATE TABLE IF NOT EXISTS events (\n  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        f"  {cols}\n);\n"
        "CREATE UNIQUE INDEX IF NOT EXISTS events_exec ON events(kind, exec_id) "
        "WHERE exec_id IS NOT NULL;\n"
        "CREATE INDEX IF NOT EXISTS events_ts ON events(ts);\n"
        "CREATE TABLE IF NOT EXISTS processes (\n  "
        + ",\n  ".join(f"{name} {kind}" for name, kind in PROCESS_COLUMNS.items())
        + ",\n  PRIMARY KEY (host, pid, client_id)\n);\n"
    )


def _check_version(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version (0: new); JournalUnreadableError for another version's file."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version not in (0, SCHEMA_VERSION):
        raise JournalUnreadableError(
            f"journal {path} is from another version (schema {version}; this package "
            f"knows {SCHEMA_VERSION}); move it aside or point IB_NICE_FUNCS_JOURNAL elsewhere")
    return version


def connect_for_writing(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the journal at ``path`` for appending rows.

    Blocks up to about 5 s on another process's lock. The connection belongs
    to the calling thread.

    Raises:
        JournalUnreadableError: the file is corrupt, not SQLite, from another
            schema version, or stays locked.
        OSError: the directory cannot be created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_MS / 1000)
        try:
            _check_version(conn, path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_schema_sql())
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.commit()
        except BaseException:
            conn.close()
            raise
    except sqlite3.DatabaseError as exc:
        raise JournalUnreadableError(f"journal {path} cannot be opened: {exc}") from exc
    return conn


def insert_rows(conn: sqlite3.Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    """Append ``rows`` in one transaction (a repeated execution id is skipped); the count sent.

    Raises:
        sqlite3.Error: the write failed (locked past the busy timeout, disk full...).
    """
    names = list(COLUMNS)
    sql = (f"INSERT OR IGNORE INTO events ({', '.join(names)}) "
           f"VALUES ({', '.join('?' for _ in names)})")
    batch = [tuple(row.get(n) for n in names) for row in rows]
    with conn:
        conn.executemany(sql, batch)
    return len(batch)


def upsert_processes(conn: sqlite3.Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace the heartbeat rows of these processes (keyed by host, pid, client id).

    Raises:
        sqlite3.Error: the write failed.
    """
    names = list(PROCESS_COLUMNS)
    sql = (f"INSERT OR REPLACE INTO processes ({', '.join(names)}) "
           f"VALUES ({', '.join('?' for _ in names)})")
    with conn:
        conn.executemany(sql, [tuple(row.get(n) for n in names) for row in rows])


def read_processes(path: Path) -> list[dict[str, Any]]:
    """Every process's last heartbeat, newest first.

    Raises:
        JournalUnreadableError: the file is locked, corrupt or from another version.
    """
    return _query(path, "SELECT * FROM processes ORDER BY ts DESC")


def _query(path: Path, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run one read-only query on the journal at ``path`` (no rows when it does not exist).

    Blocks up to about 5 s on a writer's lock.

    Raises:
        JournalUnreadableError: the file is locked, corrupt or from another version.
    """
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               timeout=_BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise JournalUnreadableError(f"journal {path} cannot be opened: {exc}") from exc
    try:
        if _check_version(conn, path) == 0:
            return []  # created, never written
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, list(params)).fetchall()]
    except sqlite3.DatabaseError as exc:
        raise JournalUnreadableError(f"journal {path} cannot be read: {exc}") from exc
    finally:
        conn.close()


def read_rows(
    path: Path, since: float | None = None, agent: str | None = None, *,
    kind: str | None = None, symbol: str | None = None,
) -> list[dict[str, Any]]:
    """Rows of the journal at ``path`` in time order (none when the file does not exist).

    ``since``: UTC epoch seconds, rows at or after it; ``agent``, ``kind``,
    ``symbol``: only those. Opens the file read-only; blocks up to about 5 s
    on a writer's lock.

    Raises:
        JournalUnreadableError: the file is locked, corrupt or from another version.
    """
    where: list[str] = []
    params: list[Any] = []
    for column, op, value in (("ts", ">=", None if since is None else float(since)),
                              ("agent", "=", agent), ("kind", "=", kind),
                              ("symbol", "=", symbol)):
        if value is not None:
            where.append(f"{column} {op} ?")
            params.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return _query(path, f"SELECT * FROM events{clause} ORDER BY ts, id", params)


def summary(path: Path, recent: int = 50) -> dict[str, Any]:
    """For a dashboard: the ``recent`` newest fills, the fill count and each agent's counts.

    Raises:
        JournalUnreadableError: the file is locked, corrupt or from another version.
    """
    fills = _query(path, "SELECT * FROM events WHERE kind = 'fill' ORDER BY ts DESC, id DESC "
                         "LIMIT ?", (int(recent),))
    count = _query(path, "SELECT count(*) AS n FROM events WHERE kind = 'fill'")
    agents = _query(path, "SELECT agent, max(ts) AS last_seen, sum(kind = 'sent') AS orders, "
                          "sum(kind = 'fill') AS fills, "
                          "sum(kind = 'refused' OR (kind = 'status' AND reason IS NOT NULL)) "
                          "AS refusals "
                          "FROM events WHERE agent IS NOT NULL GROUP BY agent ORDER BY agent")
    return {"fills": fills, "fill_count": int(count[0]["n"]) if count else 0, "agents": agents}
