"""TWS socket framing and field encoding, per negotiated server version.

Every message is a 4-byte big-endian length and ASCII fields each ended by
NUL. Layouts follow IB's own decoder (ibapi) for each server version; the
version thresholds used here are IB's ``MIN_SERVER_VER_*`` constants.
"""

from __future__ import annotations

import builtins
import math
import struct
from collections.abc import Iterable, Sequence

import numpy as np

from .catalog import Instrument

# IB's MIN_SERVER_VER_* thresholds this simulator branches on.
V_FRACTIONAL_POSITIONS = 101
V_REQ_MATCHING_SYMBOLS = 108
V_MD_SIZE_MULTIPLIER = 110
V_REQ_SMART_COMPONENTS = 114
V_AGG_GROUP = 121
V_UNDERLYING_INFO = 122
V_SYNT_REALTIME_BARS = 124
V_MARKET_RULES = 126
V_MARKET_CAP_PRICE = 131
V_REAL_EXPIRATION_DATE = 134
V_LAST_LIQUIDITY = 136
V_ORDER_CONTAINER = 145
V_COMPLETED_ORDERS = 150
V_STOCK_TYPE = 152
V_DURATION = 158
V_MARKET_DATA_IN_SHARES = 159
V_POST_TO_ATS = 160
V_AUTO_CANCEL_PARENT = 162
V_FRACTIONAL_SIZE_SUPPORT = 163
V_SIZE_RULES = 164
V_ADVANCED_ORDER_REJECT = 166
V_MANUAL_ORDER_TIME = 169
V_PEGBEST_PEGMID_OFFSETS = 170
V_HMDS_MARKET_DATA_IN_SHARES = 175
V_BOND_ISSUERID = 176
V_FA_PROFILE_DESUPPORT = 177
V_PENDING_PRICE_REVISION = 178

#: Price increment rule id contractDetails names for each security type (reqMarketRule).
MARKET_RULE_IDS: dict[str, int] = {"STK": 26, "CASH": 239, "CRYPTO": 3055}

MIN_SERVER_VERSION = 100
MAX_SERVER_VERSION = 178
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"
UNSET_INTEGER_TEXT = "2147483647"

# Outgoing message ids (IB's IN.* on the client side).
TICK_PRICE, TICK_SIZE, ORDER_STATUS, ERR_MSG, OPEN_ORDER = 1, 2, 3, 4, 5
ACCT_VALUE, PORTFOLIO_VALUE, ACCT_UPDATE_TIME, NEXT_VALID_ID = 6, 7, 8, 9
CONTRACT_DATA, EXECUTION_DATA, MANAGED_ACCTS, HISTORICAL_DATA = 10, 11, 15, 17
TICK_GENERIC, TICK_STRING, CURRENT_TIME = 45, 46, 49
CONTRACT_DATA_END, OPEN_ORDER_END, ACCT_DOWNLOAD_END, EXECUTION_DATA_END = 52, 53, 54, 55
TICK_SNAPSHOT_END, MARKET_DATA_TYPE, COMMISSION_REPORT = 57, 58, 59
POSITION_DATA, POSITION_END, ACCOUNT_SUMMARY, ACCOUNT_SUMMARY_END = 61, 62, 63, 64
POSITION_MULTI_END, ACCOUNT_UPDATE_MULTI, ACCOUNT_UPDATE_MULTI_END = 72, 73, 74
SYMBOL_SAMPLES, TICK_REQ_PARAMS, HEAD_TIMESTAMP = 79, 81, 88
HISTORICAL_DATA_UPDATE, COMPLETED_ORDER, COMPLETED_ORDERS_END = 90, 101, 102
RECEIVE_FA, SCANNER_PARAMETERS, REAL_TIME_BARS, SEC_DEF_OPT_PARAMS_END = 16, 19, 50, 76
SOFT_DOLLAR_TIERS, FAMILY_CODES, MKT_DEPTH_EXCHANGES, SMART_COMPONENTS = 77, 78, 80, 82
NEWS_PROVIDERS, HISTORICAL_NEWS_END, MARKET_RULE, PNL, PNL_SINGLE = 85, 87, 93, 94, 95
HISTORICAL_TICKS, HISTORICAL_TICKS_BID_ASK, HISTORICAL_TICKS_LAST = 96, 97, 98
TICK_BY_TICK, USER_INFO, SCANNER_DATA = 99, 107, 20

