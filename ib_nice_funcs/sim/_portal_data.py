"""Contract and market data endpoints of the Client Portal simulator.

- ``/iserver/secdef/search``: a list of matches; ``conid`` is a *string* here.
  Stocks also carry an ``OPT`` section (pick the ``STK`` one).
- ``/trsrv/stocks`` and ``/iserver/currency/pairs``: ``conid`` is an int.
- ``/iserver/marketdata/snapshot``: the first call for a conid starts the
  subscription and returns only ``conid``/``conidEx``/``_updated``/server ids;
  a field requested for the first time appears from the next call on. Values
  are strings: 31 last (``C`` prefix = the market is closed and the value is
  the latest close, ``H`` = halted), 84/86 bid/ask, 88/85 bid/ask sizes
  (US stocks in round lots of 100, thousands separated by commas), 87 volume
  (``K``/``M``/``B``), 7762 volume, 7295 open, 70 high, 71 low, 7296 close
  (only once the session has closed), 7741 prior close, 82/83 change and
  change %, 6509 availability (``RpB`` live, ``ZpB`` frozen after the close,
  ``DpB`` delayed, ``N`` none: no price fields at all).
- ``/iserver/marketdata/history``: ``bar`` and ``period`` as the real gateway
  spells them (400 otherwise), ``startTime`` (``YYYYMMDD-HH:MM:SS`` UTC) is the
  *end* of the window; at most ``max_history_points`` (1000) most recent bars.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ._portal_http import HttpError, Reply, Request, Route
from .catalog import CRYPTO, FX, STOCK, Instrument

if TYPE_CHECKING:
    from .views import PortalView

_DEFAULT_FIELDS = "31,84,86"
_STATIC = ("55", "6008", "6070", "7051", "7221", "6509")


# ------------------------------------------------------------------ contracts
def _search_item(inst: Instrument) -> dict:
    sections = [{"secType": inst.sec_type, "exchange": inst.valid_exchanges.replace(",", ";")}]
    if inst.sec_type == STOCK:
        sections.append({"secType": "OPT", "months": "MAR24;APR24;MAY24;JUN24",
                         "exchange": "SMART;AMEX;BOX;CBOE;ISE;PHLX"})
    return {"conid": str(inst.con_id),
            "companyHeader": f"{inst.long_name} - {inst.primary_exchange}",
            "companyName": inst.long_name,
            "symbol": inst.local_symbol if inst.sec_type == FX else inst.symbol,
            "description": inst.primary_exchange, "restricted": None, "fop": None,
            "opt": "20240315;20240322" if inst.sec_type == STOCK else None, "war": None,
            "sections": sections}


def _matches(sim: PortalView, text: str, sec_type: str, by_name: bool) -> list[Instrument]:
    q = text.strip().upper()
    out = []
    for inst in sim.market.instruments():
        if sec_type and inst.sec_type != sec_type:
            continue
        names = {inst.symbol.upper(), inst.key.upper(), inst.key.replace(".", "").upper(),
                 inst.local_symbol.upper()}
        if q in names or (by_name and q and q in inst.long_name.upper()):
            out.append(inst)
    return out


async def secdef_search(sim: PortalView, req: Request, params: dict) -> Reply:
    args = dict(req.query)
    if req.method == "POST":
        body = req.json() or {}
        if isinstance(body, dict):
            args.update({k: str(v) for k, v in body.items()})
    symbol = args.get("symbol", "")
    if not symbol.strip():
        raise HttpError(400, "symbol parameter is required")
    sec_type = args.get("secType", "").strip().upper()
    by_name = args.get("name", "false").lower() == "true"
    return Reply(200, [_search_item(i) for i in _matches(sim, symbol, sec_type, by_name)])


async def trsrv_stocks(sim: PortalView, req: Request, params: dict) -> Reply:
    symbols = [s.strip() for s in req.query.get("symbols", "").split(",") if s.strip()]
    if not symbols:
        raise HttpError(400, "symbols parameter is required")
    out: dict[str, list] = {}
    for sym in symbols:
        out[sym] = [{"name": i.long_name, "chineseName": None, "assetClass": "STK",
                     "contracts": [{"conid": i.con_id, "exchange": i.primary_exchange,
                                    "isUS": True}]}
                    for i in _matches(sim, sym, STOCK, False)]
    return Reply(200, out)


async def currency_pairs(sim: PortalView, req: Request, params: dict) -> Reply:
    ccy = req.query.get("currency", "").strip().upper()
    if not ccy:
        raise HttpError(400, "currency parameter is required")
    pairs = []
    for inst in sim.market.instruments():
        if inst.sec_type != FX or ccy not in (inst.symbol, inst.currency):
            continue
        other = inst.currency if inst.symbol == ccy else inst.symbol
        pairs.append({"symbol": inst.local_symbol, "conid": inst.con_id, "ccyPair": other})
    return Reply(200, {ccy: pairs})


async def contract_info(sim: PortalView, req: Request, params: dict) -> Reply:
    inst = sim.instrument(params["conid"])
    return Reply(200, {
        "cfi_code": "", "symbol": inst.symbol, "cusip": None, "expiry_full": None,
        "con_id": inst.con_id, "maturity_date": None, "industry": inst.industry or None,
        "instrument_type": inst.sec_type, "trading_class": inst.trading_class,
        "valid_exchanges": inst.valid_exchanges, "allow_sell_long": False,
        "is_zero_commission_security": False, "local_symbol": inst.local_symbol,
        "contract_clarification_type": None, "classifier": None, "currency": inst.currency,
        "text": None, "underlying_con_id": 0, "r_t_h": True, "multiplier": None,
        "underlying_issuer": None, "contract_month": None, "company_name": inst.long_name,
        "smart_available": inst.sec_type == STOCK, "exchange": inst.exchange,
        "category": inst.category or None, "min_tick": inst.min_tick,
        "size_increment": inst.size_increment,
    })


# ------------------------------------------------------------------ snapshot
def _price(inst: Instrument, x: float) -> str:
    return f"{x:.{inst.price_decimals}f}"


def _kmb(v: float) -> str:
    """Volume as the gateway abbreviates it: ``523``, ``1.08K``, ``23.6M``."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if v >= div:
            x = v / div
            return (f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}") + suffix
    return f"{v:.4g}"


