"""``ib-nice-funcs doctor``: check the way from this machine to TWS / IB Gateway.

Each check says what it found and, when something is wrong, what to do:

1. ``port``: does anything accept TCP connections at host:port (refused?
   silently dropped?).
2. ``handshake``: does it speak the TWS API (or is it, say, an HTTP server,
   or a socket that never answers: blackholed, API switched off, or TWS
   waiting for someone to accept the connection)?
3. ``client id``: does IB accept our client id (error 326: in use)? When
   it is taken, which id of ``client_ids`` this program would take instead.
4. ``account``: paper (``D...``) or live, and the one orders would go to.
5. ``market data``: may this account stream quotes (354 / 10167: not
   subscribed; delayed data is the remedy)?
6. ``client portal``: when ``portal_url`` is set, is its session
   authenticated (``POST /iserver/auth/status``)?
7. ``fleet``: the state this program shares with the account's other agent
   processes (this host's files, or Redis with ``redis_url``): reachable?
   Is trading halted by an ``emergency_stop()``?

The first three use a few raw protocol messages of their own (a handshake and
``startApi``), so they can tell apart failures ib_async reports as one
timeout; the market-data check goes through the normal :class:`Client`.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .config import Settings

__all__ = ["Check", "run_checks", "format_checks"]

#: The client versions ib_async 2.1 offers (see notes/tws_protocol.md).
_HELLO = b"v157..178"
_PORTS = "IB Gateway paper 4002 / live 4001, TWS paper 7497 / live 7496"
_API_FIX = ("in TWS / IB Gateway: Configure > Settings > API > Settings: tick 'Enable ActiveX "
            "and Socket Clients', check the socket port, add this machine to 'Trusted IPs'; "
            "answer any 'accept incoming connection' dialog")


@dataclass(frozen=True)
class Check:
    """One line of the report: ``status`` is ``ok``, ``warn``, ``fail`` or ``skip``."""

    name: str
    status: str
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


@dataclass
class _Session:
    server_version: int | None = None
    accounts: list[str] | None = None
    next_id: int | None = None
    error_code: int | None = None
    error_text: str = ""
    outcome: str = ""  # ok, silent, http, garbage, closed, refused-id, timeout


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("closed by the other side")
        data += chunk
    return data


def _frame(fields: list[str]) -> bytes:
    payload = b"".join(f.encode("ascii") + b"\0" for f in fields)
    return struct.pack(">I", len(payload)) + payload


def _read_msg(sock: socket.socket) -> list[str]:
    (size,) = struct.unpack(">I", _recv_exact(sock, 4))
    if size > 1 << 24:
        raise ValueError(f"a {size}-byte message")
    fields = _recv_exact(sock, size).decode("ascii", "replace").split("\0")
    return fields[:-1] if fields and fields[-1] == "" else fields


def _api_session(host: str, port: int, client_id: int, timeout: float) -> _Session:
    """Handshake + startApi with raw messages; closes politely (the id is free again after)."""
    got = _Session()
    sock = socket.create_connection((host, port), timeout)
    try:
        sock.settimeout(timeout)
        sock.sendall(b"API\0" + struct.pack(">I", len(_HELLO)) + _HELLO)
        try:
            head = _recv_exact(sock, 4)
        except TimeoutError:
            got.outcome = "silent"
            return got
        except ConnectionResetError:
            got.outcome = "closed"
            return got
        if head.startswith(b"HTTP"):
            got.outcome = "http"
            return got
        (size,) = struct.unpack(">I", head)
        try:
            if size > 4096:
                raise ValueError("too long")
            fields = _recv_exact(sock, size).decode("ascii", "replace").split("\0")
            got.server_version = int(fields[0])
        except (ValueError, IndexError, ConnectionResetError, TimeoutError):
            got.outcome = "garbage"
            return got
        sock.sendall(_frame(["71", "2", str(client_id), ""]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = _read_msg(sock)
            except TimeoutError:
                break
            except (ConnectionResetError, ValueError):
                got.outcome = "refused-id" if got.error_code == 326 else "closed"
                return got
            if not msg:
                continue
            if msg[0] == "15" and len(msg) >= 3:
                got.accounts = [a for a in msg[2].split(",") if a]
            elif msg[0] == "9" and len(msg) >= 3:
                got.next_id = int(msg[2]) if msg[2].lstrip("-").isdigit() else None
            elif msg[0] == "4" and len(msg) >= 5 and msg[3].isdigit():
                code = int(msg[3])
                if not 2100 <= code < 2200:
                    got.error_code, got.error_text = code, msg[4]
            if got.error_code == 326:
                got.outcome = "refused-id"
                return got
            if got.accounts is not None and got.next_id is not None:
                got.outcome = "ok"
                return got
        got.outcome = "timeout"
        return got
    finally:
        _close_politely(sock, timeout)


def _close_politely(sock: socket.socket, timeout: float) -> None:
    """Half-close and wait for the other side to close, so it has released our client id."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(min(timeout, 2.0))
        while sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        sock.close()