#: Client request ids -> names (IB's OUT.* / EClient method names).
REQUEST_NAMES: dict[int, str] = {
    1: "reqMktData", 2: "cancelMktData", 3: "placeOrder", 4: "cancelOrder",
    5: "reqOpenOrders", 6: "reqAccountUpdates", 7: "reqExecutions", 8: "reqIds",
    9: "reqContractDetails", 10: "reqMktDepth", 11: "cancelMktDepth",
    12: "reqNewsBulletins", 13: "cancelNewsBulletins", 14: "setServerLogLevel",
    15: "reqAutoOpenOrders", 16: "reqAllOpenOrders", 17: "reqManagedAccts",
    18: "requestFA", 19: "replaceFA", 20: "reqHistoricalData", 21: "exerciseOptions",
    22: "reqScannerSubscription", 23: "cancelScannerSubscription",
    24: "reqScannerParameters", 25: "cancelHistoricalData", 49: "reqCurrentTime",
    50: "reqRealTimeBars", 51: "cancelRealTimeBars", 52: "reqFundamentalData",
    53: "cancelFundamentalData", 54: "calculateImpliedVolatility",
    55: "calculateOptionPrice", 56: "cancelCalculateImpliedVolatility",
    57: "cancelCalculateOptionPrice", 58: "reqGlobalCancel", 59: "reqMarketDataType",
    61: "reqPositions", 62: "reqAccountSummary", 63: "cancelAccountSummary",
    64: "cancelPositions", 65: "verifyRequest", 66: "verifyMessage",
    67: "queryDisplayGroups", 68: "subscribeToGroupEvents", 69: "updateDisplayGroup",
    70: "unsubscribeFromGroupEvents", 71: "startApi", 72: "verifyAndAuthRequest",
    73: "verifyAndAuthMessage", 74: "reqPositionsMulti", 75: "cancelPositionsMulti",
    76: "reqAccountUpdatesMulti", 77: "cancelAccountUpdatesMulti",
    78: "reqSecDefOptParams", 79: "reqSoftDollarTiers", 80: "reqFamilyCodes",
    81: "reqMatchingSymbols", 82: "reqMktDepthExchanges", 83: "reqSmartComponents",
    84: "reqNewsArticle", 85: "reqNewsProviders", 86: "reqHistoricalNews",
    87: "reqHeadTimeStamp", 88: "reqHistogramData", 89: "cancelHistogramData",
    90: "cancelHeadTimeStamp", 91: "reqMarketRule", 92: "reqPnL", 93: "cancelPnL",
    94: "reqPnLSingle", 95: "cancelPnLSingle", 96: "reqHistoricalTicks",
    97: "reqTickByTickData", 98: "cancelTickByTickData", 99: "reqCompletedOrders",
    100: "reqWshMetaData", 101: "cancelWshMetaData", 102: "reqWshEventData",
    103: "cancelWshEventData", 104: "reqUserInfo",
}
#: Position of the request id for requests the simulator does not serve.
#: Requests with a version field carry the id third, newer ones second.
REQ_ID_INDEX: dict[int, int] = {
    10: 2, 21: 2, 22: 1, 50: 2, 52: 2, 54: 2, 55: 2, 67: 2, 68: 2, 69: 2, 74: 2, 78: 1, 79: 1,
    83: 1, 84: 1, 86: 1, 88: 1, 91: -1, 92: 1, 94: 1, 96: 1, 97: 1, 100: 1, 102: 1, 104: 1,
}


def frame(fields: Iterable[object]) -> bytes:
    """One framed message from already-encoded field texts."""
    payload = "".join(f"{f}\0" for f in fields).encode("ascii", "backslashreplace")
    return struct.pack(">I", len(payload)) + payload


