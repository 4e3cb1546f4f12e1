"""Market scanners of the TWS simulator over the paper catalog's US stocks.

``reqScannerSubscription`` with instrument ``STK`` ranks the catalog's stocks
by the scan code (``TOP_PERC_GAIN``, ``TOP_PERC_LOSE``, ``MOST_ACTIVE``,
``HOT_BY_VOLUME``, ``HIGH_OPEN_GAP``, ``LOW_OPEN_GAP``), after the
``abovePrice`` / ``belowPrice`` / ``aboveVolume`` filters, and sends
``scannerData`` at once and again every ``RESCAN_S`` seconds until
cancelled. Other instruments or scan codes answer error 162 with the
request's id, as TWS does for a scan it cannot run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _wire as w
from .catalog import STOCK, Instrument
from .market import PaperMarket, Quote

if TYPE_CHECKING:
    from ._conn import Conn
    from .tws import TWSSimulator

#: Seconds between two answers of a scanner subscription (TWS: about 30).
RESCAN_S = 30.0
MAX_ROWS = 50


def _gap(q: Quote) -> float:
    return (q.open - q.prior_close) / q.prior_close if q.prior_close else 0.0


def _change(q: Quote) -> float:
    return (q.last - q.prior_close) / q.prior_close if q.prior_close else 0.0


#: scan code -> sort key (highest first).
SCANS: dict[str, Callable[[Quote], float]] = {
    "TOP_PERC_GAIN": _change,
    "TOP_PERC_LOSE": lambda q: -_change(q),
    "MOST_ACTIVE": lambda q: q.volume,
    "HOT_BY_VOLUME": lambda q: q.volume,
    "HIGH_OPEN_GAP": _gap,
    "LOW_OPEN_GAP": lambda q: -_gap(q),
}

SCANNER_XML = ('<?xml version="1.0" encoding="UTF-8"?><ScanParameterResponse>'
               '<InstrumentList varName="fullInstrumentList"><Instrument><name>US Stocks'
               '</name><type>STK</type></Instrument></InstrumentList><LocationTree>'
               '<Location><displayName>US Stocks</displayName><locationCode>STK.US.MAJOR'
               '</locationCode><instruments>STK</instruments></Location></LocationTree>'
               '<ScanTypeList>'
               + "".join(f"<ScanType><displayName>{code}</displayName><scanCode>{code}"
                         "</scanCode><instruments>STK</instruments></ScanType>"
                         for code in SCANS)
               + '</ScanTypeList></ScanParameterResponse>')


def _num_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value < 1.7e308 else None


def scan(market: PaperMarket, code: str, rows: int, above: float | None = None,
         below: float | None = None, above_volume: float | None = None) -> list[Instrument]:
    """The catalog's stocks ranked by ``code`` (one of :data:`SCANS`), best first.

    Raises:
        KeyError: for an unknown scan code.
    """
    rank = SCANS[code]
    quotes = [(inst, market.quote(inst.key)) for inst in market.instruments()
              if inst.sec_type == STOCK]
    kept = [(inst, q) for inst, q in quotes
            if (above is None or q.last >= above) and (below is None or q.last <= below)
            and (above_volume is None or q.volume >= above_volume)]
    kept.sort(key=lambda iq: rank(iq[1]), reverse=True)
    return [inst for inst, _q in kept[:rows]]


def _scan_fields(hits: list[Instrument]) -> list[object]:
    """scannerData fields after reqId: the row count, then the rows."""
    out: list[object] = [len(hits)]
    for rank, inst in enumerate(hits):
        out += [rank, inst.con_id, inst.symbol, inst.sec_type, "", w.num(0.0), "", "SMART",
                inst.currency, inst.local_symbol, inst.trading_class, inst.trading_class, "",
                "", "", ""]
    return out


async def _stream(sim: TWSSimulator, conn: Conn, req_id: int, build: Callable[[], list]) -> None:
    try:
        while conn.writable:
            if not sim.is_deaf(conn):
                conn.send([w.SCANNER_DATA, 3, req_id] + build())
                await conn.drain()
            await asyncio.sleep(RESCAN_S)
    except (ConnectionError, asyncio.CancelledError):
        pass


async def req_scanner_subscription(sim: TWSSimulator, conn: Conn, f: w.Fields) -> None:
    if conn.sv < 143:
        f.skip()  # version
    req_id = f.int()
    rows_text, instrument, _location, code = f.str(), f.str().upper(), f.str(), f.str().upper()
    above, below, above_volume = (_num_or_none(f.str()) for _ in range(3))
    rows = int(rows_text) if rows_text.lstrip("-").isdigit() and int(rows_text) > 0 \
        else MAX_ROWS
    if instrument != STOCK or code not in SCANS:
        conn.send(w.error_msg(conn.sv, req_id, 162, "Historical Market Data Service error "
                              f"message:Scanner {instrument} {code} is not available (scans "
                              f"STK: {', '.join(SCANS)})"))
        return
    key = ("scan", req_id)
    old = conn.tasks.pop(key, None)
    if old:
        old.cancel()
    conn.tasks[key] = asyncio.create_task(_stream(
        sim, conn, req_id,
        lambda: _scan_fields(scan(sim.market, code, min(rows, MAX_ROWS), above, below,
                                  above_volume))))


async def cancel_scanner_subscription(sim: TWSSimulator, conn: Conn, f: w.Fields) -> None:
    f.skip()  # version
    task = conn.tasks.pop(("scan", f.int()), None)
    if task:
        task.cancel()


HANDLERS = {22: req_scanner_subscription, 23: cancel_scanner_subscription}