def _speaks_http(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode("ascii"))
            return sock.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def _check_port(s: Settings, timeout: float) -> Check:
    where = f"{s.host}:{s.port}"
    try:
        with socket.create_connection((s.host, s.port), timeout):
            pass
    except ConnectionRefusedError:
        return Check("port", "fail", f"{where} refused the connection: nothing listens there",
                     f"start TWS or IB Gateway and log in; check the API port ({_PORTS}); "
                     "set IB_PORT or --port")
    except TimeoutError:
        return Check("port", "fail", f"{where} did not answer the TCP connect within {timeout:g} s "
                     "(packets dropped: a firewall, or the wrong host)",
                     "check IB_HOST, the firewall, and that TWS / IB Gateway runs on that machine")
    except OSError as exc:
        return Check("port", "fail", f"cannot connect to {where}: {exc}",
                     "check IB_HOST (a name that resolves, or an IP address) and IB_PORT")
    return Check("port", "ok", f"{where} accepts connections")


def _check_api(s: Settings, timeout: float) -> tuple[list[Check], _Session | None]:
    where = f"{s.host}:{s.port}"
    try:
        got = _api_session(s.host, s.port, s.client_id, timeout)
    except OSError as exc:
        return [Check("handshake", "fail", f"{where}: {exc}", _API_FIX)], None
    if got.outcome in ("silent", "garbage", "http", "closed") and got.server_version is None:
        if got.outcome == "http" or _speaks_http(s.host, s.port, timeout):
            return [Check("handshake", "fail",
                          f"{where} is an HTTP server, not the TWS API socket",
                          f"point IB_PORT at TWS / IB Gateway's API port ({_PORTS}); the Client "
                          "Portal gateway (usually https://localhost:5000) goes in "
                          "IB_PORTAL_URL")], None
        if got.outcome == "silent":
            return [Check("handshake", "fail",
                          f"{where} accepts connections but never answered the API handshake "
                          f"within {timeout:g} s (blackholed, the API switched off, or TWS "
                          "waiting for a click to accept the connection)", _API_FIX)], None
        if got.outcome == "closed":
            return [Check("handshake", "fail",
                          f"{where} closed the connection at the API handshake (this machine "
                          "is not a trusted IP, or the API is switched off)", _API_FIX)], None
        return [Check("handshake", "fail", f"{where} answered, but not in the TWS API protocol",
                      f"point IB_PORT at TWS / IB Gateway's API port ({_PORTS})")], None
    checks = [Check("handshake", "ok", f"TWS API server version {got.server_version}")]
    if got.outcome == "refused-id":
        from .fleet.client_ids import client_id_candidates

        taken = f"client id {s.client_id} is in use by another API program (IB error 326)"
        for other in client_id_candidates(s.client_id, s.client_ids)[1:]:
            try:
                free = _api_session(s.host, s.port, other, timeout)
            except OSError:
                break
            if free.outcome == "ok":
                checks.append(Check(
                    "client id", "warn", f"{taken}; this program would connect as client id "
                    f"{other} (the next free one of {s.client_ids[0]}..{s.client_ids[1]})",
                    "nothing, for agents started together; a fixed id per agent: IB_CLIENT_ID, "
                    "--client-id or configure(client_id=...)"))
                return checks, free
            if free.outcome != "refused-id":
                break
        checks.append(Check("client id", "fail",
                            f"{taken}, and so is every id of IB_NICE_FUNCS_CLIENT_IDS "
                            f"{s.client_ids[0]}..{s.client_ids[1]}",
                            "give this program its own id: IB_CLIENT_ID, --client-id or "
                            "configure(client_id=...), or widen IB_NICE_FUNCS_CLIENT_IDS; each of "
                            "up to 32 clients needs one"))
        return checks, None
    if got.outcome != "ok":
        cause = (f"IB error {got.error_code}: {got.error_text}" if got.error_code
                 else "it closed the session" if got.outcome == "closed"
                 else f"no account list within {timeout:g} s")
        checks.append(Check("client id", "fail",
                            f"the API session as client {s.client_id} did not start: {cause}",
                            "check that TWS / IB Gateway is logged in, and " + _API_FIX))
        return checks, None
    checks.append(Check("client id", "ok", f"client id {s.client_id} is free; session started"))
    return checks, got


