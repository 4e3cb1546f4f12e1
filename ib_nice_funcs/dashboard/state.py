"""What the dashboard shows, gathered from one Client, the fleet state and the journal.

The halt and the daily-loss baseline are the account's, as every agent
process sees them: read from the fleet state (this host's files, or Redis)
through :func:`ib_nice_funcs.fleet.view.read_fleet`, not from this process.

:func:`risk_bars`, :func:`shared_daily_pnl` and :func:`account_halt` are pure;
:class:`StateCollector` asks the Client (blocking calls, each bounded by its
timeout) at most once per ``min_interval_s`` however many browser tabs
poll, and never raises: a section that failed carries its error instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from ..fleet.view import RESUME_HINT, FleetView, read_fleet
from ..trade_journal.store import JournalUnreadableError, read_processes, summary
from ..trade_journal.writer import HEARTBEAT_S, flush_writer
from ..trading.account import trading_day

__all__ = ["RiskBar", "risk_bars", "fleet_usage", "agents_alive", "StateCollector",
           "HaltState", "shared_daily_pnl", "account_halt"]

log = logging.getLogger("ib_nice_funcs")

#: Day trades a margin account under USD 25,000 may make in 5 business days.
_PDT_ALLOWED = 3
_RECENT_FILLS = 50
#: Seconds between Client Portal probes (a REST round trip; its rate limit is shared).
_PORTAL_PROBE_S = 10.0
#: Longest wait for the fleet state (files: well under a millisecond; Redis: its 1 s timeout).
_FLEET_READ_S = 3.0


class RiskBar(TypedDict):
    """One risk limit: how much of it is used (``used`` / ``limit``, ``fraction`` 0..1+)."""

    name: str
    label: str
    used: float
    limit: float
    fraction: float


def risk_bars(limits: Mapping[str, Any], positions_usd: Mapping[str, float],
              daily_pnl: float, day_trades: int) -> list[RiskBar]:
    """One bar per risk limit from a risk snapshot's numbers (pure)."""

    def bar(name: str, label: str, used: float, limit: float) -> RiskBar:
        return RiskBar(name=name, label=label, used=used, limit=limit,
                       fraction=(used / limit) if limit > 0 else 0.0)

    largest_symbol, largest = "", 0.0
    for symbol, value in positions_usd.items():
        if abs(value) > largest:
            largest_symbol, largest = symbol, abs(value)
    bars = [
        bar("max_daily_loss_usd", "daily loss", max(0.0, -daily_pnl),
            float(limits["max_daily_loss_usd"])),
        bar("max_position_usd",
            f"largest position{' (' + largest_symbol + ')' if largest_symbol else ''}",
            largest, float(limits["max_position_usd"])),
        bar("max_exposure_usd", "gross exposure",
            sum(abs(v) for v in positions_usd.values()), float(limits["max_exposure_usd"])),
    ]
    if limits.get("pdt_guard"):
        bars.append(bar("pdt", "day trades (5 days)", float(day_trades), float(_PDT_ALLOWED)))
    return bars


#: A process whose last heartbeat is older than this is shown as gone.
ALIVE_WITHIN_S = 3 * HEARTBEAT_S


def fleet_usage(processes: Sequence[Mapping[str, Any]], gateway: str, now: float,
                own: Mapping[str, Any]) -> dict[str, Any]:
    """Market-data lines and pacing of every live process on ``gateway`` (pure).

    ``own``: this process's ``lines``, ``lines_limit``, ``pacing_left``,
    ``pacing_limit``: used when no heartbeat is known (the journal is off).
    """
    live = [p for p in processes
            if p.get("gateway") == gateway and float(p["ts"]) >= now - ALIVE_WITHIN_S]
    if not live:
        return {"scope": "this dashboard", "processes": 1,
                "lines": {"used": own.get("lines"), "limit": own.get("lines_limit")},
                "pacing": None if own.get("pacing_left") is None else
                {"left": own["pacing_left"], "limit": own["pacing_limit"]}}
    paced = [p for p in live if p.get("pacing_left") is not None]
    tightest = min(paced, key=lambda p: p["pacing_left"]) if paced else None
    return {"scope": "all agents", "processes": len(live),
            "lines": {"used": sum(int(p.get("lines") or 0) for p in live),
                      "limit": max(int(p.get("lines_limit") or 0) for p in live)},
            "pacing": None if tightest is None else
            {"left": tightest["pacing_left"], "limit": tightest["pacing_limit"],
             "agent": tightest.get("agent")}}


