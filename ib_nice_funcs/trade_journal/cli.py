"""``ib-nice-funcs report``: the journal's numbers per symbol and per agent."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .api import SINCE_FORMS, parse_since
from .report import GroupStats, Report, build_report
from .store import JournalUnreadableError, read_rows, resolve_path
from .writer import flush_writer

__all__ = ["add_commands", "format_report", "report_for"]

Handler = Callable[[argparse.Namespace], int]


def report_for(path: Path, now: float, since: Any = None, agent: str | None = None) -> Report:
    """The report of the journal at ``path`` (an unreadable file is named in ``unreadable``).

    Raises:
        ValueError: an unknown ``since`` form, or an agent the journal never saw.
    """
    start = parse_since(since, now)
    flush_writer(path)
    try:
        everything = read_rows(path)
    except JournalUnreadableError as exc:
        return build_report([], now, since=start, agent=agent, unreadable=[str(exc)])
    agents = sorted({r["agent"] for r in everything if r["agent"]})
    if agent is not None and agent not in agents:
        raise ValueError(f"--agent {agent!r} has no rows in {path}; agents seen: "
                         f"{', '.join(agents) or 'none yet'}")
    mine = [r for r in everything if agent is None or r["agent"] == agent]
    rows = [r for r in mine if start is None or r["ts"] >= start]
    month = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m")
    month_rows = [r for r in mine
                  if datetime.fromtimestamp(r["ts"], timezone.utc).strftime("%Y-%m") == month]
    return build_report(rows, now, since=start, agent=agent, month_rows=month_rows)


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


_COLUMNS = ("key", "orders_sent", "orders_filled", "fill_rate", "fills", "bought_qty",
            "sold_qty", "position", "realized_pnl", "commissions", "net_pnl",
            "avg_slippage_bps", "worst_slippage_bps", "refusals")


def _table(title: str, groups: list[GroupStats]) -> list[str]:
    headers = (title, "sent", "filled", "fill%", "realized", "commiss.", "net", "slip avg",
               "slip worst", "refusals")
    rows = [(g["key"], str(g["orders_sent"]), str(g["orders_filled"]),
             _num(None if g["fill_rate"] is None else 100 * g["fill_rate"], 0),
             _num(g["realized_pnl"]), _num(g["commissions"]), _num(g["net_pnl"]),
             _num(g["avg_slippage_bps"], 1), _num(g["worst_slippage_bps"], 1),
             ", ".join(f"{k}={v}" for k, v in g["refusals"].items()) or "-")
            for g in groups]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) if i in (0, 9) else h.rjust(w)
                     for i, (h, w) in enumerate(zip(headers, widths, strict=True)))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(c.ljust(w) if i in (0, 9) else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
    return out


def format_report(report: Report, path: Path) -> str:
    """The report as text tables (slippage in basis points, positive = adverse)."""
    since = report["since"]
    head = f"Trade journal {path}"
    if since is not None:
        head += f", since {datetime.fromtimestamp(since, timezone.utc):%Y-%m-%d %H:%M} UTC"
    if report["agent"]:
        head += f", agent {report['agent']}"
    out = [head, ""]
    for note in report["unreadable"]:
        out.append(f"could not read: {note}")
    if not report["by_symbol"] and not report["unreadable"]:
        out.append("no orders recorded yet")
    if report["by_symbol"]:
        out += _table("symbol", report["by_symbol"]) + [""] + _table("agent", report["by_agent"])
        out.append("")
        out.append("P&L: realized, average cost, from the journal's fills (quote currency); "
                   "slippage in bps against the arrival price, positive = adverse.")
    if report["refusals"]:
        out.append("refusals: " + ", ".join(f"{k} {v}" for k, v in report["refusals"].items()))
    costs = report["month_costs"]
    if costs:
        out += ["", f"IB costs in {costs['month']} ({costs['orders']} filled orders): "
                    f"commissions paid ${costs['commissions_paid']:,.2f}, by IBKR Pro fixed "
                    f"schedule ${costs['commissions_schedule']:,.2f}, market data "
                    f"${_num(costs['market_data'])} (schedule checked {costs['schedule_date']})"]
    return "\n".join(out)


def _csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(("group", *_COLUMNS))
    for group, items in (("symbol", report["by_symbol"]), ("agent", report["by_agent"])):
        for g in items:
            values = dict(g)
            writer.writerow((group, *(json.dumps(values[c]) if c == "refusals" else values[c]
                                      for c in _COLUMNS)))
    return buf.getvalue()


def _report(args: argparse.Namespace) -> int:
    from ..config import get_settings

    settings = get_settings()
    path = resolve_path(args.journal if args.journal else settings.journal)
    if path is None:
        print("the journal is off (IB_NICE_FUNCS_JOURNAL=off); nothing to report",
              file=sys.stderr)
        return 1
    report = report_for(path, float(settings.clock()), args.since, args.agent)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    elif args.csv:
        sys.stdout.write(_csv(report))
    else:
        print(format_report(report, path))
    return 1 if report["unreadable"] else 0


def add_commands(sub: Any, common: argparse.ArgumentParser,
                 command: Callable[[str], Callable[[Handler], Handler]]) -> None:
    """Add ``report`` to the ``ib-nice-funcs`` parser."""
    p = sub.add_parser("report", help="per symbol and agent: P&L, commissions, slippage, "
                                      "fill rate, refusals; the month's IB costs")
    p.add_argument("--since", help=f"only orders from then on: {SINCE_FORMS}")
    p.add_argument("--agent", help="only this agent's orders")
    p.add_argument("--journal", metavar="FILE",
                   help="the journal file (default: IB_NICE_FUNCS_JOURNAL or the user data dir)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    command("report")(_report)
