"""TWSSimulator: a paper TWS / IB Gateway speaking the real socket protocol.

It negotiates the server version with each client (the highest version both
support, at most ``max_server_version``), then encodes every message as IB's
own decoder expects it for that version, so ib_async, IB's ``ibapi`` and
other TWS API clients connect to it unchanged. Market data comes from a
:class:`~ib_nice_funcs.sim.market.PaperMarket`; orders go to a
:class:`~ib_nice_funcs.sim.matching.MatchingEngine`.

Fault knobs (plain attributes, safe to set from any thread): ``latency``,
``refuse_new``, ``blackhole``, ``enforce_pacing``, ``market_data_subscribed``;
:meth:`TWSSimulator.drop_connections` closes every client socket,
:meth:`TWSSimulator.drop_acks` swallows order acknowledgements,
:meth:`TWSSimulator.half_open` / :meth:`TWSSimulator.heal` freeze the open
connections (sockets stay open, nothing is answered or sent) and
:meth:`TWSSimulator.broadcast_error` sends IB's 1100/1101/1102 to every client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from . import _account, _extras, _orders, _scanner
from . import _wire as w
from ._conn import Conn
from ._data import DataRequests
from ._history import PacingRules, PacingTracker
from ._threaded import apply_in_loop, call_in_loop
from .catalog import STOCK, Instrument
from .market import PaperMarket
from .matching import MatchingEngine

__all__ = ["TWSSimulator"]

log = logging.getLogger(__name__)

_HELLO = re.compile(rb"^v(\d+)(?:\.\.(\d+))?")
_MAX_MSG = 16 * 1024 * 1024
#: IB's own texts of its connectivity notices (broadcast_error's default message).
_NOTICES = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
}
TWS_TZ = "US/Eastern"


class TWSSimulator(DataRequests):
    """An asyncio TWS/Gateway simulator on loopback.

    Args:
        market: the shared paper market (a new ``PaperMarket(seed)`` if None).
        host: interface to bind; loopback only.
        port: TCP port, 0 picks a free one (see :attr:`port` after start).
        account: managed account id (``DU...`` paper; anything else is "live").
        seed: seed of the market created when ``market`` is None.
        enforce_pacing: reject historical requests that break IB's pacing rules.
        max_server_version: highest server version offered (100..178).
        pacing_clock: monotonic clock for the pacing windows.
        cash: starting cash in USD.
        partial_fills: fill marketable orders in pieces.
        tick_interval: seconds between streaming market data updates.
    """

    def __init__(self, market: PaperMarket | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, account: str = "DU1234567", seed: int = 0,
                 enforce_pacing: bool = True, max_server_version: int = w.MAX_SERVER_VERSION,
                 pacing_clock: Callable[[], float] = time.monotonic, cash: float = 1_000_000.0,
                 partial_fills: bool = False, tick_interval: float = 0.25) -> None:
        if not w.MIN_SERVER_VERSION <= max_server_version <= w.MAX_SERVER_VERSION:
            raise ValueError(f"max_server_version must be within {w.MIN_SERVER_VERSION}.."
                             f"{w.MAX_SERVER_VERSION}, got {max_server_version}")
        self.market = market if market is not None else PaperMarket(seed=seed)
        self.host = host
        self.account = account
        self.max_server_version = max_server_version
        self.enforce_pacing = enforce_pacing
        self.latency = 0.0
        self._refuse_new = False
        self._blackhole = False
        self._deaf_below = 0  # connections with a lower serial stay blackholed for good
        self.market_data_subscribed = True
        self.acks_dropped = False
        self.tick_interval = tick_interval
        self.pacing_clock = pacing_clock
        self._pacing = PacingTracker(PacingRules())
        self.engine = MatchingEngine(self.market, account, cash, partial_fills)
        self._requested_port = port
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conns: set[Conn] = set()
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._connections = 0
        self._next_order_id = 1
        self._order_task: asyncio.Task | None = None
        self.port = 0

    # ------------------------------------------------------------------ control
    @property
    def pacing(self) -> PacingRules:
        """The pacing limits in force; assign a new :class:`PacingRules` to change them."""
        return self._pacing.rules

    @pacing.setter
    def pacing(self, rules: PacingRules) -> None:
        self._pacing.rules = rules
        self._pacing.reset()

    @property
    def blackhole(self) -> bool:
        """True: accept connections and read requests, but never answer.

        A connection that was open while the blackhole was on stays silent
        for its whole life (like a hung gateway), even after the knob is
        switched off; only new connections get answers again.
        """
        return self._blackhole

    @blackhole.setter
    def blackhole(self, value: bool) -> None:
        if value:
            self._deaf_below = self._connections + 1
        self._blackhole = bool(value)

    def is_deaf(self, conn: Conn) -> bool:
        """Whether ``conn`` must get no answer (see :attr:`blackhole`)."""
        return self._blackhole or conn.serial < self._deaf_below

    @property
    def refuse_new(self) -> bool:
        """True: stop listening, so new connections are refused at once (existing stay)."""
        return self._refuse_new

    @refuse_new.setter
    def refuse_new(self, value: bool) -> None:
        self._refuse_new = bool(value)
        # Not started yet (no loop): start() applies the flag.
        apply_in_loop(self._loop, self._apply_refuse)

    async def _apply_refuse(self) -> None:
        if self._refuse_new and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            log.info("refusing new connections on port %d", self.port)
        elif not self._refuse_new and self._server is None and self._loop is not None:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
            log.info("accepting connections again on port %d", self.port)

    @property
    def request_counts(self) -> Counter[str]:
        """Requests received so far, by IB request name (a copy)."""
        with self._lock:
            return Counter(self._counts)

    @property
    def connections(self) -> int:
        """TCP connections accepted since start (refused and blackholed included)."""
        return self._connections

    @property
    def active_connections(self) -> int:
        """Clients connected now."""
        return len(self._conns)

    @property
    def order_count(self) -> int:
        """placeOrder requests received."""
        return self.engine.order_count

    async def start(self) -> None:
        """Bind and start accepting clients (returns once listening).

        Raises:
            OSError: if the port cannot be bound.
        """
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._handle, self.host, self._requested_port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self._refuse_new:
            await self._apply_refuse()
        self._order_task = asyncio.create_task(self._order_loop())
        log.info("TWS simulator listening on %s:%d (account %s, seed %d)", self.host,
                 self.port, self.account, self.market.seed)

    async def stop(self) -> None:
        """Stop accepting, close every client and wait until they are gone."""
        self._loop = None
        if self._server is not None:
            self._server.close()
        if self._order_task is not None:
            self._order_task.cancel()
        for conn in list(self._conns):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        log.info("TWS simulator on port %d stopped", self.port)

    def drop_connections(self) -> None:
        """Close every client socket now (callable from any thread)."""
        call_in_loop(self._loop, self._drop_all)

    def _drop_all(self) -> None:
        for conn in list(self._conns):
            log.info("dropping client %s", conn.client_id)
            conn.close()

    def half_open(self) -> None:
        """Freeze every open connection, as a half-open TCP link (from any thread).

        The sockets stay open, but requests are lost (read and dropped, so a
        client closing its end is still noticed and its client id freed) and
        nothing is sent: ticks, bar updates and order events are held back
        until :meth:`heal`, which sends them in order; the client sees a
        silent connection. Connections made after this call are served
        normally.
        """
        call_in_loop(self._loop, self._freeze_all)

    def heal(self) -> None:
        """End :meth:`half_open`: send what was held, in order, and answer again."""
        call_in_loop(self._loop, self._thaw_all)

    def _freeze_all(self) -> None:
        for conn in list(self._conns):
            log.info("half-opening the link to client %s", conn.client_id)
            conn.freeze()

    def _thaw_all(self) -> None:
        for conn in list(self._conns):
            conn.thaw()

    def broadcast_error(self, code: int, message: str = "") -> None:
        """Send IB error ``code`` with reqId -1 to every connected client (any thread).

        For IB's connectivity notices: 1100 (TWS lost its link to IB), 1101
        (restored, market data lost: resubscribe), 1102 (restored, data kept);
        ``message`` defaults to IB's own text for those. Only the message is
        sent; the simulated market keeps running.
        """
        call_in_loop(self._loop, lambda: self._broadcast(int(code), str(message)))

    def _broadcast(self, code: int, message: str = "") -> None:
        message = message or _NOTICES.get(code, "")
        for conn in self.conns():
            conn.send(w.error_msg(conn.sv, -1, code, message))

    def drop_acks(self, on: bool) -> None:
        """Swallow (``on=True``) or send again the acknowledgements of orders.

        While on, orders are still accepted, matched and filled (positions,
        executions and account values change as usual) but the
        ``openOrder``/``orderStatus`` messages and the order errors (202
        cancelled, 201 rejected by the matching engine) pushed after
        ``placeOrder`` and ``cancelOrder`` never reach the client: it sees an
        order it cannot confirm. Executions and commissions still arrive;
        queries (``reqOpenOrders``, ``reqCompletedOrders``, ``reqExecutions``,
        positions) still answer truthfully.
        """
        self.acks_dropped = bool(on)

    def set_price(self, symbol: str, price: float | None) -> None:
        """Pin the live price of ``symbol`` (None unpins); resting orders react."""
        self.market.set_price(symbol, price)

    def run_close(self) -> None:
        """Run the closing auction now: fills MOC/LOC orders (from any thread)."""
        loop = self._loop
        if loop is None:
            return
        loop.call_soon_threadsafe(lambda: self.dispatch_events(
            self.engine.run_close(self.market.now())))

    # --------------------------------------------------------------- connection
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        if self._refuse_new:
            writer.transport.abort()
            return
        conn = Conn(reader, writer)
        conn.serial = self._connections
        self._conns.add(conn)
        try:
            await self._session(conn)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # a bug here must not kill the server, but must be seen
            log.exception("simulator error on client %s", conn.client_id)
        finally:
            conn.close()
            for task in list(conn.tasks.values()):
                task.cancel()
            self._conns.discard(conn)

    async def _read_frame(self, conn: Conn) -> list[str]:
        head = await conn.reader.readexactly(4)
        (length,) = struct.unpack(">I", head)
        if length > _MAX_MSG:
            raise ConnectionError(f"message of {length} bytes")
        data = await conn.reader.readexactly(length)
        fields = data.decode("ascii", "backslashreplace").split("\0")
        if fields and fields[-1] == "":
            fields.pop()
        return fields

    async def _session(self, conn: Conn) -> None:
        if self.is_deaf(conn):
            await self._swallow(conn)
            return
        if await conn.reader.readexactly(4) != b"API\0":
            log.warning("client did not start with API\\0; closing")
            return
        (length,) = struct.unpack(">I", await conn.reader.readexactly(4))
        if length > 4096:
            log.warning("handshake of %d bytes; closing", length)
            return
        hello = await conn.reader.readexactly(length)
        m = _HELLO.match(hello)
        if not m:
            log.warning("bad handshake %r; closing", hello)
            return
        lo = int(m.group(1))
        hi = int(m.group(2) or m.group(1))
        if hi < w.MIN_SERVER_VERSION:
            log.warning("client versions %d..%d are too old; closing", lo, hi)
            return
        conn.sv = min(hi, self.max_server_version)
        await self._pause()
        if self.is_deaf(conn):
            await self._swallow(conn)
            return
        now = self.market.now()
        stamp = dt.datetime.fromtimestamp(now, ZoneInfo(TWS_TZ)).strftime("%Y%m%d %H:%M:%S %Z")
        conn.send([conn.sv, stamp])
        await conn.drain()
        while True:
            fields = await self._read_frame(conn)
            if not fields:
                continue
            if conn.held is not None:
                continue  # half_open(): the request is lost on the way (reading goes on)
            await self._pause()
            if self.is_deaf(conn):
                continue
            await self._dispatch(conn, fields)
            await conn.drain()
            if conn.closing or conn.hangup:
                return

    async def _swallow(self, conn: Conn) -> None:
        while await conn.reader.read(65536):
            pass

    async def _pause(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)

    async def _dispatch(self, conn: Conn, fields: list[str]) -> None:
        try:
            msg_id = int(fields[0])
        except ValueError:
            log.warning("bad message id %r", fields[0])
            return
        name = w.REQUEST_NAMES.get(msg_id, f"msg{msg_id}")
        with self._lock:
            self._counts[name] += 1
        if conn.client_id is None and msg_id != 71:
            log.info("ignoring %s before startApi", name)
            return
        handler = _HANDLERS.get(msg_id)
        f = w.Fields(fields)
        f.skip()
        try:
            if handler is None:
                self._unsupported(conn, msg_id, name, fields)
            else:
                await handler(self, conn, f)
        except (IndexError, ValueError) as exc:
            req_id = _req_id_guess(fields)
            log.warning("malformed %s %r: %s", name, fields, exc)
            conn.send(w.error_msg(conn.sv, req_id, 320, "Error reading request. Unable to "
                                  f"parse data. {name}: {exc}"))

    def _unsupported(self, conn: Conn, msg_id: int, name: str, fields: list[str]) -> None:
        idx = w.REQ_ID_INDEX.get(msg_id, -1)
        req_id = int(fields[idx]) if 0 < idx < len(fields) and fields[idx].lstrip("-").isdigit() \
            else -1
        if name.startswith("cancel"):  # cancelling what was refused needs no answer
            return
        log.info("unsupported request %s", name)
        code, text = _UNSUPPORTED.get(msg_id, (321, "Error validating request.-'" + name +
                                               "' : cause - this request is not supported"))
        conn.send(w.error_msg(conn.sv, req_id, code,
                              f"{text} (not served by the ib_nice_funcs paper simulator)"))

    # ------------------------------------------------------------------ startup
    async def _start_api(self, conn: Conn, f: w.Fields) -> None:
        f.skip()  # version
        client_id = f.int()
        if any(c.client_id == client_id for c in self._conns if c is not conn):
            log.info("client id %d already in use; closing", client_id)
            conn.send(w.error_msg(conn.sv, -1, 326, "Unable to connect as the client id is "
                                  "already in use. Retry with a unique client id."))
            conn.hangup = True
            return
        conn.client_id = client_id
        conn.send([w.MANAGED_ACCTS, 1, self.account])
        conn.send([w.NEXT_VALID_ID, 1, self._next_order_id])
        for code, text in ((2104, "Market data farm connection is OK:usfarm"),
                           (2106, "HMDS data farm connection is OK:ushmds"),
                           (2158, "Sec-def data farm connection is OK:secdefnj")):
            conn.send(w.error_msg(conn.sv, -1, code, text))
        log.info("client %d connected (server version %d)", client_id, conn.sv)

    async def _req_ids(self, conn: Conn, f: w.Fields) -> None:
        conn.send([w.NEXT_VALID_ID, 1, self._next_order_id])

    async def _current_time(self, conn: Conn, f: w.Fields) -> None:
        conn.send([w.CURRENT_TIME, 1, int(self.market.now())])

    async def _managed_accts(self, conn: Conn, f: w.Fields) -> None:
        conn.send([w.MANAGED_ACCTS, 1, self.account])

    async def _ignore(self, conn: Conn, f: w.Fields) -> None:
        return None

    # ---------------------------------------------------------------- contracts
    def resolve(self, c: dict[str, Any]) -> list[tuple[Instrument, str]]:
        """Catalog entries matching a request's contract, with the exchange to report."""
        con_id = int(c.get("conId") or 0)
        symbol = str(c.get("symbol") or "").strip().upper()
        sec_type = str(c.get("secType") or "").upper()
        currency = str(c.get("currency") or "").upper()
        exchange = str(c.get("exchange") or "").upper()
        primary = str(c.get("primaryExchange") or "").upper()
        local = str(c.get("localSymbol") or "").strip().upper()
        tclass = str(c.get("tradingClass") or "").strip().upper()
        out: list[tuple[Instrument, str]] = []
        for inst in self.market.instruments():
            if con_id and inst.con_id != con_id:
                continue
            if not con_id and not symbol and not local:
                continue
            if symbol and inst.symbol.upper() != symbol:
                continue
            if sec_type and inst.sec_type != sec_type:
                continue
            if currency and inst.currency != currency:
                continue
            if local and inst.local_symbol.upper() != local:
                continue
            if tclass and inst.trading_class.upper() != tclass:
                continue
            if primary and primary != inst.primary_exchange and inst.sec_type == STOCK:
                continue
            valid = inst.valid_exchanges.split(",")
            if exchange:
                if exchange not in valid:
                    continue
                out.append((inst, exchange))
            elif con_id:
                out.append((inst, inst.exchange))
            else:
                out += [(inst, x) for x in dict.fromkeys([inst.exchange, inst.primary_exchange])]
        return out

    def _hours(self, inst: Instrument, use_rth: bool) -> str:
        now = self.market.now()
        tz = ZoneInfo(inst.time_zone)
        sessions = self.market.sessions(inst.key, now - 86400, now + 6 * 86400, use_rth)
        by_date: dict[dt.date, str] = {}
        for s in sessions:
            a = dt.datetime.fromtimestamp(s.start, tz)
            b = dt.datetime.fromtimestamp(s.end, tz)
            by_date[s.trade_date] = f"{a:%Y%m%d:%H%M}-{b:%Y%m%d:%H%M}"
        first = dt.datetime.fromtimestamp(now, tz).date() - dt.timedelta(days=1)
        days = [first + dt.timedelta(days=i) for i in range(8)]
        return ";".join(by_date.get(d, f"{d:%Y%m%d}:CLOSED") for d in days)

    async def _contract_details(self, conn: Conn, f: w.Fields) -> None:
        f.skip()  # version
        req_id = f.int()
        contract = w.read_contract(f)
        matches = self.resolve(contract)
        if not matches:
            conn.send(w.error_msg(conn.sv, req_id, 200, "No security definition has been found "
                                  "for the request"))
            return
        for inst, exchange in matches:
            conn.send(w.contract_details(conn.sv, req_id, inst, exchange,
                                         self._hours(inst, False), self._hours(inst, True)))
        conn.send([w.CONTRACT_DATA_END, 1, req_id])

    async def _matching_symbols(self, conn: Conn, f: w.Fields) -> None:
        req_id = f.int()
        pattern = f.str().strip().upper()
        hits = [i for i in self.market.instruments()
                if pattern and (i.symbol.upper().startswith(pattern)
                                or i.key.upper().replace(".", "").startswith(pattern)
                                or pattern in i.long_name.upper())]
        conn.send(w.symbol_samples(conn.sv, req_id, hits[:16]))

    def one_instrument(self, conn: Conn, req_id: int, contract: dict) -> Instrument | None:
        """The contract's instrument, or None after sending error 200 to ``conn``."""
        matches = self.resolve(contract)
        if not matches:
            conn.send(w.error_msg(conn.sv, req_id, 200, "No security definition has been found "
                                  "for the request"))
            return None
        return matches[0][0]

    # ------------------------------------------------------------------- orders
    async def _order_loop(self) -> None:
        """Re-check resting orders against the moving market."""
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                if self.engine.open_orders():
                    self.dispatch_events(self.engine.on_time(self.market.now()))
            except Exception:  # keep matching alive, but surface the bug
                log.exception("matching engine error")

    def dispatch_events(self, events: list) -> None:
        """Send matching-engine events to the connected clients (the simulator's loop)."""
        _orders.dispatch(self, events)

    def next_order_id(self, used: int) -> None:
        """Keep nextValidId above every order id seen."""
        self._next_order_id = max(self._next_order_id, used + 1)

    def conns(self) -> list[Conn]:
        """Connected clients that finished startApi."""
        return [c for c in self._conns
                if c.client_id is not None and c.writable and not self.is_deaf(c)]