def agents_alive(agents: Sequence[Mapping[str, Any]], processes: Sequence[Mapping[str, Any]],
                 now: float) -> list[dict[str, Any]]:
    """The journal's agents, each with its live processes, lines and connection (pure)."""
    by_agent: dict[str, list[Mapping[str, Any]]] = {}
    for p in processes:
        if float(p["ts"]) >= now - ALIVE_WITHIN_S:
            by_agent.setdefault(str(p.get("agent")), []).append(p)
    names = [str(a["agent"]) for a in agents]
    rows = [dict(a) for a in agents]
    rows += [{"agent": name, "last_seen": max(float(p["ts"]) for p in procs), "orders": 0,
              "fills": 0, "refusals": 0} for name, procs in by_agent.items() if name not in names]
    for row in rows:
        procs = by_agent.get(str(row["agent"]), [])
        row["alive"] = bool(procs)
        row["processes"] = len(procs)
        row["connected"] = any(p.get("connected") for p in procs) if procs else None
        row["lines"] = sum(int(p.get("lines") or 0) for p in procs) if procs else None
    return sorted(rows, key=lambda r: str(r["agent"]))


def shared_daily_pnl(net_liquidation: float, trader_daily_pnl: float,
                     fleet_day_start: float | None) -> tuple[float, str]:
    """Today's P&L as the agents' daily-loss checks count it, and what it is measured from (pure).

    From the fleet's day start (the first net liquidation any process of the
    account stored today) when there is one; the Trader's own figure when it
    shows a larger loss (IB's previous-day equity after a mid-day start, as
    the risk check takes it) or when the fleet has no baseline.
    """
    if fleet_day_start is None:
        return float(trader_daily_pnl), "this process (the fleet has no day start)"
    shared = float(net_liquidation) - float(fleet_day_start)
    if trader_daily_pnl < shared:
        return float(trader_daily_pnl), "the risk check's larger loss"
    return shared, "the fleet's day start"


def account_halt(own: Mapping[str, Any], fleet: Mapping[str, Any]) -> dict[str, Any]:
    """The halt the page shows (pure).

    The fleet's account-wide latch (who latched it, when, why, how to resume)
    when the fleet state could be read; else this dashboard's own record of
    its stop, with ``known`` False.

    Args:
        own: :meth:`HaltState.view`.
        fleet: A :class:`~ib_nice_funcs.fleet.view.FleetView`, or ``{"error": ...}``.
    """
    view: dict[str, Any] = {"halted": False, "known": True, "scope": "account", "reason": "",
                            "since": None, "by": None, "by_pid": None, "by_host": None,
                            "by_alive": None, "by_this_process": None, "message": "",
                            "resume": RESUME_HINT, "last_stop": own.get("last_stop"),
                            "fleet_error": fleet.get("error")}
    if fleet.get("error") is not None or "halt" not in fleet:
        view.update(known=False, scope="this dashboard", halted=bool(own.get("halted")),
                    reason=own.get("reason") or "", since=own.get("since"))
        if view["halted"]:
            view["by_this_process"] = True
        return view
    halt = fleet["halt"]
    if halt is not None:
        view.update(halted=True, reason=halt["reason"], since=halt["at"], by=halt["by"],
                    by_pid=halt["pid"], by_host=halt["host"], by_alive=halt["alive"],
                    by_this_process=halt["this_process"], message=halt["message"])
    return view


