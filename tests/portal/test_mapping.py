"""Client Portal JSON <-> this package's shapes (no I/O).

The readers must follow the real API and tolerate what another gateway
(or fake) sends: conids as strings or ints, missing fields, extra fields.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ib_nice_funcs.portal.mapping import (
    BAR_BY_TIMEFRAME,
    accounts_info,
    as_conid,
    auth_healthy,
    format_period,
    format_start_time,
    history_frame,
    mask_account,
    normalize_base_url,
    parse_number,
    parse_price,
    pick_fx_pair,
    pick_search_result,
    pick_trsrv_stock,
    plan_history,
    position_row,
    snapshot_availability,
    snapshot_price,
    summary_values,
)
from ib_nice_funcs.portal.order_mapping import (
    classify_order_answer,
    live_orders_rows,
    open_order_row,
    order_body,
    rows_for,
)
from ib_nice_funcs.sim._portal_data import HISTORY_BARS, HISTORY_PERIOD_MAX
from ib_nice_funcs.symbols import parse_symbol
from ib_nice_funcs.timeframes import VALID_TIMEFRAMES, parse_timeframe

UTC = timezone.utc


# --- small readers ------------------------------------------------------------------------


@pytest.mark.parametrize("url,base", [
    ("https://localhost:5000", "https://localhost:5000/v1/api"),
    ("https://localhost:5000/", "https://localhost:5000/v1/api"),
    ("https://localhost:5000/v1/api/", "https://localhost:5000/v1/api"),
    ("http://127.0.0.1:1234/v1/api", "http://127.0.0.1:1234/v1/api"),
])
def test_normalize_base_url(url, base):
    assert normalize_base_url(url) == base


@pytest.mark.parametrize("url", ["", "localhost:5000", "ftp://x/v1/api", None])
def test_normalize_base_url_refuses_non_http(url):
    with pytest.raises(ValueError, match="IB_PORTAL_URL"):
        normalize_base_url(url)


@pytest.mark.parametrize("value,conid", [
    (265598, 265598), ("265598", 265598), (" 265598 ", 265598), ("265598@SMART", 265598),
    (265598.0, 265598), (None, None), ("", None), ("abc", None), (0, None), (-5, None),
    (True, None), (1.5, None),
])
def test_as_conid_takes_strings_and_ints(value, conid):
    assert as_conid(value) == conid


@pytest.mark.parametrize("value,number", [
    ("150.25", 150.25), (150.25, 150.25), ("1,234.5", 1234.5), ("1.2M", 1.2e6), ("35K", 35e3),
    ("2.5B", 2.5e9), ("-3.5", -3.5), ("", None), ("-", None), ("N/A", None), (None, None),
    (float("nan"), None), (True, None),
])
def test_parse_number(value, number):
    assert parse_number(value) == (pytest.approx(number) if number is not None else None)


@pytest.mark.parametrize("value,price,prefix", [
    ("C150.25", 150.25, "C"), ("H99.5", 99.5, "H"), ("150.25", 150.25, ""), ("c150", 150.0, "C"),
    ("", None, ""), ("0", None, ""), (161.38, 161.38, ""), ("C", None, "C"),
])
def test_parse_price_strips_c_and_h(value, price, prefix):
    assert parse_price(value) == (price, prefix)


def test_mask_account():
    assert mask_account("DU1234567") == "DU…67"
    assert "1234567" not in mask_account("DU1234567")
    assert mask_account("") == ""


# --- snapshot ---------------------------------------------------------------------------------


@pytest.mark.parametrize("row,price", [
    ({"31": "150.25", "84": "150.2", "86": "150.3"}, 150.25),      # last trade
    ({"31": "H150.25", "84": "150.2", "86": "150.3"}, 150.25),     # halted: the last price
    ({"31": "C150.25", "84": "151.0", "86": "151.2"}, 151.1),      # prior close loses to a mid
    ({"31": "C150.25"}, 150.25),                                    # ...but is still a price
    ({"84": "1.0841", "86": "1.0843"}, 1.0842),                      # FX: mid
    ({"84": "1.0841"}, None),                                        # half a quote is no price
    ({"7296": "99.5", "7741": "98.0"}, 99.5),                        # close
    ({"7741": "98.0"}, 98.0),                                        # prior close
    ({"conid": 1, "_updated": 1}, None),                             # pre-flight: nothing yet
    ({31: 12.5}, 12.5),                                              # int keys
    ({"31": "", "84": "", "86": "", "7296": "-"}, None),
])
def test_snapshot_price_fallback_chain(row, price):
    assert snapshot_price(row) == (pytest.approx(price) if price is not None else None)


def test_snapshot_availability():
    assert snapshot_availability({"6509": "RpB"}) == "R"
    assert snapshot_availability({"6509": "N"}) == "N"
    assert snapshot_availability({}) == ""


def test_auth_healthy():
    assert auth_healthy({"authenticated": True, "connected": True, "competing": False})
    assert auth_healthy({"authenticated": True})  # older gateways omit connected
    assert not auth_healthy({"authenticated": True, "competing": True})
    assert not auth_healthy({"authenticated": False, "connected": True})
    assert not auth_healthy(None)


def test_accounts_info_shapes():
    assert accounts_info({"accounts": ["DU1", "DU2"], "selectedAccount": "DU2",
                          "isPaper": True, "extra": 1}) == (["DU1", "DU2"], "DU2", True)
    assert accounts_info({"accounts": ["U1"]}) == (["U1"], None, None)
    assert accounts_info([{"accountId": "DU9"}, {"id": "DU8"}]) == (["DU9", "DU8"], None, None)
    assert accounts_info(None) == ([], None, None)


# --- contracts -----------------------------------------------------------------------------------


def test_search_picks_the_stk_row_with_string_or_int_conid():
    aapl = parse_symbol("AAPL")
    rows = [
        {"conid": "999", "symbol": "AAPL", "description": "MEXI",
         "sections": [{"secType": "STK"}]},
        {"conid": "265598", "symbol": "AAPL", "description": "NASDAQ", "companyName": "APPLE",
         "sections": [{"secType": "STK"}, {"secType": "OPT", "months": "MAR24"}], "new": 1},
    ]
    assert pick_search_result(rows, aapl) == 265598
    rows[1]["conid"] = 265598
    assert pick_search_result(rows, aapl) == 265598
    assert pick_search_result([{"conid": 7, "symbol": "AAPL"}], aapl) == 7  # no sections at all
    assert pick_search_result([{"conid": 7, "symbol": "AAPL34"}], aapl) is None
    assert pick_search_result([{"conid": "x", "symbol": "AAPL"}], aapl) is None
    assert pick_search_result({"error": "No symbol found"}, aapl) is None
    assert pick_search_result([{"symbol": "AAPL"}, "junk"], aapl) is None


def test_search_for_crypto_prefers_paxos_and_section_conids():
    btc = parse_symbol("BTC-USD")
    rows = [{"conid": "1", "symbol": "BTC", "description": "NYSE ARCA ETF",
             "sections": [{"secType": "STK"}]},
            {"conid": "479624278", "symbol": "BTC", "description": "PAXOS",
             "sections": [{"secType": "CRYPTO", "exchange": "PAXOS"}]}]
    assert pick_search_result(rows, btc) == 479624278
    rows = [{"conid": "5", "symbol": "BTC",
             "sections": [{"secType": "CRYPTO", "exchange": "ZEROHASH", "conid": "8"},
                          {"secType": "CRYPTO", "exchange": "PAXOS", "conid": "9"}]}]
    assert pick_search_result(rows, btc) == 9


def test_search_for_fx_matches_the_pair():
    eurusd = parse_symbol("EURUSD")
    rows = [{"conid": "12087817", "symbol": "EUR.GBP", "sections": [{"secType": "CASH"}]},
            {"conid": "12087792", "symbol": "EUR.USD", "sections": [{"secType": "CASH"}]}]
    assert pick_search_result(rows, eurusd) == 12087792


def test_fx_pairs_and_trsrv_stocks():
    pairs = {"USD": [{"symbol": "USD.JPY", "conid": 15016059, "ccyPair": "JPY"},
                     {"symbol": "EUR.USD", "conid": "12087792", "ccyPair": "EUR"}]}
    assert pick_fx_pair(pairs, "EUR", "USD") == 12087792
    assert pick_fx_pair(pairs, "GBP", "USD") is None
    assert pick_fx_pair([{"symbol": "EUR/USD", "conid": 5}], "EUR", "USD") == 5
    assert pick_fx_pair("junk", "EUR", "USD") is None
    stocks = {"AAPL": [{"name": "APPLE", "contracts": [{"conid": 1, "isUS": False},
                                                      {"conid": "265598", "isUS": True}]}]}
    assert pick_trsrv_stock(stocks, "AAPL") == 265598
    assert pick_trsrv_stock({"AAPL": []}, "AAPL") is None
    assert pick_trsrv_stock({"X": [{"contracts": [{"conid": 3}]}]}, "X") == 3


# --- history ------------------------------------------------------------------------------------


_PERIOD_RE = re.compile(r"^(\d+)(min|h|d|w|m|y)$")
_UNIT_S = {"min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _period_ok(text: str) -> bool:
    m = _PERIOD_RE.match(text)
    return bool(m) and 1 <= int(m.group(1)) <= HISTORY_PERIOD_MAX[m.group(2)]


def test_every_timeframe_has_a_bar_the_gateway_knows():
    assert set(BAR_BY_TIMEFRAME) == set(VALID_TIMEFRAMES)
    for bar in BAR_BY_TIMEFRAME.values():
        assert bar in HISTORY_BARS


@pytest.mark.parametrize("needed,cap,text", [
    (3 * 86400, 1e9, "3d"), (60, 1e9, "1min"), (1800, 1e9, "30min"), (1801, 1e9, "1h"),
    (10 * 3600, 57_000, "8h"), (2 * 86400, 3 * 86400, "2d"), (1e9, 1e12, "792w"),
])
def test_format_period(needed, cap, text):
    assert format_period(needed, cap)[0] == text


@settings(max_examples=150, deadline=None)
@given(
    tf=st.sampled_from(VALID_TIMEFRAMES),
    span=st.floats(min_value=60.0, max_value=3 * 365 * 86400.0),
    end_s=st.integers(min_value=1_600_000_000, max_value=1_900_000_000),
    max_points=st.sampled_from([1000, 500]),
)
def test_history_plan_covers_the_range_in_valid_capped_chunks(tf, span, end_s, max_points):
    timeframe = parse_timeframe(tf)
    end = datetime.fromtimestamp(end_s, UTC)
    start = end - timedelta(seconds=span)
    chunks = plan_history(timeframe, start, end, max_points)
    assert chunks and chunks[0].end == end
    for newer, older in zip(chunks, chunks[1:], strict=False):
        assert older.end == newer.start  # back to back, newest first
    assert chunks[-1].start <= start
    for chunk in chunks:
        assert _period_ok(chunk.period), chunk.period
        n, unit = _PERIOD_RE.match(chunk.period).groups()
        asked = int(n) * _UNIT_S[unit]
        # Day periods ask one spare session (IB counts days in sessions).
        assert asked == chunk.seconds or (unit == "d" and asked == chunk.seconds + 86400)
        assert asked / timeframe.seconds <= max_points or chunk.seconds == 60
        bars = chunk.seconds / timeframe.seconds
        assert bars <= max_points or chunk.seconds == 60  # never more than the gateway serves
    # CP period units are coarse (8h at most in hours), but chunks stay over 30% full.
    assert len(chunks) <= 1 + span / (0.3 * max_points * timeframe.seconds) + 1
    assert chunks[-1].seconds >= min(timeframe.seconds, 7 * 86400)  # at least one bar


def test_history_plan_refuses_bad_ranges():
    end = datetime(2024, 3, 6, tzinfo=UTC)
    with pytest.raises(ValueError):
        plan_history(parse_timeframe("1h"), end, end)
    with pytest.raises(ValueError):
        plan_history(parse_timeframe("1h"), datetime(2024, 3, 1), datetime(2024, 3, 2))


def test_start_time_format():
    when = datetime(2024, 3, 6, 15, 0, 30, tzinfo=UTC)
    assert format_start_time(when) == "20240306-15:00:30"
    assert format_start_time(when.astimezone(timezone(timedelta(hours=-5)))) == "20240306-15:00:30"


def test_history_frame_epoch_ms_to_utc_and_tolerance():
    payload = {"symbol": "AAPL", "priceFactor": 100, "extra": [1], "data": [
        {"t": 1709737200000, "o": 170.1, "h": "171.0", "l": 169.5, "c": 170.5, "v": 1000},
        {"t": 1709733600000, "o": 169.0, "h": 170.2, "l": 168.9, "c": 170.1},      # no volume
        {"t": 1709740800, "o": 170.5, "h": 171.2, "l": 170.0, "c": 171.0, "v": 5},  # epoch s
        {"t": 1709744400000, "c": None},                                             # no close
        {"o": 1, "c": 2},                                                            # no time
        "junk",
    ]}
    frame = history_frame(payload)
    assert list(frame.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert list(frame["timestamp"]) == [pd.Timestamp("2024-03-06 14:00", tz="UTC"),
                                        pd.Timestamp("2024-03-06 15:00", tz="UTC"),
                                        pd.Timestamp("2024-03-06 16:00", tz="UTC")]
    assert frame["volume"].tolist() == [0.0, 1000.0, 5.0]
    assert frame["high"].tolist() == [170.2, 171.0, 171.2]


def test_history_frame_daily_bars_at_midnight_utc_and_empty():
    payload = {"data": [{"t": 1709735400000, "o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 1}]}
    frame = history_frame(payload, daily=True)
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-03-06", tz="UTC")
    assert history_frame({"data": []}).empty
    assert history_frame({"error": "x"}).empty
    assert history_frame(None).empty


# --- portfolio ------------------------------------------------------------------------------------


def test_position_row_shapes():
    row = {"acctId": "DU1", "conid": "265598", "contractDesc": "AAPL", "position": 10.0,
           "mktPrice": 110.0, "mktValue": 1100.0, "avgCost": 100.0, "unrealizedPnl": 100.0,
           "currency": "USD", "assetClass": "STK", "ticker": "AAPL", "whatever": {}}
    pos = position_row(row)
    assert pos["symbol"] == "AAPL" and pos["con_id"] == 265598 and pos["has_position"]
    assert pos["unrealized_pnl_pct"] == pytest.approx(10.0)
    assert pos["source"] == "portal"
    fx = position_row({"conid": 1, "contractDesc": "EUR.USD", "position": "-1000",
                       "mktPrice": "1.1", "avgCost": 1.0, "assetClass": "CASH", "currency": "USD"})
    assert fx["symbol"] == "EURUSD" and fx["quantity"] == -1000
    assert fx["market_value"] == pytest.approx(-1100.0)  # computed when missing
    assert fx["unrealized_pnl"] == pytest.approx(-100.0)
    assert fx["unrealized_pnl_pct"] == pytest.approx(-10.0)
    btc = position_row({"conid": 2, "ticker": "BTC", "position": 0.5, "assetClass": "CRYPTO",
                        "currency": "USD", "avgPrice": 40000, "mktPrice": 50000})
    assert btc["symbol"] == "BTC-USD" and btc["avg_cost"] == 40000
    assert position_row({})["has_position"] is False


def test_summary_values_reads_amounts_and_text():
    payload = {"netliquidation": {"amount": 1000.5, "currency": "USD", "isNull": False},
               "accountcode": {"amount": 0.0, "value": "DU1", "isNull": False},
               "cushion": {"amount": 0.9, "currency": None},
               "nullish": {"amount": 5.0, "isNull": True},
               "flat": "12.5"}
    values = summary_values(payload)
    assert values["netliquidation"] == 1000.5
    assert values["accountcode"] == "DU1"
    assert values["cushion"] == 0.9
    assert "nullish" not in values
    assert values["flat"] == 12.5
    assert summary_values([1, 2]) == {}


# --- orders ---------------------------------------------------------------------------------------


def _one(body):
    (order,) = body["orders"]
    return order


def test_order_body_per_type():
    base = dict(conid=265598, account="DU1", side="buy", quantity=10, tif="day",
                client_order_id="c1")
    mkt = _one(order_body(order_type="MKT", **base))
    assert mkt == {"acctId": "DU1", "conid": 265598, "side": "BUY", "quantity": 10.0,
                   "orderType": "MKT", "tif": "DAY", "cOID": "c1", "outsideRTH": False}
    assert _one(order_body(order_type="LMT", limit_price=99.5, **base))["price"] == 99.5
    stp = _one(order_body(order_type="STP", stop_price=90, **base))
    assert stp["price"] == 90 and stp["auxPrice"] == 90
    trail = _one(order_body(order_type="TRAIL", trail_percent=2, stop_price=95, **base))
    assert (trail["trailingAmt"], trail["trailingType"], trail["price"]) == (2.0, "%", 95.0)
    trail = _one(order_body(order_type="TRAIL", trail_amount=1.5, **base))
    assert (trail["trailingAmt"], trail["trailingType"]) == (1.5, "amt")
    assert "price" not in _one(order_body(order_type="MOC", **base))
    assert _one(order_body(order_type="LOC", limit_price=1, **base))["price"] == 1
    assert "price" not in _one(order_body(order_type="MIDPRICE", **base))
    for kind, extra in (("LMT", {}), ("STP", {}), ("TRAIL", {}), ("LOC", {})):
        with pytest.raises(ValueError):
            order_body(order_type=kind, **base, **extra)


@pytest.mark.parametrize("payload,kind,detail", [
    ([{"order_id": "1000001", "order_status": "Submitted", "encrypt_message": "1"}],
     "placed", 1000001),
    ([{"order_id": 17, "order_status": "Filled"}], "placed", 17),
    ({"order_id": "A1", "order_status": "PreSubmitted"}, "placed", "A1"),
    ([{"id": "07a13a5a-4a48", "message": ["Are you sure?"], "isSuppressed": False,
       "messageIds": ["o163"]}], "question", "07a13a5a-4a48"),
    ([{"id": "x", "message": "one string"}], "question", "x"),
    ({"error": "Local order ID=c1 is already registered."}, "error", "already registered"),
    ([{"error": "rejected"}], "error", "rejected"),
    ([], "error", "unexpected"),
    ("nonsense", "error", "unexpected"),
    (None, "error", "unexpected"),
])
def test_classify_order_answer(payload, kind, detail):
    answer = classify_order_answer(payload)
    assert answer.kind == kind
    if kind == "placed":
        assert answer.order_id == detail
    elif kind == "question":
        assert answer.reply_id == detail and answer.messages
    else:
        assert detail in " ".join(answer.messages)


def test_open_order_rows_and_lookup_by_cOID():
    payload = {"orders": [
        {"acct": "DU1", "conid": 265598, "orderId": 1000001, "ticker": "AAPL", "side": "BUY",
         "remainingQuantity": 4.0, "filledQuantity": 6.0, "totalSize": 10.0, "status": "Submitted",
         "orderType": "Limit", "origOrderType": "LIMIT", "price": "150.00", "order_ref": "c1",
         "timeInForce": "CLOSE", "avgPrice": "149.9", "newField": True},
        {"orderId": "7", "side": "S", "status": "Filled", "orderType": "STP",
         "auxPrice": "90", "cOID": "c2", "filledQuantity": "2"},
        "junk",
    ], "snapshot": True}
    rows = live_orders_rows(payload)
    assert len(rows) == 2
    first = open_order_row(rows[0])
    assert first["order_id"] == 1000001 and first["client_order_id"] == "c1"
    assert first["order_type"] == "LMT" and first["limit_price"] == 150.0
    assert (first["filled_qty"], first["remaining"], first["quantity"]) == (6.0, 4.0, 10.0)
    assert open_order_row({"ticker": "BTC", "secType": "CRYPTO", "cashCcy": "USD"})["symbol"] \
        == "BTC-USD"
    assert open_order_row({"ticker": "EUR.USD", "secType": "CASH"})["symbol"] == "EURUSD"
    second = open_order_row(rows[1])
    assert second["side"] == "SELL" and second["stop_price"] == 90.0 and second["order_id"] == 7
    assert second["quantity"] == 2.0 and second["remaining"] == 0.0
    assert [r["order_id"] for r in rows_for(rows, "c2")] == [7]
    assert rows_for(rows, "nope") == []
    assert live_orders_rows([{"orderId": 1}]) == [{"orderId": 1}]
    assert live_orders_rows({"orders": None}) == []
