"""PortalSimulator: a paper Client Portal Web API gateway (REST over HTTPS) on loopback.

It serves ``/v1/api/...`` the way IB's CP Gateway does for the endpoints a
trading client needs (session, contracts, snapshots, history, portfolio,
orders), with the real gateway's awkward parts: the ``/iserver/accounts``
pre-flight, snapshots that are empty on the first call, the order
question/reply loop, HTTP 429 with a penalty box, 401 without a login and
400 "no bridge" without a brokerage session. See the endpoint modules
``_portal_account``, ``_portal_data`` and ``_portal_orders`` for the exact
shapes.

Given a :class:`~ib_nice_funcs.sim.tws.TWSSimulator`, it shares that
simulator's market and matching engine (orders, fills, positions, cash), so
an order placed over TWS with ``orderRef`` X is the REST order with
``order_ref`` X and vice versa. Engine calls then run on the TWS simulator's
loop, which owns the engine.

Knobs are plain attributes (set them on the simulator's loop, e.g. through
the setters of :class:`~ib_nice_funcs.sim._portal_runner.PortalHandle`):

- session: ``authenticated`` (False: 401 everywhere), ``no_bridge`` (400 "no
  bridge" on /iserver until ``ssodh/init``), ``competing``,
  ``session_timeout_s`` (None: never; else the brokerage session drops after
  that long without a request), ``require_preflight``;
- faults: ``latency`` (seconds before each answer), ``blackhole`` (read
  requests, never answer), ``drop`` (close the connection instead of
  answering), ``refuse_new`` (stop listening), :meth:`drop_connections`;
- rate limits: ``enforce_rate_limits``, ``penalty_s``, ``limiter``
  (:class:`~ib_nice_funcs.sim._portal_limits.RateLimiter`),
  ``history_concurrency`` (5);
- data: ``md_availability`` (``R``/``D``/``N``), ``halted`` (market keys),
  ``snapshot_warmup_s``, ``max_history_points`` (1000),
  ``positions_page_size`` (100);
- orders: ``questions``, ``price_constraint_pct`` (3), ``size_limit`` (500
  shares), ``value_limit`` (100,000 USD), ``exclusive_replies`` (a new order
  invalidates unanswered reply ids), ``orders_first_call_empty``.

Counters: :attr:`request_counts` (every request read, by ``"METHOD
/pattern"``), ``count_429``, ``order_count`` (orders handed to the engine
over REST).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import (
    _portal_account,
    _portal_account_more,
    _portal_changes,
    _portal_data,
    _portal_orders,
    _portal_scanner,
)
from ._portal_http import HttpError, Reply, Request, Route, encode_reply, read_request
from ._portal_limits import RateLimiter
from ._portal_tls import TlsMaterial, make_tls_material, server_context
from ._threaded import apply_in_loop, call_in_loop
from .catalog import Instrument
from .market import PaperMarket
from .matching import MatchingEngine

__all__ = ["PortalSimulator", "API_PREFIX"]

log = logging.getLogger(__name__)

API_PREFIX = "/v1/api"
_ROUTES: list[Route] = [*_portal_account.ROUTES, *_portal_data.ROUTES, *_portal_orders.ROUTES,
                        *_portal_changes.ROUTES, *_portal_account_more.ROUTES,
                        *_portal_scanner.ROUTES]
_HISTORY = "/iserver/marketdata/history"


@dataclass
class PortalSession:
    """State of the gateway's brokerage session; reset by ``ssodh/init`` and logins.

    Attributes:
        accounts_called: ``GET /iserver/accounts`` was called (pre-flight done).
        portfolio_called: ``GET /portfolio/accounts`` was called.
        subscriptions: conid -> snapshot fields subscribed so far.
        sub_started: conid -> monotonic time the subscription started.
        orders_polled: ``GET /iserver/account/orders`` was called before.
    """

    accounts_called: bool = False
    portfolio_called: bool = False
    subscriptions: dict[int, set[str]] = field(default_factory=dict)
    sub_started: dict[int, float] = field(default_factory=dict)
    orders_polled: bool = False


async def _call(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(*args)


class PortalSimulator:
    """An asyncio Client Portal Web API simulator.

    Args:
        tws: a TWS simulator whose market and matching engine to share.
        market: the paper market when ``tws`` is None (a new ``PaperMarket(seed)``
            if None too).
        host: interface to bind (loopback).
        port: TCP port; 0 picks a free one (see :attr:`port` after start).
        tls: serve HTTPS with a generated certificate (see :attr:`ca_path`).
        account: account id when not sharing a TWS simulator (``D...`` is paper).
        seed: seed of the market made when none is given; ids derive from it.
        cash: starting cash of a private engine.
        partial_fills: fill marketable orders in pieces (private engine).
        penalty_s: seconds an IP stays in the penalty box.
        penalty_after: rate-limit violations (within a minute) that put an IP
            into the penalty box (the gateway boxes an IP that keeps violating).
        rate_limits: ``pattern -> (count, per_s)`` (default: the gateway's).
        enforce_rate_limits: answer 429 when a limit is exceeded.
        rate_slack_s: early-arrival tolerance of the rate limits.
        authenticated: logged in; False answers 401 to everything.
        no_bridge: brokerage session down; /iserver endpoints answer 400 "no bridge"
            until ``POST /iserver/auth/ssodh/init``.
        latency: seconds added before each answer.
        questions: ask order questions (price, size, value, market order warnings).
        tick_interval: seconds between re-checks of resting orders (private engine).
        tls_backend: ``auto``, ``cryptography`` or ``openssl``.
        cert_dir: where to write the TLS files (a temporary directory if None).
        clock: monotonic clock for rate limits, the penalty box and timeouts.

    Raises:
        ValueError: if both ``tws`` and a different ``market`` are given.
    """

    def __init__(self, tws: Any = None, *, market: PaperMarket | None = None,
                 host: str = "127.0.0.1", port: int = 0, tls: bool = True,
                 account: str = "DU1234567", seed: int = 0, cash: float = 1_000_000.0,
                 partial_fills: bool = False, penalty_s: float = 600.0,
                 rate_limits: dict[str, tuple[float, float]] | None = None,
                 enforce_rate_limits: bool = True, rate_slack_s: float = 0.05,
                 authenticated: bool = True, no_bridge: bool = False, latency: float = 0.0,
                 questions: bool = True, tick_interval: float = 0.25,
                 tls_backend: str = "auto", cert_dir: str | None = None,
                 clock: Callable[[], float] = time.monotonic, penalty_after: int = 3) -> None:
        if tws is not None:
            if market is not None and market is not tws.market:
                raise ValueError("give either a TWS simulator or a market, not both")
            self.market: PaperMarket = tws.market
            self.engine: MatchingEngine = tws.engine
            self.account = tws.account
        else:
            self.market = market if market is not None else PaperMarket(seed=seed)
            self.engine = MatchingEngine(self.market, account, cash, partial_fills)
            self.account = account
        self.tws = tws
        self.host = host
        self.tls = bool(tls)
        self.tls_backend = tls_backend
        self.cert_dir = cert_dir
        self.clock = clock
        self.seed = self.market.seed
        # knobs
        self._authenticated = bool(authenticated)
        self._no_bridge = bool(no_bridge)
        self.competing = False
        self.latency = float(latency)
        self.blackhole = False
        self.drop = False
        self._refuse_new = False
        self.enforce_rate_limits = bool(enforce_rate_limits)
        self.questions = bool(questions)
        self.exclusive_replies = True
        self.require_preflight = True
        self.md_availability = "R"
        self.halted: set[str] = set()
        self.snapshot_warmup_s = 0.0
        self.orders_first_call_empty = False
        self.positions_page_size = 100
        self.max_history_points = 1000
        self.history_concurrency = 5
        self.size_limit = 500.0
        self.value_limit = 100_000.0
        self.price_constraint_pct = 3.0
        self.session_timeout_s: float | None = None
        self.idle_timeout_s = 120.0
        self.tick_interval = tick_interval
        # state
        self.limiter = RateLimiter(rate_limits, penalty_s, clock, rate_slack_s, penalty_after)
        self.session = PortalSession()
        self.suppressed: set[str] = set()
        self.replies: dict[str, Any] = {}
        self.rejected: set[int] = set()
        self.count_429 = 0
        self.order_count = 0
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._ids = 0
        self._portal_order_ids = 0
        self._history_inflight = 0
        self._last_activity = clock()
        self._requested_port = port
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ssl: ssl.SSLContext | None = None
        self._tls_material: TlsMaterial | None = None
        self._conns: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._order_task: asyncio.Task | None = None
        self.port = 0

    # ------------------------------------------------------------------ knobs
    @property
    def penalty_s(self) -> float:
        """Seconds an IP stays in the penalty box after a rate-limit violation."""
        return self.limiter.penalty_s

    @penalty_s.setter
    def penalty_s(self, value: float) -> None:
        self.limiter.penalty_s = float(value)

    @property
    def authenticated(self) -> bool:
        """Logged in to the gateway; False answers 401 everywhere (and resets the session)."""
        return self._authenticated

    @authenticated.setter
    def authenticated(self, value: bool) -> None:
        if bool(value) != self._authenticated:
            self.reset_session()
        self._authenticated = bool(value)

    @property
    def no_bridge(self) -> bool:
        """Brokerage session down: /iserver endpoints answer 400 until ssodh/init."""
        return self._no_bridge

    @no_bridge.setter
    def no_bridge(self, value: bool) -> None:
        if value and not self._no_bridge:
            self.reset_session()
        self._no_bridge = bool(value)

    @property
    def refuse_new(self) -> bool:
        """True: stop listening, so new connections are refused (open ones stay)."""
        return self._refuse_new

    @refuse_new.setter
    def refuse_new(self, value: bool) -> None:
        self._refuse_new = bool(value)
        # Not started yet (no loop): start() applies the flag.
        apply_in_loop(self._loop, self._apply_refuse)

    def reset_session(self) -> None:
        """Forget the pre-flights, snapshot subscriptions and pending order questions."""
        self.session = PortalSession()
        self.replies.clear()

    @property
    def request_counts(self) -> Counter[str]:
        """Requests received (answered or not), by ``"METHOD /pattern"`` (a copy)."""
        with self._lock:
            return Counter(self._counts)

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``https://127.0.0.1:5000/v1/api``."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}{API_PREFIX}"

    @property
    def ca_path(self) -> str | None:
        """PEM file of the CA that signed the server certificate (None without TLS)."""
        return self._tls_material.ca_path if self._tls_material else None

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Make the certificate (with TLS), bind and start serving.

        Raises:
            OSError: if the port cannot be bound.
            TlsUnavailableError: TLS asked for and no way to make a certificate.
        """
        self._loop = asyncio.get_running_loop()
        if self.tls and self._ssl is None:
            self._tls_material = await self._loop.run_in_executor(
                None, lambda: make_tls_material(self.cert_dir, self.tls_backend))
            self._ssl = server_context(self._tls_material)
        self._server = await self._listen(self._requested_port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self._refuse_new:
            await self._apply_refuse()
        self._order_task = asyncio.create_task(self._order_loop())
        log.info("Client Portal simulator on %s (account %s, seed %d)", self.url, self.account,
                 self.seed)

    async def _listen(self, port: int) -> asyncio.base_events.Server:
        return await asyncio.start_server(self._handle, self.host, port, ssl=self._ssl,
                                          ssl_handshake_timeout=10 if self._ssl else None)

    async def stop(self) -> None:
        """Stop serving, close every connection and delete the TLS files."""
        self._loop = None
        if self._order_task is not None:
            self._order_task.cancel()
        if self._server is not None:
            self._server.close()
        for task, writer in list(self._conns.items()):
            writer.transport.abort()
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._tls_material is not None:
            self._tls_material.cleanup()
        log.info("Client Portal simulator on port %d stopped", self.port)

    async def _apply_refuse(self) -> None:
        if self._refuse_new and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            log.info("portal simulator refusing new connections on port %d", self.port)
        elif not self._refuse_new and self._server is None and self._loop is not None:
            self._server = await self._listen(self.port)
            log.info("portal simulator accepting connections again on port %d", self.port)

    def drop_connections(self) -> None:
        """Close every client connection now (callable from any thread)."""
        call_in_loop(self._loop, self._drop_all)

    def _drop_all(self) -> None:
        for writer in list(self._conns.values()):
            writer.transport.abort()

    # ------------------------------------------------------------ engine access
    def _engine_loop(self) -> asyncio.AbstractEventLoop | None:
        return getattr(self.tws, "_loop", None) if self.tws is not None else None

    async def engine_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the thread that owns the matching engine."""
        loop = self._engine_loop()
        if loop is None or loop is asyncio.get_running_loop():
            return fn(*args)
        fut = asyncio.run_coroutine_threadsafe(_call(fn, args), loop)
        return await asyncio.wait_for(asyncio.wrap_future(fut), 10.0)

    def dispatch_events(self, events: list) -> None:
        """Hand engine events to the TWS clients (call on the engine's thread)."""
        if self.tws is not None and self._engine_loop() is not None and events:
            self.tws._dispatch_events(events)

    async def _order_loop(self) -> None:
        """Re-check resting orders when no running TWS simulator does it."""
        while True:
            await asyncio.sleep(self.tick_interval)
            if self._engine_loop() is not None:
                continue
            try:
                if self.engine.open_orders():
                    self.engine.on_time(self.market.now())
            except Exception:  # keep matching alive, but surface the bug
                log.exception("portal matching engine error")

    # ---------------------------------------------------------------- helpers
    def now_ms(self) -> int:
        """Market time in epoch milliseconds."""
        return int(self.market.now() * 1000)

    def stable_hex(self, *parts: object, n: int = 16) -> str:
        """Hex digits derived from the seed and ``parts`` (deterministic ids)."""
        raw = "|".join(str(p) for p in (self.seed, *parts)).encode()
        return hashlib.blake2b(raw, digest_size=max(1, (n + 1) // 2)).hexdigest()[:n]

    def new_reply_id(self) -> str:
        """A fresh reply id (a UUID, deterministic per seed)."""
        self._ids += 1
        return str(uuid.UUID(hex=self.stable_hex("reply", self._ids, n=32)))

    def next_portal_order_id(self) -> int:
        """Engine order id for the next order placed over REST."""
        self._portal_order_ids += 1
        return self._portal_order_ids

    def instrument(self, conid: object) -> Instrument:
        """The catalog instrument of ``conid`` (int or numeric string).

        Raises:
            HttpError: 400 for a malformed or unknown conid.
        """
        try:
            inst = self.market.by_con_id(int(str(conid).split("@")[0].strip()))
        except (TypeError, ValueError):
            inst = None
        if inst is None:
            raise HttpError(400, f"Invalid conid: {conid}")
        return inst

    def check_account(self, acct: str) -> None:
        """Raises HttpError(400) unless ``acct`` is this gateway's account."""
        if acct != self.account:
            raise HttpError(400, f"Account {acct} is not found or not authorized for this "
                                 "session")

    # ------------------------------------------------------------- connections
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refuse_new:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else "unknown"
        try:
            await self._serve(reader, writer, ip)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, TimeoutError,
                asyncio.TimeoutError, asyncio.CancelledError):
            pass
        except Exception:  # a bug here must not kill the server, but must be seen
            log.exception("portal simulator error")
        finally:
            self._conns.pop(task, None)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     ip: str) -> None:
        while True:
            try:
                req = await asyncio.wait_for(read_request(reader, ip), self.idle_timeout_s)
            except HttpError as exc:
                writer.write(encode_reply(Reply(exc.status, {"error": exc.message}), False))
                await writer.drain()
                return
            if req is None:
                return
            route, params, method_ok, name = self._classify(req)
            with self._lock:
                self._counts[f"{req.method} {name}"] += 1
            if self.drop:
                log.info("portal simulator dropping the connection of %s %s", req.method,
                         req.path)
                return
            if self.blackhole:
                await self._swallow(reader)
                return
            reply = await self._respond(req, route, params, method_ok, name)
            if reply is None:
                await self._swallow(reader)
                return
            keep = req.keep_alive
            writer.write(encode_reply(reply, keep))
            await writer.drain()
            if not keep:
                return

    @staticmethod
    async def _swallow(reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, method_ok) for a path under the API prefix."""
        found = None
        for route in _ROUTES:
            m = route.regex.match(path)
            if m:
                if method in route.methods:
                    return route, m.groupdict(), True
                found = found or (route, m.groupdict())
        if found:
            return found[0], found[1], False
        return None, {}, False

    def _classify(self, req: Request) -> tuple[Route | None, dict[str, str], bool, str]:
        """(route, params, method_ok, endpoint name) of a request."""
        path = req.path
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            route, params, method_ok = self._match(req.method, path[len(API_PREFIX):] or "/")
            if route is not None:
                return route, params, method_ok, route.pattern
        return None, {}, False, path

    async def _respond(self, req: Request, route: Route | None, params: dict[str, str],
                       method_ok: bool, name: str) -> Reply | None:
        """The answer to ``req``; None means never answer (blackhole)."""
        why = self.limiter.check(req.peer, name) if self.enforce_rate_limits else None
        history = route is not None and route.pattern == _HISTORY and method_ok
        if history:
            self._history_inflight += 1
            if why is None and self._history_inflight > self.history_concurrency:
                why = f"more than {self.history_concurrency} concurrent history requests"
                self.limiter.strike(req.peer)
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if self.blackhole:
                return None
            if why is not None:
                self.count_429 += 1
                log.info("portal simulator: 429 for %s %s (%s)", req.method, name, why)
                return Reply(429, {"error": "Too Many Requests", "statusCode": 429})
            return await self._route(req, route, params, method_ok)
        finally:
            if history:
                self._history_inflight -= 1

    async def _route(self, req: Request, route: Route | None, params: dict[str, str],
                     method_ok: bool) -> Reply:
        if route is None:
            return Reply(404, {"error": f"Resource {req.path} not found", "statusCode": 404})
        if not self._authenticated:
            return Reply(401, {"error": "not authenticated", "statusCode": 401})
        if not method_ok:
            return Reply(405, {"error": f"{req.method} is not allowed on {route.pattern}",
                               "statusCode": 405})
        now = self.clock()
        if self.session_timeout_s is not None and \
                now - self._last_activity > self.session_timeout_s:
            log.info("portal simulator: brokerage session timed out")
            self.no_bridge = True
        self._last_activity = now
        if route.iserver and (self._no_bridge or self.competing):
            return Reply(400, {"error": "Bad Request: no bridge", "statusCode": 400})
        if route.preflight and self.require_preflight and not self.session.accounts_called:
            return Reply(400, {"error": "Please query /accounts first"})
        if route.portfolio and self.require_preflight and not self.session.portfolio_called:
            return Reply(400, {"error": "Please query /portfolio/accounts first"})
        try:
            return await route.handler(self, req, params)
        except HttpError as exc:
            return Reply(exc.status, {"error": exc.message, "statusCode": exc.status})
        except Exception:
            log.exception("portal simulator: %s %s failed", req.method, req.path)
            return Reply(500, {"error": "Internal Server Error", "statusCode": 500})
