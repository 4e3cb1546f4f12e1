"""One client connection of the TWS simulator (state and framed writes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from . import _wire as w


class Conn:
    """A connected API client.

    Attributes:
        sv: negotiated server version (0 until the handshake).
        client_id: API client id after startApi, else None.
        md_type: market data type asked with reqMarketDataType (1 live).
        tasks: streaming tasks by ``(kind, reqId)``.
        md_subs: request ids of live market data subscriptions.
        account_updates: whether reqAccountUpdates(True) is in force.
        positions_sub: whether reqPositions is in force.
        summaries: reqAccountSummary subscriptions: reqId -> tags.
        closing: set once the connection must end.
        held: while the link is half open (:meth:`freeze`), the messages
            written since, in order; None when the link is healthy.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.sv = 0
        self.client_id: int | None = None
        self.md_type = 1
        self.tasks: dict[tuple[str, int], asyncio.Task] = {}
        self.md_subs: set[int] = set()
        self.account_updates = False
        self.positions_sub = False
        self.multi_subs: dict[int, str] = {}
        self.summaries: dict[int, str] = {}
        self.closing = False
        self.hangup = False
        self.serial = 0
        self.held: list[bytes] | None = None

    @property
    def writable(self) -> bool:
        """False once closed here or lost by the peer (writes are then dropped)."""
        return not self.closing and not self.writer.transport.is_closing()

    def send(self, fields: Iterable[Any]) -> None:
        """Queue one message (fields are str()-ed); dropped if the socket is gone."""
        if self.writable:
            self._write(w.frame(fields))

    def send_payload(self, payload: str) -> None:
        """Queue one message whose NUL-terminated payload is already built."""
        if self.writable:
            self._write(w.frame_text(payload))

    def _write(self, data: bytes) -> None:
        if self.held is not None:
            self.held.append(data)
        else:
            self.writer.write(data)

    def freeze(self) -> None:
        """Half-open the link: hold every write (requests are dropped by the session)."""
        if self.held is None:
            self.held = []

    def thaw(self) -> None:
        """Heal the link: send what was held, in order, and serve requests again."""
        held, self.held = self.held, None
        if held and self.writable:
            self.writer.write(b"".join(held))

    async def drain(self) -> None:
        """Wait until the socket buffer drains.

        Raises:
            ConnectionError: if the peer went away.
        """
        if self.writable:
            await self.writer.drain()

    def close(self) -> None:
        """Close the socket (idempotent; never raises)."""
        self.closing = True
        try:
            self.writer.close()
        except Exception:  # the transport may already be gone
            pass
