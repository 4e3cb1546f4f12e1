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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .store import JournalUnreadableError, connect_for_writing, insert_rows

__all__ = ["JournalWriter", "writer_for", "flush_writer", "close_writers"]

log = logging.getLogger("ib_nice_funcs")

_STOP = object()


class JournalWriter:
    """Appends rows to one SQLite journal from a daemon thread.

    Threading contract: :meth:`put` never blocks and may be called from any
    thread (including the event-loop thread); :meth:`flush` and
    :meth:`close` block the caller up to their timeout.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
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
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"ib_nice_funcs-journal-{self.path.name}", daemon=True)
                self._thread.start()
            self._queued += 1
        self._queue.put(dict(row))

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
        self._queue.put(_STOP)
        thread.join(timeout)

    # -- writer thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [] if item is _STOP else [item]
            stop = item is _STOP
            while not stop:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                else:
                    batch.append(more)
            if batch:
                self._write(batch)
            if stop:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                return

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
            with self._cond:
                self._handled += len(batch)
                self._cond.notify_all()

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
