"""A gateway in a process of its own, for the benches (no I/O at import).

Run apart from the measured code so that the server's work does not share
the measuring interpreter's GIL.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def server_process(argv: Sequence[str], port: int, what: str = "gateway") -> Iterator[int]:
    """Start ``argv`` (a server that listens on ``port``), wait up to 30 s for the
    port to accept, yield it; the process is stopped on exit.

    Raises:
        RuntimeError: the server did not start listening in time (or exited).
    """
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the {what} process did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