def _size(inst: Instrument, size: float) -> str:
    if inst.sec_type == STOCK:
        return f"{int(round(size / 100.0)):,}"
    return f"{size:,g}"


def snapshot_values(sim: PortalView, inst: Instrument) -> dict[str, str]:
    """Every snapshot field the simulator knows for ``inst`` now (strings)."""
    out = {"55": inst.local_symbol if inst.sec_type == FX else inst.symbol,
           "6008": str(inst.con_id), "6070": inst.sec_type, "7051": inst.long_name,
           "7221": inst.primary_exchange}
    avail = (sim.md_availability or "R")[:1].upper()
    if avail == "N":
        out["6509"] = "N"
        return out
    q = sim.market.quote(inst.key)
    if avail == "R" and not q.is_open:
        avail = "Z"
    out["6509"] = avail + "pB"
    prefix = "H" if inst.key.upper() in sim.halted else ("" if q.is_open else "C")
    out["31"] = prefix + _price(inst, q.last)
    out["84"] = _price(inst, q.bid)
    out["86"] = _price(inst, q.ask)
    out["88"] = _size(inst, q.bid_size)
    out["85"] = _size(inst, q.ask_size)
    out["7295"] = _price(inst, q.open)
    out["70"] = _price(inst, q.high)
    out["71"] = _price(inst, q.low)
    out["7741"] = _price(inst, q.prior_close)
    if not q.is_open:
        out["7296"] = _price(inst, q.last)
    change = q.last - q.prior_close
    out["82"] = _price(inst, change)
    out["83"] = f"{(change / q.prior_close * 100.0) if q.prior_close else 0.0:.2f}"
    if inst.sec_type != FX:
        out["87"] = _kmb(q.volume)
        out["7762"] = f"{q.volume:.0f}" if inst.sec_type == STOCK else f"{q.volume:g}"
    return out