def frame_text(payload: str) -> bytes:
    """One framed message from a NUL-terminated payload string."""
    data = payload.encode("ascii", "backslashreplace")
    return struct.pack(">I", len(data)) + data


def num(x: float | int | None) -> str:
    """A double as TWS prints it: no exponent, no trailing zeros, unset -> max double."""
    if x is None:
        return ""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    x = float(x)
    if math.isinf(x) or x >= 1.7976931348623157e308:
        return UNSET_DOUBLE_TEXT
    if x == int(x) and abs(x) < 1e15:
        return f"{x:.1f}"
    return np.format_float_positional(x, trim="-")


def size(x: float, server_version: int) -> str:
    """A quantity: a Decimal text from server version 163 on, else an integer."""
    if server_version >= V_FRACTIONAL_SIZE_SUPPORT:
        text = np.format_float_positional(float(x), trim="-")
        return text.rstrip(".") if text.endswith(".") else text
    return str(int(round(float(x))))


class Fields:
    """A cursor over one incoming message's fields.

    Raises:
        ValueError: from the ``int``/``float`` readers when a field is not a
            number, and IndexError when the message is too short.
    """

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = fields
        self.pos = 0

    def str(self) -> str:
        v = self.fields[self.pos]
        self.pos += 1
        return v

    def int(self, default: int = 0) -> int:
        v = self.str()
        return int(float(v)) if v else default

    def float(self, default: float = 0.0) -> float:
        v = self.str()
        if not v:
            return default
        return math.inf if v == "Infinite" else float(v)

    # Below the readers named after them, ``float``/``int``/``bool`` in annotations
    # would mean those methods: the builtins are spelled out.
    def opt_float(self) -> builtins.float | None:
        """A double, or None when empty or IB's "unset" maximum."""
        v = self.float(math.nan)
        return None if math.isnan(v) or math.isinf(v) or v >= 1.7e308 else v

    def bool(self) -> bool:
        v = self.str()
        return bool(int(float(v))) if v else False

    def skip(self, n: builtins.int = 1) -> None:
        self.pos += n

    def more(self) -> builtins.bool:
        return self.pos < len(self.fields)


def qty(x: float, server_version: int) -> str:
    """A position or order quantity (fractional from server version 101 on)."""
    if server_version >= V_FRACTIONAL_POSITIONS:
        text = np.format_float_positional(round(float(x), 10), trim="-")
        return text.rstrip(".") if text.endswith(".") else text
    return str(int(round(float(x))))


def dbl(x: float | None) -> str:
    """A double that may be unset (TWS prints unset doubles as the max double)."""
    return UNSET_DOUBLE_TEXT if x is None else num(x)


def read_contract(f: Fields) -> dict[str, object]:
    """The 12 contract fields requests carry (conId ... tradingClass)."""
    return {
        "conId": f.int(), "symbol": f.str(), "secType": f.str(),
        "lastTradeDateOrContractMonth": f.str(), "strike": f.float(), "right": f.str(),
        "multiplier": f.str(), "exchange": f.str(), "primaryExchange": f.str(),
        "currency": f.str(), "localSymbol": f.str(), "tradingClass": f.str(),
    }


# ------------------------------------------------------------- message encoders
def error_msg(sv: int, req_id: int, code: int, text: str) -> list[object]:
    fields: list[object] = [ERR_MSG, 2, req_id, code, text]
    if sv >= V_ADVANCED_ORDER_REJECT:
        fields.append("")
    return fields