class HaltState:
    """This dashboard's record of its own stop, and how it lifts the halt.

    The page shows the fleet's account-wide halt (:func:`account_halt`);
    this record stands in only while the fleet state cannot be read.
    Resume calls the package's ``resume_trading()`` when it has one (the
    fleet-wide latch that ``emergency_stop()`` sets for every agent process:
    ``Trader.resume_trading`` or ``ib_nice_funcs.fleet.resume_trading``);
    without it, the halt is the dashboard's own record of its stop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.halted = False
        self.reason = ""
        self.since: float | None = None
        self.last_stop: dict[str, Any] | None = None

    def halt(self, reason: str, result: dict[str, Any] | None) -> None:
        with self._lock:
            self.halted, self.reason, self.since = True, reason, time.time()
            self.last_stop = result

    def resume(self, trader: Any = None, timeout: float | None = None) -> str:
        """Lift the halt, the fleet-wide one too when the package has it (blocks up to
        ``timeout``). Errors from the fleet's resume propagate and the halt stays."""
        resume = getattr(trader, "resume_trading", None)
        if resume is None:
            try:
                from .. import fleet
            except ImportError:
                resume = None
            else:
                resume = getattr(fleet, "resume_trading", None)
        note = "the dashboard's halt is lifted"
        if callable(resume):
            resume(timeout=timeout)
            note = "resume_trading() called: every agent process may open positions again"
        with self._lock:
            self.halted, self.reason, self.since = False, "", None
        return note

    def view(self) -> dict[str, Any]:
        with self._lock:
            stop = self.last_stop
            return {"halted": self.halted, "reason": self.reason, "since": self.since,
                    "last_stop": None if stop is None else {
                        "success": stop.get("success"),
                        "cancelled_orders": stop.get("cancelled_orders"),
                        "closed": len(stop.get("closed") or []),
                        "remaining_positions": stop.get("remaining_positions"),
                        "error": stop.get("error")}}


