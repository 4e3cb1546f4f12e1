"""One background writer per journal file per process.

Rows are queued by the trading layer (caller threads and the loop thread)
and written by this writer's own thread, so a slow, locked or broken file
never delays or fails an order. The first failure is logged once as a
WARNING; later rows are dropped (a broken file) or retried with the next
batch (a transient lock).
"""

from __future__ import annotations

import atexit
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .store import JournalUnreadableError, connect_for_writing, insert_rows, upsert_processes

__all__ = ["JournalWriter", "writer_for", "flush_writer", "close_writers"]

log = logging.getLogger("ib_nice_funcs")

_STOP = object()
_BEAT = object()

#: Seconds between heartbeats (each process's row in the ``processes`` table).
HEARTBEAT_S = 5.0

#: A heartbeat source: the row to write, or None when its process part is gone.
Heartbeat = Callable[[], "Mapping[str, Any] | None"]


class JournalWriter:
    """Appends rows to one SQLite journal from a daemon thread.

    Threading contract: :meth:`put` never blocks and may be called from any
    thread (including the event-loop thread); :meth:`flush` and
    :meth:`close` block the caller up to their timeout.
    """

    def __init__(self, path: Path, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.path = path
        self.heartbeat_s = heartbeat_s
        self._heartbeats: list[Heartbeat] = []
        self._last_beat = 0.0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._queued = 0
        self._handled = 0
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._broken = False
        self._warned = False
        self.written = 0
        self.dropped = 0

    def put(self, row: Mapping[str, Any]) -> None:
        """Queue one row; never blocks, never raises."""
        self._enqueue(dict(row))

    def add_heartbeat(self, beat: Heartbeat) -> None:
        """Call ``beat()`` on the writer's thread every ``heartbeat_s`` and store its row;
        a beat that returns None (or raises) is dropped."""
        with self._cond:
            self._heartbeats.append(beat)
        self.beat()

    @property
    def heartbeats(self) -> int:
        """How many heartbeat sources still beat."""
        with self._cond:
            return len(self._heartbeats)

    def beat(self) -> None:
        """Ask for a heartbeat now (:meth:`flush` waits for it too); never blocks."""
        self._enqueue(_BEAT)

    def _enqueue(self, item: Any) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"ib_nice_funcs-journal-{self.path.name}", daemon=True)
                self._thread.start()
            self._queued += 1
        self._queue.put(item)

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every row queued so far is written (or dropped); False at the timeout."""
        with self._cond:
            target = self._queued
            return self._cond.wait_for(lambda: self._handled >= target, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread (blocks up to ``timeout``)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._queue.put(_STOP)  # not counted: flush() is over once the writer stops
        thread.join(timeout)

    # -- writer thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.heartbeat_s if self._heartbeats else None)
            except queue.Empty:
                item = None  # time for a heartbeat
            items = [] if item is None else [item]
            while items and items[-1] is not _STOP:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [i for i in items if isinstance(i, dict)]
            stop = _STOP in items
            asked = sum(1 for i in items if i is _BEAT)
            if rows:
                self._write(rows)
            if asked or time.monotonic() - self._last_beat >= self.heartbeat_s:
                self._beat()
            if asked:
                self._handled_add(asked)
            if stop:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                return

    def _handled_add(self, count: int) -> None:
        with self._cond:
            self._handled += count
            self._cond.notify_all()

    def _beat(self) -> None:
        self._last_beat = time.monotonic()
        with self._cond:
            beats = list(self._heartbeats)
        rows = []
        for beat in beats:
            try:
                row = beat()
            except Exception:  # noqa: BLE001 - a broken source just stops beating
                row = None
            if row is None:
                with self._cond:
                    if beat in self._heartbeats:
                        self._heartbeats.remove(beat)
            else:
                rows.append(row)
        if rows and not self._broken:
            try:
                if self._conn is None:
                    self._conn = connect_for_writing(self.path)
                upsert_processes(self._conn, rows)
            except (JournalUnreadableError, OSError) as exc:
                self._broken = True
                self._warn(f"{exc}", "trading goes on without it")
            except sqlite3.Error as exc:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                self._warn(f"journal {self.path} could not be written ({exc})", "trading goes on")

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            if self._broken:
                self.dropped += len(batch)
                return
            try:
                if self._conn is None:
                    self._conn = connect_for_writing(self.path)
                insert_rows(self._conn, batch)
                self.written += len(batch)
            except (JournalUnreadableError, OSError) as exc:
                self._broken = True
                self.dropped += len(batch)
                self._warn(f"{exc}", "trading goes on without it")
            except sqlite3.Error as exc:
                # A lock held past the busy timeout, a full disk: drop this batch, retry later.
                self.dropped += len(batch)
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                self._warn(f"journal {self.path} could not be written ({exc})",
                           f"{len(batch)} row(s) lost; trading goes on")
        finally:
            self._handled_add(len(batch))

    def _warn(self, cause: str, effect: str) -> None:
        if self._warned:
            return
        self._warned = True
        log.warning("%s; %s. Fix the file or point IB_NICE_FUNCS_JOURNAL (configure(journal=...)) "
                    "at another path, or set it to 'off'", cause, effect)


_lock = threading.Lock()
_writers: dict[Path, JournalWriter] = {}
_atexit_registered = False


def writer_for(path: Path) -> JournalWriter:
    """The process's writer for ``path`` (created on first use; the first one also
    registers :func:`close_writers` to run at interpreter exit)."""
    global _atexit_registered
    key = path.expanduser().absolute()
    with _lock:
        if not _atexit_registered:
            atexit.register(close_writers)
            _atexit_registered = True
        writer = _writers.get(key)
        if writer is None:
            writer = _writers[key] = JournalWriter(key)
        return writer


def flush_writer(path: Path, timeout: float = 5.0) -> bool:
    """Flush this process's writer for ``path`` if there is one (True when none)."""
    with _lock:
        writer = _writers.get(path.expanduser().absolute())
    return True if writer is None else writer.flush(timeout)


def close_writers(timeout: float = 5.0) -> None:
    """Flush and stop every writer (at interpreter exit)."""
    with _lock:
        writers = list(_writers.values())
        _writers.clear()
    for writer in writers:
        writer.close(timeout)
