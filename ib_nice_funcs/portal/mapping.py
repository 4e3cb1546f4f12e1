"""I/O-free mapping between this package's shapes and the Client Portal's JSON.

Plain functions only: snapshot fields -> one price, timeframes -> CP bar and
period strings, history chunk plans, history JSON -> OHLCV frame, contract
search answers -> conid, portfolio rows -> position dicts. The order shapes
live in :mod:`ib_nice_funcs.portal.order_mapping`.

The Client Portal is loose with types (a conid may be ``"265598"`` or
``265598``, prices come as text such as ``"C150.25"`` or ``"1,234.5"``,
fields are missing until a subscription warms up), so every reader here
tolerates strings, numbers, missing keys and extra keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..symbols import Instrument
    from ..timeframes import Timeframe

__all__ = [
    "BAR_BY_TIMEFRAME",
    "SNAPSHOT_FIELDS",
    "HistoryChunk",
    "accounts_info",
    "as_conid",
    "auth_healthy",
    "canonical_symbol",
    "format_period",
    "format_start_time",
    "history_frame",
    "mask_account",
    "normalize_base_url",
    "parse_number",
    "parse_price",
    "pick_fx_pair",
    "pick_search_result",
    "pick_trsrv_stock",
    "plan_history",
    "position_row",
    "snapshot_availability",
    "snapshot_price",
    "summary_values",
]

#: Snapshot fields asked for: last, bid, ask, open, high, low, close, prior
#: close, volume, availability.
SNAPSHOT_FIELDS: tuple[str, ...] = ("31", "84", "86", "7295", "70", "71", "7296", "7741", "87",
                                    "6509")

#: Our timeframe names -> the Client Portal's ``bar`` values.
BAR_BY_TIMEFRAME: Mapping[str, str] = {
    "1m": "1min", "2m": "2min", "3m": "3min", "5m": "5min", "15m": "15min", "30m": "30min",
    "1h": "1h", "2h": "2h", "4h": "4h", "1d": "1d", "1w": "1w",
}  # fmt: skip


# Period units the history endpoint accepts: (suffix, seconds, largest count).
# Months and years are left out: their length in seconds is not fixed.
_PERIOD_UNITS: tuple[tuple[str, int, int], ...] = (
    ("min", 60, 30),
    ("h", 3600, 8),
    ("d", 86_400, 1000),
    ("w", 7 * 86_400, 792),
)
_SCALE = {"K": 1e3, "M": 1e6, "B": 1e9}
_NUMBER_RE = re.compile(r"^([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)([KMB]?)$")
_US_EXCHANGES = frozenset({"NASDAQ", "NYSE", "ARCA", "AMEX", "BATS", "NYSEARCA", "NMS", "IEX",
                           "ISLAND", "SMART", "PINK", "BEX"})


# --- small readers ----------------------------------------------------------------


def normalize_base_url(url: str) -> str:
    """The API base URL: ``https://host:port/v1/api`` without a trailing slash.

    A bare ``https://localhost:5000`` gets ``/v1/api`` appended, since that is
    where the CP Gateway serves the API.

    Raises:
        ValueError: the URL has no http(s) scheme or no host.
    """
    text = str(url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"portal_url={url!r} is not an http(s) URL; use e.g. https://localhost:5000/v1/api "
            "(IB_PORTAL_URL)"
        )
    path = parts.path.rstrip("/")
    if path in ("", "/"):
        path = "/v1/api"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def mask_account(account: Any) -> str:
    """An account id fit for logs: ``DU1234567`` -> ``DU…67``."""
    text = str(account or "")
    if len(text) <= 4:
        return "…" if text else ""
    return f"{text[:2]}…{text[-2:]}"


def as_conid(value: Any) -> int | None:
    """A conid as int from ``265598``, ``"265598"`` or ``"265598@SMART"``; None if not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value > 0 else None
    text = str(value).split("@", 1)[0].strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def parse_number(value: Any) -> float | None:
    """A finite float from a CP value: ``150.2``, ``"1,234.5"``, ``"1.2M"``, ``"35K"``.

    Returns None for None, empty text, ``"-"``, ``"N/A"`` and anything else
    that is not a number.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        x = float(value)
        return x if math.isfinite(x) else None
    text = str(value).strip().replace(",", "").upper()
    m = _NUMBER_RE.match(text)
    if not m:
        return None
    x = float(m.group(1)) * _SCALE.get(m.group(2), 1.0)
    return x if math.isfinite(x) else None


def parse_price(value: Any) -> tuple[float | None, str]:
    """A price field's value and its prefix.

    Field 31 (last) may be prefixed ``C`` (the prior close: no trade yet
    today) or ``H`` (trading halted); the prefix is stripped and returned.

    Returns:
        ``(price or None, prefix)`` where prefix is ``""``, ``"C"`` or ``"H"``;
        a price must be > 0.
    """
    prefix = ""
    if isinstance(value, str):
        text = value.strip()
        while text[:1].upper() in ("C", "H"):
            prefix = prefix or text[:1].upper()
            text = text[1:].strip()
        value = text
    price = parse_number(value)
    return (price if price is not None and price > 0 else None), prefix


def _field(row: Mapping[str, Any], code: str) -> Any:
    # A different gateway (or version) may key fields by int.
    if code in row:
        return row[code]
    try:
        return row.get(int(code))  # type: ignore[call-overload]
    except (TypeError, ValueError):  # pragma: no cover - codes are numeric
        return None


def snapshot_price(row: Mapping[str, Any]) -> float | None:
    """The best single price in one snapshot row, or None if it has none yet.

    Last trade (field 31, ``C``/``H`` prefix stripped); a ``C``-prefixed last is
    the prior close, so a live bid/ask midpoint wins over it; then the
    midpoint (84/86); then today's close (7296), then the prior close (7741).
    """
    last, prefix = parse_price(_field(row, "31"))
    bid, _ = parse_price(_field(row, "84"))
    ask, _ = parse_price(_field(row, "86"))
    mid = (bid + ask) / 2.0 if bid is not None and ask is not None and ask >= bid else None
    price: float | None
    if last is not None and (prefix != "C" or mid is None):
        price = last
    elif mid is not None:
        price = mid
    else:
        price = parse_price(_field(row, "7296"))[0] or parse_price(_field(row, "7741"))[0]
    # A midpoint of two decimal quotes carries binary noise (1.1081500000000002).
    return round(price, 10) if price is not None else None


def snapshot_availability(row: Mapping[str, Any]) -> str:
    """Field 6509's primary code: ``R`` realtime, ``D`` delayed, ``Z`` frozen, ``N`` none."""
    value = _field(row, "6509")
    return str(value).strip()[:1].upper() if value else ""


