"""A small HTTP/1.1 layer on asyncio streams for the Client Portal simulator.

Only what a REST client needs: one request at a time per connection
(keep-alive, no pipelining guarantees beyond that), ``Content-Length`` and
chunked request bodies, JSON responses. No I/O outside the given streams.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Request", "Reply", "HttpError", "read_request", "encode_reply", "REASONS"]

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
           413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}


class HttpError(Exception):
    """A request that cannot be parsed; answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    """One parsed HTTP request.

    Attributes:
        method: upper-case method.
        target: the raw request target (path and query).
        path: the decoded path without the query.
        query: query parameters (the last value wins).
        headers: header names in lower case.
        body: raw body bytes.
        peer: client IP address.
    """

    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer: str
    version: str = "HTTP/1.1"

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return conn == "keep-alive"
        return conn != "close"

    def json(self) -> Any:
        """The body parsed as JSON (None for an empty body).

        Raises:
            HttpError: 400 when the body is not valid JSON.
        """
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from None


@dataclass
class Reply:
    """An HTTP answer: ``body`` is JSON-encoded unless it is bytes or None."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


async def _read_line(reader: asyncio.StreamReader, budget: list[int]) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HttpError(400, "header line too long") from None
    budget[0] -= len(line)
    if budget[0] < 0:
        raise HttpError(400, "request headers too large")
    return line


async def read_request(reader: asyncio.StreamReader, peer: str) -> Request | None:
    """Read one request; None when the client closed the connection cleanly.

    Raises:
        HttpError: for a malformed request (the caller answers and closes).
        asyncio.IncompleteReadError, ConnectionError: the peer went away mid-request.
    """
    budget = [MAX_HEADER_BYTES]
    line = b""
    while not line.strip():  # tolerate stray CRLF between requests
        try:
            line = await _read_line(reader, budget)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial.strip():
                return None
            raise
    parts = line.decode("latin-1").strip().split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise HttpError(400, f"bad request line {line[:80]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    while True:
        raw = await _read_line(reader, budget)
        text = raw.decode("latin-1").rstrip("\r\n")
        if not text:
            break
        name, sep, value = text.partition(":")
        if not sep:
            raise HttpError(400, f"bad header line {text[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        total = 0
        while True:
            size_line = (await _read_line(reader, [MAX_HEADER_BYTES])).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise HttpError(400, "bad chunk size") from None
            if size == 0:
                while (await _read_line(reader, [MAX_HEADER_BYTES])).strip():
                    pass
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise HttpError(413, "request body too large")
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise HttpError(413, "request body too large")
        body = await reader.readexactly(length) if length else b""
    split = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    return Request(method=method.upper(), target=target, path=unquote(split.path),
                   query=query, headers=headers, body=body, peer=peer, version=version)


def encode_reply(reply: Reply, keep_alive: bool) -> bytes:
    """The bytes of ``reply`` as an HTTP/1.1 response."""
    if reply.body is None:
        payload = b""
    elif isinstance(reply.body, (bytes, bytearray)):
        payload = bytes(reply.body)
    else:
        payload = json.dumps(reply.body, separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json;charset=utf-8",
               "Date": email.utils.formatdate(usegmt=True), "Server": "ib_nice_funcs-paper-cpgw",
               "Content-Length": str(len(payload)),
               "Connection": "keep-alive" if keep_alive else "close"}
    headers.update(reply.headers)
    reason = REASONS.get(reply.status, "Unknown")
    head = f"HTTP/1.1 {reply.status} {reason}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + payload


@dataclass
class Route:
    """One endpoint: ``pattern`` is the path after ``/v1/api`` with ``{name}`` parameters.

    Attributes:
        methods: accepted HTTP methods.
        pattern: e.g. ``/portfolio/{acct}/positions/{page}`` (also the endpoint's name).
        handler: ``async handler(sim, request, params) -> Reply``.
        iserver: needs the brokerage session (400 "no bridge" without it).
        preflight: needs ``GET /iserver/accounts`` first in this session.
        portfolio: needs ``GET /portfolio/accounts`` first in this session.
    """

    methods: tuple[str, ...]
    pattern: str
    handler: Any
    iserver: bool = False
    preflight: bool = False
    portfolio: bool = False
    regex: Any = None

    def __post_init__(self) -> None:
        import re

        parts = re.split(r"(\{\w+\})", self.pattern)
        rx = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p)
                     for p in parts)
        self.regex = re.compile(f"^{rx}/?$")