def contract_details(sv: int, req_id: int, inst: Instrument, exchange: str,
                     trading_hours: str, liquid_hours: str) -> list[object]:
    """contractDetails (10) for a STK/CASH/CRYPTO contract."""
    f: list[object] = [CONTRACT_DATA]
    if sv < V_SIZE_RULES:
        f.append(8)
    f += [req_id, inst.symbol, inst.sec_type, "", num(0.0), "", exchange, inst.currency,
          inst.local_symbol, inst.market_name, inst.trading_class, inst.con_id,
          num(inst.min_tick)]
    if V_MD_SIZE_MULTIPLIER <= sv < V_SIZE_RULES:
        f.append(1)
    f += ["", inst.order_types, inst.valid_exchanges, 1, 0, inst.long_name,
          inst.primary_exchange, "", inst.industry, inst.category, inst.subcategory,
          inst.time_zone, trading_hours, liquid_hours, "", "", len(inst.sec_ids)]
    for tag, value in inst.sec_ids:
        f += [tag, value]
    if sv >= V_AGG_GROUP:
        f.append(1 if inst.sec_type != "CRYPTO" else 2)
    if sv >= V_UNDERLYING_INFO:
        f += ["", ""]
    if sv >= V_MARKET_RULES:
        rule = MARKET_RULE_IDS.get(inst.sec_type, 26)
        f.append(",".join([str(rule)] * len(inst.valid_exchanges.split(","))))
    if sv >= V_REAL_EXPIRATION_DATE:
        f.append("")
    if sv >= V_STOCK_TYPE:
        f.append(inst.stock_type)
    if sv == V_FRACTIONAL_SIZE_SUPPORT:
        f.append(size(inst.size_increment, sv))
    if sv >= V_SIZE_RULES:
        f += [size(inst.min_size, sv), size(inst.size_increment, sv),
              size(inst.suggested_size_increment, sv)]
    return f


def symbol_samples(sv: int, req_id: int, insts: Sequence[Instrument]) -> list[object]:
    f: list[object] = [SYMBOL_SAMPLES, req_id, len(insts)]
    for inst in insts:
        f += [inst.con_id, inst.symbol, inst.sec_type, inst.primary_exchange, inst.currency, 0]
        if sv >= V_BOND_ISSUERID:
            f += [inst.long_name, ""]
    return f


def tick_price(req_id: int, tick_type: int, price: float, size_text: str, mask: int = 0) -> list:
    return [TICK_PRICE, 6, req_id, tick_type, num(price), size_text, mask]


def tick_size(req_id: int, tick_type: int, size_text: str) -> list:
    return [TICK_SIZE, 6, req_id, tick_type, size_text]


def historical_data(sv: int, req_id: int, start: str, end: str, rows: Sequence[str],
                    count: int) -> str:
    """historicalData (17) as one payload; ``rows`` are pre-joined bar fields."""
    head = [str(HISTORICAL_DATA)]
    if sv < V_SYNT_REALTIME_BARS:
        head.append("3")
    head += [str(req_id), start, end, str(count)]
    body = "\0".join(head)
    if count:
        body += "\0" + "\0".join(rows)
    return body + "\0"


def bar_rows(sv: int, dates: Sequence[str], o, h, lo, c, vol, wap, cnt, price_decimals: int,
             size_decimals: int, quote_bars: bool) -> list[str]:
    """Per-bar field groups joined by NUL (date, OHLC, volume, wap, [hasGaps], count)."""
    pf = f"%.{price_decimals}f"
    gaps = "\0false" if sv < V_SYNT_REALTIME_BARS else ""
    if quote_bars:
        tmpl = "%s\0" + "\0".join([pf] * 4) + "\0-1\0-1" + gaps + "\0-1"
        return [tmpl % row for row in zip(dates, o.tolist(), h.tolist(), lo.tolist(),
                                           c.tolist(), strict=False)]
    if sv >= V_FRACTIONAL_SIZE_SUPPORT and size_decimals:
        vf = f"%.{size_decimals}f"  # a Decimal text; trailing zeros are harmless
        vol = vol.tolist()
    else:
        vf = "%d"
        vol = np.round(vol).astype(np.int64).tolist()
    wf = f"%.{price_decimals + 2}f"
    tmpl = "%s\0" + "\0".join([pf] * 4) + "\0" + vf + "\0" + wf + gaps + "\0%d"
    return [tmpl % row for row in zip(dates, o.tolist(), h.tolist(), lo.tolist(), c.tolist(),
                                       vol, wap.tolist(), cnt.tolist(), strict=False)]