def auth_healthy(status: Any) -> bool:
    """Whether ``/iserver/auth/status`` (or tickle's ``iserver.authStatus``) says ready.

    Healthy means authenticated and connected and not competing; a missing
    ``connected`` counts as connected (older gateways omit it).
    """
    if not isinstance(status, Mapping):
        return False
    return (bool(status.get("authenticated")) and bool(status.get("connected", True))
            and not bool(status.get("competing")))


def accounts_info(payload: Any) -> tuple[list[str], str | None, bool | None]:
    """``(accounts, selected account, isPaper)`` from ``GET /iserver/accounts``.

    Also accepts a bare list of ids or of ``{accountId|id}`` dicts.
    """
    accounts: list[str] = []
    selected = None
    paper = None
    rows: Any = payload
    if isinstance(payload, Mapping):
        rows = payload.get("accounts") or []
        selected = payload.get("selectedAccount") or None
        if "isPaper" in payload and payload["isPaper"] is not None:
            paper = bool(payload["isPaper"])
    if isinstance(rows, Sequence) and not isinstance(rows, str):
        for row in rows:
            if isinstance(row, Mapping):
                row = row.get("accountId") or row.get("id") or row.get("acctId")
            if row:
                accounts.append(str(row))
    return accounts, (str(selected) if selected else None), paper


# --- contracts --------------------------------------------------------------------------