def _section(fn: Callable[[], Any]) -> Any:
    """``fn()``'s value, or ``{"error": ...}`` when it failed (the page shows it)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - one broken section must not blank the page
        return {"error": f"{type(exc).__name__}: {exc}"}


class StateCollector:
    """Builds the page's state from a Client, at most once per ``min_interval_s``.

    Threading: :meth:`state` may be called from many threads (web workers);
    one refresh runs at a time, the others get the last state. Each refresh
    blocks up to about ``timeout`` seconds per gateway call.
    """

    def __init__(self, client: Any, journal_path: Path | None, halt: HaltState,
                 min_interval_s: float = 0.5, timeout: float = 5.0) -> None:
        self.client = client
        self.journal_path = journal_path
        self.halt = halt
        self.min_interval_s = min_interval_s
        self.timeout = timeout
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None
        self._at = 0.0
        self._portal: tuple[float, bool] | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._at = 0.0

    def halt_now(self) -> dict[str, Any]:
        """The halt as the fleet state says it now (blocks up to a few seconds; raises nothing)."""
        return account_halt(self.halt.view(), self._fleet())

    def state(self) -> dict[str, Any]:
        with self._lock:
            if self._state is not None and time.monotonic() - self._at < self.min_interval_s:
                return self._state
            self._state = self._collect()
            self._at = time.monotonic()
            return self._state

    # -- the sections -------------------------------------------------------------

    def _collect(self) -> dict[str, Any]:
        settings = self.client.settings
        trader = self.client.trading
        t = self.timeout
        snapshot = _section(lambda: trader.risk_snapshot(timeout=t))
        # After the snapshot: this process's risk check has stored the day's baseline
        # if it was the account's first look today.
        fleet = self._fleet()
        limits = {"max_daily_loss_usd": settings.max_daily_loss_usd,
                  "max_position_usd": settings.max_position_usd,
                  "max_exposure_usd": settings.max_exposure_usd,
                  "pdt_guard": settings.pdt_guard}
        if isinstance(snapshot, dict):  # the gateway failed
            account: dict[str, Any] = dict(snapshot)
            bars: Any = snapshot
        else:
            cash = _section(lambda: trader.get_balance(timeout=t))
            daily, basis = shared_daily_pnl(snapshot.net_liquidation, snapshot.daily_pnl,
                                            fleet.get("day_start"))
            account = {"net_liquidation": snapshot.net_liquidation,
                       "cash": cash if not isinstance(cash, dict) else None,
                       "daily_pnl": daily, "day_start": fleet.get("day_start"),
                       "pnl_from": basis,
                       "max_daily_loss_usd": settings.max_daily_loss_usd}
            bars = risk_bars(limits, snapshot.positions_usd, daily,
                             snapshot.day_trades_last_5_days)
        journal = self._journal()
        return {
            "now": float(settings.clock()),
            "gateway": f"{settings.host}:{settings.port}",
            "client_id": settings.client_id,
            "account": account,
            "positions": _section(lambda: trader.get_all_positions(timeout=t)),
            "orders": _section(lambda: trader.get_open_orders(timeout=t)),
            "risk": bars,
            "sources": self._sources(journal.get("processes", []), snapshot),
            "journal": journal,
            "fleet": fleet,
            "halt": account_halt(self.halt.view(), fleet),
        }

    def _fleet(self) -> FleetView | dict[str, Any]:
        """The account's fleet state (its halt, baseline and processes), or why not."""
        settings = self.client.settings
        try:
            account = settings.account or self.client.gateway.account
        except Exception as exc:  # noqa: BLE001 - a closed Client: shown, not raised
            return {"error": f"{type(exc).__name__}: {exc}"}
        if not account:
            return {"error": "the account is not known yet (the gateway has not answered; "
                             "set IB_ACCOUNT to read the fleet state without it)"}
        day = trading_day(settings.clock()).isoformat()
        return _section(lambda: read_fleet(settings, account, day,
                                           min(self.timeout, _FLEET_READ_S)))

    def _sources(self, processes: Sequence[Mapping[str, Any]], snapshot: Any) -> dict[str, Any]:
        """Each source's health; IB's from this refresh's risk snapshot (it went through
        the loop thread, so nothing here reads ib_async from a web worker)."""
        client = self.client
        settings = client.settings
        rows = []
        ib_source = None
        for name in settings.sources:
            if name == "ib":
                ib_source = _section(lambda: client.source("ib"))
                failed = snapshot.get("error", "") if isinstance(snapshot, dict) else ""
                up = not failed.startswith(("ConnectionFailedError", "RequestTimeoutError"))
                delayed = bool(getattr(ib_source, "delayed", False)) if not isinstance(
                    ib_source, dict) else False
                rows.append({"name": "ib", "up": up, "delayed": delayed,
                             "detail": f"TWS / IB Gateway {settings.host}:{settings.port}"})
            elif name == "portal":
                rows.append({"name": "portal", "up": self._portal_up(), "delayed": False,
                             "detail": settings.portal_url or "not configured"})
            else:
                rows.append({"name": name, "up": None, "delayed": name == "yfinance",
                             "detail": "fallback, not probed (delayed quotes)"
                             if name == "yfinance" else "registered source"})
        own: dict[str, Any] = {"lines_limit": settings.max_market_data_lines}
        if ib_source is not None and not isinstance(ib_source, dict):
            own["lines"] = ib_source.tickers.lines
            own["pacing_left"] = ib_source.pacing.requests_left()
            own["pacing_limit"] = ib_source.pacing.max_requests
        usage = fleet_usage(processes, f"{settings.host}:{settings.port}",
                            float(settings.clock()), own)
        return {"sources": rows, **usage}

    def _portal_up(self) -> bool | None:
        """Whether the Client Portal answers (asked at most every ``_PORTAL_PROBE_S``)."""
        if not self.client.settings.portal_url:
            return None
        now = time.monotonic()
        if self._portal is None or now - self._portal[0] >= _PORTAL_PROBE_S:
            try:
                self.client.source("portal").account(timeout=min(self.timeout, 3.0))
                up = True
            except Exception:  # noqa: BLE001 - down is the answer
                up = False
            self._portal = (now, up)
        return self._portal[1]

    def _journal(self) -> dict[str, Any]:
        path = self.journal_path
        if path is None:
            return {"path": None, "fills": [], "agents": [], "fill_count": 0,
                    "error": "the journal is off"}
        flush_writer(path, 1.0)
        try:
            got = summary(path, _RECENT_FILLS)
            processes = read_processes(path)
        except JournalUnreadableError as exc:
            return {"path": str(path), "fills": [], "agents": [], "fill_count": 0,
                    "processes": [], "error": str(exc)}
        got["agents"] = agents_alive(got["agents"], processes, float(self.client.settings.clock()))
        return {"path": str(path), **got, "processes": processes, "error": None}
