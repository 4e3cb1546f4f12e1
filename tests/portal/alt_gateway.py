"""A second, deliberately different Client Portal fake (plain HTTP, stdlib only).

It follows the real API where the project's simulator does too, but makes
other choices wherever the real gateway (or its versions) varies: status on
GET only, ``secdef/search`` on POST only, no currency-pairs, trsrv or
order-status endpoints, conids as ints, numeric snapshot values with no
pre-flight, history without volume that ignores ``startTime``, a question
without ``messageIds``, a placed answer as a dict, live orders as a bare
list, positions without ``pageSize``, a flat summary, no ``isPaper``, and
extra fields everywhere. The client must work against it unchanged.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACCOUNT = "DU42"
CONIDS = {("AAPL", "STK"): 1001, ("BTC", "CRYPTO"): 2002}


class AltGateway:
    """State of the fake: orders and request counts."""

    def __init__(self) -> None:
        self.orders: dict[int, dict[str, Any]] = {}
        self.pending: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.next_id = 555

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        with self.lock:
            self.counts[f"{method} {path}"] = self.counts.get(f"{method} {path}", 0) + 1
            return self._answer(method, path, query, body)

    def _answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        now_ms = int(time.time() * 1000)
        if path == "/iserver/auth/status":
            if method != "GET":
                return 405, {"error": "Method Not Allowed"}
            return 200, {"authenticated": True, "connected": True, "competing": False,
                         "extra": {"x": 1}}
        if path == "/tickle":
            return 200, {"session": "not-logged", "iserver": {"authStatus": {
                "authenticated": True, "connected": True, "competing": False}}}
        if path == "/iserver/accounts":
            return 200, {"accounts": [ACCOUNT], "chartPeriods": {}}
        if path == "/iserver/secdef/search":
            if method != "POST":
                return 405, {"error": "Method Not Allowed"}
            key = (str(body.get("symbol", "")).upper(), str(body.get("secType", "")).upper())
            conid = CONIDS.get(key)
            if conid is None:
                return 200, {"error": "No symbol found"}
            section = {"secType": key[1], "exchange": "PAXOS" if key[1] == "CRYPTO" else "NYSE"}
            return 200, [{"conid": conid, "symbol": key[0], "sections": [section],
                          "description": "NYSE", "newThing": [1, 2]}]
        if path == "/iserver/marketdata/snapshot":
            rows = []
            for text in query.get("conids", "").split(","):
                if text == "1001":
                    rows.append({"conid": 1001, "31": 187.5, "84": 187.4, "86": 187.6, "x": 0})
                elif text == "2002":
                    rows.append({"conid": 2002, "84": "64,000.0", "86": "64,010.0"})
            return 200, rows
        if path == "/iserver/marketdata/history":
            hour = 3600 * 1000
            last = now_ms // hour * hour
            data = [{"t": last - k * hour, "o": 100 + k, "h": 101 + k, "l": 99 + k, "c": 100.5 + k}
                    for k in range(48)]
            return 200, {"symbol": "AAPL", "data": data, "points": len(data), "unknown": None}
        m = re.fullmatch(r"/iserver/account/(\w+)/orders", path)
        if m and method == "POST":
            order = body["orders"][0]
            reply_id = f"q{len(self.pending) + 1}"
            self.pending[reply_id] = order
            return 200, [{"id": reply_id, "message": ["Are you sure?"]}]
        m = re.fullmatch(r"/iserver/reply/(\w+)", path)
        if m:
            order = self.pending.pop(m.group(1), None)
            if order is None:
                return 400, {"error": "no such reply"}
            order_id, self.next_id = self.next_id, self.next_id + 1
            self.orders[order_id] = {**order, "status": "Submitted"}
            return 200, {"order_id": order_id, "order_status": "Submitted"}
        if path == "/iserver/account/orders":
            return 200, [{"orderId": str(i), "order_ref": o["cOID"], "status": o["status"],
                          "side": o["side"][0], "totalSize": str(o["quantity"]),
                          "ticker": "AAPL", "secType": "STK", "orderType": o["orderType"],
                          "price": o.get("price"), "conid": o["conid"]}
                         for i, o in self.orders.items()]
        m = re.fullmatch(r"/iserver/account/(\w+)/order/(\d+)", path)
        if m and method == "DELETE":
            order = self.orders.get(int(m.group(2)))
            if order is None:
                return 200, {"error": "not found"}
            order["status"] = "Cancelled"
            return 200, {"msg": "Request was submitted", "order_id": m.group(2)}
        if path == "/portfolio/accounts":
            return 200, [{"accountId": ACCOUNT, "type": "DEMO"}]
        m = re.fullmatch(r"/portfolio/(\w+)/positions/(\d+)", path)
        if m:
            if m.group(2) != "0":
                return 200, []
            return 200, [{"conid": "1001", "ticker": "AAPL", "position": "3", "mktPrice": 187.5,
                          "avgCost": 180, "assetClass": "STK", "currency": "USD"}]
        m = re.fullmatch(r"/portfolio/(\w+)/summary", path)
        if m:
            return 200, {"netliquidation": 100000.0, "availablefunds": {"amount": "50000"}}
        return 404, {"error": f"no route {method} {path}"}


@contextlib.contextmanager
def run_alt_gateway() -> Iterator[tuple[str, AltGateway]]:
    """Serve the fake on a free loopback port; yields ``(base URL without /v1/api, state)``."""
    state = AltGateway()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            path = split.path.removeprefix("/v1/api")
            status, payload = state.answer(self.command, path, query, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