async def snapshot(sim: PortalView, req: Request, params: dict) -> Reply:
    conids = [c.strip() for c in req.query.get("conids", "").split(",") if c.strip()]
    if not conids:
        raise HttpError(400, "conids parameter is required")
    fields = [f.strip() for f in (req.query.get("fields") or _DEFAULT_FIELDS).split(",")
              if f.strip()]
    now = sim.clock()
    stamp = sim.now_ms()
    subs = sim.session.subscriptions
    out = []
    for text in conids:
        try:
            conid = int(text.split("@")[0])
        except ValueError:
            raise HttpError(400, f"Invalid conid: {text}") from None
        server = f"q{list(subs).index(conid) if conid in subs else len(subs)}"
        item: dict = {"conidEx": text, "conid": conid, "_updated": stamp, "server_id": server,
                      "6119": server}
        known = subs.get(conid)
        if known is None:  # the first call only starts the subscription
            subs[conid] = set(fields)
            sim.session.sub_started[conid] = now
            out.append(item)
            continue
        inst = sim.market.by_con_id(conid)
        if inst is not None and now - sim.session.sub_started[conid] >= sim.snapshot_warmup_s:
            values = snapshot_values(sim, inst)
            for f in fields:
                if f in known and f in values:
                    item[f] = values[f]
        known.update(fields)
        out.append(item)
    return Reply(200, out)


async def unsubscribe_all(sim: PortalView, req: Request, params: dict) -> Reply:
    sim.session.subscriptions.clear()
    sim.session.sub_started.clear()
    return Reply(200, {"unsubscribed": True})


async def unsubscribe(sim: PortalView, req: Request, params: dict) -> Reply:
    body = req.json() or {}
    raw: Any = body.get("conid") if isinstance(body, dict) else None  # any JSON value
    try:
        conid = int(raw)
    except (TypeError, ValueError):
        raise HttpError(400, "conid is required") from None
    found = sim.session.subscriptions.pop(conid, None) is not None
    sim.session.sub_started.pop(conid, None)
    return Reply(200, {"success": found})


# ------------------------------------------------------------------- history
#: bar text -> (seconds, kind for PaperMarket.bars)
HISTORY_BARS: dict[str, tuple[int, str]] = {
    "1min": (60, "seconds"), "2min": (120, "seconds"), "3min": (180, "seconds"),
    "5min": (300, "seconds"), "10min": (600, "seconds"), "15min": (900, "seconds"),
    "30min": (1800, "seconds"), "1h": (3600, "seconds"), "2h": (7200, "seconds"),
    "3h": (10800, "seconds"), "4h": (14400, "seconds"), "8h": (28800, "seconds"),
    "1d": (86400, "day"), "1w": (7 * 86400, "week"), "1m": (31 * 86400, "month"),
}
#: period unit -> largest count
HISTORY_PERIOD_MAX = {"min": 30, "h": 8, "d": 1000, "w": 792, "m": 182, "y": 15}
_PERIOD_RE = re.compile(r"^(\d+)(min|h|d|w|m|y)$")
_START_RE = re.compile(r"^(\d{8})[- ](\d{2}):(\d{2}):(\d{2})$")


def parse_period(text: str) -> tuple[int, str]:
    """``"5d"`` -> ``(5, "d")``.

    Raises:
        HttpError: 400 for anything outside the gateway's ranges.
    """
    m = _PERIOD_RE.match(text.strip().lower())
    if not m or not 1 <= int(m.group(1)) <= HISTORY_PERIOD_MAX[m.group(2)]:
        raise HttpError(400, f"Invalid period: {text!r}. Use {{1-30}}min, {{1-8}}h, "
                             "{1-1000}d, {1-792}w, {1-182}m or {1-15}y")
    return int(m.group(1)), m.group(2)


def parse_bar(text: str) -> tuple[int, str]:
    """``"1h"`` -> ``(3600, "seconds")``.

    Raises:
        HttpError: 400 for a bar size the gateway does not know.
    """
    try:
        return HISTORY_BARS[text.strip().lower()]
    except KeyError:
        raise HttpError(400, f"Invalid bar: {text!r}. Use one of "
                             + ", ".join(HISTORY_BARS)) from None


def _window_start(sim: PortalView, inst: Instrument, n: int, unit: str, end: float,
                  use_rth: bool) -> float:
    if unit == "min":
        return end - n * 60
    if unit == "h":
        return end - n * 3600
    if unit == "d":  # trading days, as IB counts them
        sess = sim.market.last_sessions(inst.key, end, n, use_rth=use_rth)
        return sess[0].start if sess else end
    if unit == "w":
        return end - n * 7 * 86400
    local = dt.datetime.fromtimestamp(end, ZoneInfo(inst.time_zone))
    if unit == "m":
        months = local.year * 12 + local.month - 1 - n
        return local.replace(year=months // 12, month=months % 12 + 1,
                             day=min(local.day, 28)).timestamp()
    return local.replace(year=local.year - n, day=min(local.day, 28)).timestamp()