#: IB's error for a request the paper account cannot be served, where a client
#: waits for it: codes clients treat as errors (ib_async takes 321 for a
#: warning and would keep waiting), so every call returns.
_UNSUPPORTED: dict[int, tuple[int, str]] = {
    10: (10092, "Deep market data is not supported for this combination of security "
                "type/exchange"),
    52: (430, "We are sorry, but fundamentals data for the security specified is not "
              "available."),
    54: (200, "No security definition has been found for the request"),
    55: (200, "No security definition has been found for the request"),
    84: (10276, "News feed is not allowed."),
    88: (162, "Historical Market Data Service error message:No histogram data"),
    100: (354, "Requested market data is not subscribed. Wall Street Horizon data"),
    102: (354, "Requested market data is not subscribed. Wall Street Horizon data"),
}


def _req_id_guess(fields: list[str]) -> int:
    for idx in (2, 1):
        if len(fields) > idx and fields[idx].lstrip("-").isdigit():
            return int(fields[idx])
    return -1


_HANDLERS: dict[int, Callable] = {
    71: TWSSimulator._start_api, 8: TWSSimulator._req_ids, 49: TWSSimulator._current_time,
    17: TWSSimulator._managed_accts, 9: TWSSimulator._contract_details,
    81: TWSSimulator._matching_symbols, 59: TWSSimulator._market_data_type,
    1: TWSSimulator._mkt_data, 2: TWSSimulator._cancel_mkt_data,
    20: TWSSimulator._historical, 25: TWSSimulator._cancel_historical,
    87: TWSSimulator._head_timestamp, 90: TWSSimulator._ignore,
    14: TWSSimulator._ignore, 12: TWSSimulator._ignore, 13: TWSSimulator._ignore,
}
_HANDLERS.update(_account.HANDLERS)
_HANDLERS.update(_orders.HANDLERS)
_HANDLERS.update(_extras.HANDLERS)
_HANDLERS.update(_scanner.HANDLERS)