def _check_account(s: Settings, accounts: list[str]) -> Check:
    if not accounts:
        return Check("account", "fail", "the gateway reported no managed account",
                     "log in to TWS / IB Gateway with a trading account")
    if s.account and s.account not in accounts:
        return Check("account", "fail", f"IB_ACCOUNT={s.account} is not among the managed "
                     f"accounts {', '.join(accounts)}", "set IB_ACCOUNT to one of them")
    if not s.account and len(accounts) > 1:
        return Check("account", "warn", f"several accounts: {', '.join(accounts)}; orders need one "
                     "chosen", "set IB_ACCOUNT or configure(account=...)")
    account = s.account or accounts[0]
    if account.startswith("D"):
        return Check("account", "ok", f"paper account {account}")
    if s.allow_live:
        return Check("account", "warn", f"LIVE account {account}; live trading is switched on "
                     "(allow_live): orders are real")
    return Check("account", "warn", f"LIVE account {account}: orders are refused unless live "
                 "trading is switched on", "use a paper login (account ids starting with D), "
                 "or set IB_NICE_FUNCS_ALLOW_LIVE=1 when you mean it")


def _check_market_data(s: Settings, symbol: str, timeout: float) -> Check:
    from .client import Client
    from .errors import IBNiceFuncsError, MarketDataNotSubscribedError, UnknownSymbolError

    kind = {1: "live", 2: "frozen", 3: "delayed", 4: "delayed-frozen"}[s.market_data_type]
    remedy = ("subscribe to the exchange's data in Client Portal (Settings > Market Data "
              "Subscriptions), or use free delayed data: configure(market_data_type=3) "
              "or IB_NICE_FUNCS_MARKET_DATA_TYPE=3")
    try:
        with Client(s, sources="ib", timeout=max(timeout, 1.0)) as client:
            price = client.price(symbol, source="ib")
            delayed = client.source("ib").delayed
    except MarketDataNotSubscribedError as exc:
        return Check("market data", "fail", f"{symbol}: no market-data permission ({exc})", remedy)
    except UnknownSymbolError:
        return Check("market data", "warn", f"IB does not know {symbol}; nothing learnt",
                     "try --symbol with a symbol your account trades")
    except IBNiceFuncsError as exc:
        return Check("market data", "fail", f"{symbol}: {exc}",
                     "run the doctor again; if it persists, restart TWS / IB Gateway")
    if delayed:
        # The library falls back to delayed data by itself, but live data was
        # refused: say so, because an agent may depend on fresh prices.
        return Check("market data", "fail", f"{symbol}: live data not subscribed (IB error 354); "
                     f"prices fall back to 15-minute delayed data ({symbol} {price:g})", remedy)
    return Check("market data", "ok", f"{symbol} {price:g} ({kind} data, market_data_type="
                 f"{s.market_data_type})")