def _bars(sim: PortalView, inst: Instrument, start: float, end: float, bar_s: int,
          kind: str, use_rth: bool, limit: int):
    what = {STOCK: "TRADES", FX: "MIDPOINT", CRYPTO: "AGGTRADES"}.get(inst.sec_type, "TRADES")
    if kind != "seconds":
        return sim.market.bars(inst.key, start, end, bar_s, kind, what, use_rth)
    lo = max(start, end - limit * bar_s * 2)
    while True:  # widen from the end until there are enough bars or the window is covered
        bars = sim.market.bars(inst.key, lo, end, bar_s, kind, what, use_rth)
        if len(bars) >= limit or lo <= start:
            return bars
        lo = max(start, end - (end - lo) * 3)


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y%m%d-%H:%M:%S")


async def history(sim: PortalView, req: Request, params: dict) -> Reply:
    q = req.query
    if not q.get("conid", "").strip():
        raise HttpError(400, "conid parameter is required")
    inst = sim.instrument(q["conid"])
    bar_text = q.get("bar", "1min")
    period_text = q.get("period", "1w")
    bar_s, kind = parse_bar(bar_text)
    n, unit = parse_period(period_text)
    outside = q.get("outsideRth", "false").strip().lower() == "true"
    now = sim.market.now()
    end = now + 1e-6
    if q.get("startTime", "").strip():
        m = _START_RE.match(q["startTime"].strip())
        if not m:
            raise HttpError(400, f"Invalid startTime: {q['startTime']!r}; use "
                                 "YYYYMMDD-HH:MM:SS (UTC)")
        try:
            t = dt.datetime.strptime("".join(m.groups()), "%Y%m%d%H%M%S").replace(
                tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            raise HttpError(400, f"Invalid startTime: {q['startTime']!r}") from None
        end = min(end, t)
    use_rth = not outside
    start = _window_start(sim, inst, n, unit, end, use_rth)
    limit = int(sim.max_history_points)
    bars = _bars(sim, inst, start, end, bar_s, kind, use_rth, limit)
    keep = slice(max(0, len(bars) - limit), len(bars))
    dec = inst.price_decimals
    times = bars.time[keep].tolist()
    data = [{"o": round(o, dec), "c": round(c, dec), "h": round(h, dec), "l": round(lo, dec),
             "v": max(0.0, float(v)), "t": int(t) * 1000}
            for o, c, h, lo, v, t in zip(bars.open[keep].tolist(), bars.close[keep].tolist(),
                                         bars.high[keep].tolist(), bars.low[keep].tolist(),
                                         bars.volume[keep].tolist(), times, strict=False)]
    factor = 10 ** dec
    hi = max((d["h"] for d in data), default=0.0)
    lo_ = min((d["l"] for d in data), default=0.0)
    return Reply(200, {
        "serverId": str(int(sim.stable_hex("hist", n=5), 16) % 90000 + 10000),
        "symbol": inst.local_symbol if inst.sec_type == FX else inst.symbol,
        "text": inst.long_name, "priceFactor": factor,
        "startTime": _stamp(times[0]) if times else _stamp(start),
        "high": f"{round(hi * factor)}/0/0", "low": f"{round(lo_ * factor)}/0/0",
        "timePeriod": period_text, "barLength": bar_s if kind == "seconds" else 86400,
        "mdAvailability": "S", "mktDataDelay": 0, "outsideRth": outside,
        "tradingDayDuration": 1440, "volumeFactor": 1, "priceDisplayRule": 1,
        "priceDisplayValue": str(dec), "chartPanStartTime": _stamp(start),
        "direction": -1, "negativeCapable": False, "messageVersion": 2, "travelTime": 12,
        "data": data, "points": len(data),
    })


ROUTES = [
    Route(("GET", "POST"), "/iserver/secdef/search", secdef_search, iserver=True),
    Route(("GET",), "/trsrv/stocks", trsrv_stocks),
    Route(("GET",), "/iserver/currency/pairs", currency_pairs, iserver=True),
    Route(("GET",), "/iserver/contract/{conid}/info", contract_info, iserver=True),
    Route(("GET",), "/iserver/marketdata/snapshot", snapshot, iserver=True, preflight=True),
    Route(("GET",), "/iserver/marketdata/unsubscribeall", unsubscribe_all, iserver=True),
    Route(("POST",), "/iserver/marketdata/unsubscribe", unsubscribe, iserver=True),
    Route(("GET",), "/iserver/marketdata/history", history, iserver=True),
]