def _sections(row: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    sections = row.get("sections")
    return [s for s in sections if isinstance(s, Mapping)] if isinstance(sections, list) else []


def pick_search_result(rows: Any, instrument: Instrument) -> int | None:
    """The conid for ``instrument`` in a ``/iserver/secdef/search`` answer, or None.

    Rows whose symbol matches and that list the wanted secType win; for
    stocks a US listing (``description`` NASDAQ, NYSE...) is preferred, for
    crypto a PAXOS section. A section's own ``conid`` (some secTypes carry
    one) is used when present.
    """
    if not isinstance(rows, list):
        return None
    want_type = instrument.sec_type.upper()
    want_symbols = {instrument.ib_symbol.upper(), instrument.symbol.upper()}
    if instrument.asset_class == "fx":
        want_symbols |= {f"{instrument.ib_symbol}.{instrument.currency}".upper()}
    best: tuple[int, int] | None = None
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        conid = as_conid(row.get("conid"))
        symbol = str(row.get("symbol") or "").upper()
        sections = _sections(row)
        typed = [s for s in sections if str(s.get("secType") or "").upper() == want_type]
        if sections and not typed:
            continue
        score = 0
        if symbol in want_symbols:
            score += 4
        elif symbol and symbol.replace(" ", ".") not in want_symbols:
            continue
        if instrument.asset_class == "crypto":
            paxos = [s for s in typed if "PAXOS" in str(s.get("exchange") or "").upper()]
            if paxos:
                score += 2
                conid = as_conid(paxos[0].get("conid")) or conid
            elif typed and as_conid(typed[0].get("conid")):
                conid = as_conid(typed[0].get("conid"))
        elif typed and as_conid(typed[0].get("conid")) and want_type != "STK":
            conid = as_conid(typed[0].get("conid"))
        if instrument.asset_class == "stock":
            desc = str(row.get("description") or "").upper()
            if any(x in _US_EXCHANGES for x in re.split(r"[\s,;/]+", desc)):
                score += 2
        if conid is None:
            continue
        if best is None or score > best[0]:
            best = (score, conid)
    return best[1] if best else None


def pick_trsrv_stock(payload: Any, symbol: str) -> int | None:
    """The conid of a US listing of ``symbol`` in ``GET /trsrv/stocks``, or None."""
    if not isinstance(payload, Mapping):
        return None
    entries = payload.get(symbol) or payload.get(symbol.upper()) or []
    first = None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping):
            continue
        for contract in entry.get("contracts") or []:
            if not isinstance(contract, Mapping):
                continue
            conid = as_conid(contract.get("conid"))
            if conid is None:
                continue
            if contract.get("isUS"):
                return conid
            first = first or conid
    return first


def pick_fx_pair(payload: Any, base: str, quote: str) -> int | None:
    """The conid of ``BASE.QUOTE`` in ``GET /iserver/currency/pairs``, or None.

    The answer maps a currency to ``[{symbol: "EUR.USD", conid, ccyPair}]``.
    """
    want = f"{base}.{quote}".upper()
    groups: list[Any] = []
    if isinstance(payload, Mapping):
        groups = list(payload.values())
    elif isinstance(payload, list):
        groups = [payload]
    for group in groups:
        for row in group if isinstance(group, list) else []:
            if not isinstance(row, Mapping):
                continue
            symbol = str(row.get("symbol") or "").upper().replace("/", ".")
            if symbol == want:
                conid = as_conid(row.get("conid"))
                if conid:
                    return conid
    return None


# --- history ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryChunk:
    """One history request: ``period`` of bars ending at ``end`` (UTC)."""

    end: datetime
    period: str
    seconds: int

    @property
    def start(self) -> datetime:
        """Where the chunk begins (UTC)."""
        return self.end - timedelta(seconds=self.seconds)