def _check_portal(s: Settings, timeout: float) -> Check:
    if not s.portal_url:
        return Check("client portal", "skip", "IB_PORTAL_URL is not set (the Client Portal "
                     "backup source is off)")
    import requests

    url = s.portal_url.rstrip("/") + "/iserver/auth/status"
    verify: Any = s.portal_ca if s.portal_ca else s.portal_verify
    try:
        reply = requests.post(url, timeout=timeout, verify=verify, json={})
    except requests.exceptions.SSLError as exc:
        return Check("client portal", "fail", f"{url}: TLS certificate not trusted ({exc})",
                     "set IB_PORTAL_CA to the gateway's certificate file (or IB_PORTAL_VERIFY=0 "
                     "on a machine you trust)")
    except requests.exceptions.Timeout:
        return Check("client portal", "fail", f"{url}: no answer within {timeout:g} s",
                     "check that the Client Portal gateway runs and IB_PORTAL_URL is right")
    except requests.exceptions.RequestException as exc:
        return Check("client portal", "fail", f"{url}: {exc}",
                     "start the Client Portal gateway (bin/run.sh root/conf.yaml) and check "
                     "IB_PORTAL_URL (usually https://localhost:5000/v1/api)")
    login = f"log in at {s.portal_url.split('/v1/')[0]} in a browser (sessions end daily)"
    if reply.status_code == 401:
        return Check("client portal", "fail", f"{url}: not logged in (HTTP 401)", login)
    if reply.status_code >= 400:
        return Check("client portal", "fail", f"{url}: HTTP {reply.status_code}",
                     "check IB_PORTAL_URL (it ends in /v1/api)")
    try:
        status = reply.json()
    except ValueError:
        return Check("client portal", "fail", f"{url}: not a JSON answer",
                     "check IB_PORTAL_URL (it ends in /v1/api)")
    if not status.get("authenticated"):
        return Check("client portal", "fail", f"{url}: session not authenticated", login)
    if status.get("competing"):
        return Check("client portal", "warn", "authenticated, but another session competes "
                     "(a TWS or mobile login with the same user)", "log out the other session")
    if not status.get("connected", True):
        return Check("client portal", "fail", "authenticated but not connected to IB's servers",
                     "call /iserver/reauthenticate or log in again")
    return Check("client portal", "ok", f"{url}: authenticated and connected")


def run_checks(settings: Settings, probe_timeout: float = 3.0, symbol: str = "AAPL",
               on_check: Callable[[Check], None] | None = None) -> list[Check]:
    """Run every check in order; a failed step skips the ones that need it.

    Args:
        settings: What to check (host, port, client id, account, portal...).
        probe_timeout: Seconds each network probe may wait.
        symbol: The instrument the market-data check prices.
        on_check: Called with each check as soon as it is known (for printing).

    Returns:
        The checks, in order.
    """
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        if on_check is not None:
            on_check(check)

    port = _check_port(settings, probe_timeout)
    add(port)
    session = None
    if not port.failed:
        api_checks, session = _check_api(settings, probe_timeout)
        for c in api_checks:
            add(c)
    if session is None:
        for name in ("handshake", "client id", "account", "market data"):
            if not any(c.name == name for c in checks):
                add(Check(name, "skip", "needs a working API session (see above)"))
    else:
        add(_check_account(settings, session.accounts or []))
        add(_check_market_data(settings, symbol, max(probe_timeout, settings.timeout)))
    add(_check_portal(settings, probe_timeout))
    add(_check_fleet(settings, session.accounts if session is not None else None, probe_timeout))
    return checks


def _check_fleet(s: Settings, accounts: list[str] | None, timeout: float) -> Check:
    from .fleet.status import fleet_status

    account = s.account or (accounts[0] if accounts and len(accounts) == 1 else None)
    got = fleet_status(s, account, timeout)
    return Check("fleet", got.status, got.detail, got.fix)


def format_check(check: Check) -> str:
    label = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}[check.status]
    line = f"  {label:<5} {check.name:<14} {check.detail}"
    if check.fix and check.status in ("fail", "warn"):
        line += f"\n        {'':<14} fix: {check.fix}"
    return line


def format_checks(checks: list[Check]) -> str:
    """The report, one check per line with its fix below."""
    return "\n".join(format_check(c) for c in checks)
