"""Serving the dashboard with uvicorn on a socket bound first (so "port in use" is clear)."""

from __future__ import annotations

import errno
import socket
import threading
from typing import Any

__all__ = ["DashboardServer", "PortInUseError"]


class PortInUseError(OSError):
    """The dashboard's port is taken (the message names it and the fix)."""


class DashboardServer:
    """An ASGI app on ``host:port`` (port 0: any free one), in the foreground or a thread.

    Binding happens in the constructor, so a taken port fails at once with
    :class:`PortInUseError`. Use as a context manager for a background
    server (tests): ``__exit__`` stops it (blocks up to 10 s).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 8050) -> None:
        import uvicorn

        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUseError(
                    exc.errno, f"port {port} on {host} is in use (or not allowed); choose "
                               "another with --port N, or stop what holds it") from None
            raise
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def url(self, token: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={token}"

    def serve_forever(self) -> None:
        """Serve until Ctrl-C (blocks)."""
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self._sock.close()

    def __enter__(self) -> DashboardServer:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="ib_nice_funcs-dashboard", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()