def format_period(needed_s: float, cap_s: float) -> tuple[str, int]:
    """The CP ``period`` that covers ``needed_s`` seconds without exceeding ``cap_s``.

    Picks the tightest representable period >= ``needed_s`` that fits the cap;
    when none fits, the longest one <= ``cap_s`` (the caller then chunks).

    Returns:
        ``(period text, its length in seconds)``, e.g. ``("3d", 259200)``.

    Raises:
        ValueError: ``cap_s`` is below one minute.
    """
    if cap_s < 60:
        raise ValueError(f"cap_s={cap_s!r}: the shortest history period is 1min")
    needed_s = max(1.0, float(needed_s))
    fitting: list[tuple[int, str]] = []
    below: list[tuple[int, str]] = []
    for suffix, unit, most in _PERIOD_UNITS:
        n = min(most, max(1, math.ceil(needed_s / unit - 1e-9)))
        if n * unit > cap_s:
            n = min(most, int(cap_s // unit))
        if n < 1:
            continue
        value = n * unit
        (fitting if value >= needed_s else below).append((value, f"{n}{suffix}"))
    if fitting:
        value, text = min(fitting)
    else:
        value, text = max(below)
    return text, value


def plan_history(
    timeframe: Timeframe, start: datetime, end: datetime, max_points: int = 1000
) -> list[HistoryChunk]:
    """Split ``[start, end)`` into history requests of at most ~``max_points`` bars.

    Chunks are laid back to back from ``end`` towards ``start``, newest first;
    each is capped at 95% of ``max_points`` bars so a boundary bar never pushes
    an answer over the gateway's limit.

    Raises:
        ValueError: ``end`` is not after ``start``, or a naive datetime.
        KeyError: a timeframe the Client Portal has no bar for.
    """
    BAR_BY_TIMEFRAME[timeframe.name]  # noqa: B018 - fail early on an unknown bar
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None:
            raise ValueError(f"{name}={value!r} must be timezone-aware (UTC)")
    if end <= start:
        raise ValueError(f"end {end} must be after start {start}")
    cap = max(60.0, max_points * 0.95 * timeframe.seconds)
    chunks: list[HistoryChunk] = []
    cursor = end.astimezone(timezone.utc)
    begin = start.astimezone(timezone.utc)
    while cursor > begin:
        # Never ask for less than one bar (a 1d bar in an 8h period is no bar).
        needed = max((cursor - begin).total_seconds(), float(timeframe.seconds))
        period, seconds = format_period(needed, cap)
        chunks.append(HistoryChunk(cursor, _with_spare_day(period, cap), seconds))
        cursor -= timedelta(seconds=seconds)
    return chunks


def _with_spare_day(period: str, cap_s: float) -> str:
    """One day more for a ``d`` period, when the point cap allows it.

    IB counts ``Nd`` in trading sessions, the one in progress included, so
    ``3d`` just after a session opens covers little more than two days; the
    surplus is trimmed away. The chunk still advances by the days asked for.
    """
    if not period.endswith("d"):
        return period
    days = int(period[:-1]) + 1
    if days > 1000 or days * 86_400 > cap_s:
        return period
    return f"{days}d"


def format_start_time(when: datetime) -> str:
    """The ``startTime`` query value (UTC, ``YYYYMMDD-HH:MM:SS``)."""
    return when.astimezone(timezone.utc).strftime("%Y%m%d-%H:%M:%S")


def history_frame(payload: Any, daily: bool = False) -> pd.DataFrame:
    """``GET /iserver/marketdata/history``'s answer -> OHLCV frame.

    ``t`` is epoch milliseconds (epoch seconds are recognised too); daily and
    weekly bars are put at midnight UTC of their date, as IB's dates are
    elsewhere in this package. Rows without a time or a close are dropped.
    """
    import pandas as pd

    from ..frames import empty_ohlcv, normalize_ohlcv

    data = payload.get("data") if isinstance(payload, Mapping) else payload
    if not isinstance(data, list) or not data:
        return empty_ohlcv()
    times: list[int] = []
    cols: dict[str, list[float]] = {"open": [], "high": [], "low": [], "close": [], "volume": []}
    for row in data:
        if not isinstance(row, Mapping):
            continue
        t = parse_number(row.get("t"))
        close = parse_number(row.get("c"))
        if t is None or close is None:
            continue
        ms = int(t * 1000) if t < 1e11 else int(t)
        times.append(ms)
        for key, col in (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close")):
            value = parse_number(row.get(key))
            cols[col].append(close if value is None else value)
        cols["volume"].append(max(0.0, parse_number(row.get("v")) or 0.0))
    if not times:
        return empty_ohlcv()
    ts = pd.to_datetime(pd.Series(times, dtype="int64"), unit="ms", utc=True)
    if daily:
        ts = ts.dt.floor("D")
    frame = pd.DataFrame({"timestamp": ts, **cols})
    return normalize_ohlcv(frame)


# --- portfolio ----------------------------------------------------------------------------


def canonical_symbol(ticker: Any, asset_class: Any = "", currency: Any = "USD") -> str:
    """This package's symbol for a CP row: ``AAPL``, ``EURUSD`` (from ``EUR.USD``), ``BTC-USD``.

    Falls back to the ticker as given when it does not parse.
    """
    from ..symbols import parse_symbol

    text = str(ticker or "").strip()
    asset = str(asset_class or "").upper()
    ccy = str(currency or "USD").upper()
    candidates = [text]
    if asset == "CRYPTO" and "-" not in text:
        candidates = [f"{text}-{ccy}", text]
    elif asset == "CASH" and "." not in text:
        candidates = [f"{text}.{ccy}", text]
    for candidate in candidates:
        try:
            return parse_symbol(candidate).symbol
        except (ValueError, TypeError):
            continue
    return text


def _position_symbol(row: Mapping[str, Any]) -> str:
    ticker = row.get("ticker") or row.get("contractDesc")
    return canonical_symbol(ticker, row.get("assetClass"), row.get("currency")) \
        or str(row.get("conid") or "?")


def position_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One ``/portfolio/{acct}/positions/{page}`` row -> the nice_funcs position dict.

    Keys: ``has_position, quantity, symbol, avg_cost, current_price,
    market_value, unrealized_pnl, unrealized_pnl_pct`` plus ``con_id``,
    ``currency``, ``asset_class`` and ``source`` ("portal").
    """
    qty = parse_number(row.get("position")) or 0.0
    avg = parse_number(row.get("avgCost"))
    if avg is None:
        avg = parse_number(row.get("avgPrice")) or 0.0
    price = parse_number(row.get("mktPrice")) or 0.0
    value = parse_number(row.get("mktValue"))
    unreal = parse_number(row.get("unrealizedPnl"))
    if value is None:
        value = qty * price
    if unreal is None:
        unreal = (price - avg) * qty
    pct = 0.0
    if avg > 0 and qty:
        pct = (price / avg - 1.0) * 100.0 * (1 if qty > 0 else -1)
    return {
        "has_position": qty != 0,
        "quantity": float(qty),
        "symbol": _position_symbol(row),
        "avg_cost": float(avg),
        "current_price": float(price),
        "market_value": float(value),
        "unrealized_pnl": float(unreal),
        "unrealized_pnl_pct": pct,
        "con_id": as_conid(row.get("conid")),
        "currency": str(row.get("currency") or "") or None,
        "asset_class": str(row.get("assetClass") or "") or None,
        "source": "portal",
    }


def summary_values(payload: Any) -> dict[str, Any]:
    """``/portfolio/{acct}/summary`` -> ``{key: number or text}`` (lower-case keys).

    Each entry is ``{amount, currency, value, ...}``: the amount when it is a
    number and ``isNull`` is not set, else the text ``value``.
    """
    out: dict[str, Any] = {}
    if not isinstance(payload, Mapping):
        return out
    for key, entry in payload.items():
        if isinstance(entry, Mapping):
            amount = parse_number(entry.get("amount"))
            text = entry.get("value")
            if text not in (None, "") and (amount in (None, 0.0) or entry.get("isNull")):
                out[str(key).lower()] = text
            elif amount is not None and not entry.get("isNull"):
                out[str(key).lower()] = amount
        elif entry is not None:
            number = parse_number(entry)
            out[str(key).lower()] = number if number is not None else entry
    return out
