"""Contracts, snapshots and history over HTTPS."""

from __future__ import annotations

import datetime as dt

import pytest

from ib_nice_funcs.sim import PaperMarket, run_portal_simulator

from .conftest import AAPL, BTC, EURUSD, IBM, WEEKEND_T, Api

FIELDS = "31,84,86,88,85,87,7762,7295,70,71,7296,7741,6509,55"


def test_snapshot_needs_the_accounts_preflight(api):
    r = api.get("/iserver/marketdata/snapshot", params={"conids": AAPL, "fields": "31"})
    assert r.status_code == 400 and r.json()["error"] == "Please query /accounts first"
    r = api.order(conid=AAPL, side="BUY", quantity=1, orderType="MKT", tif="DAY")
    assert r.status_code == 400 and "accounts" in r.json()["error"]
    assert api.get("/iserver/account/orders").status_code == 400
    api.get("/iserver/accounts")
    assert api.get("/iserver/marketdata/snapshot", params={"conids": AAPL}).status_code == 200


def test_snapshot_first_call_starts_the_subscription(ready, market):
    params = {"conids": f"{AAPL},{IBM}", "fields": FIELDS}
    first = ready.get("/iserver/marketdata/snapshot", params=params).json()
    assert [r["conid"] for r in first] == [AAPL, IBM]
    for row in first:
        assert set(row) == {"conid", "conidEx", "_updated", "server_id", "6119"}
        assert isinstance(row["conid"], int) and isinstance(row["conidEx"], str)
    second = ready.get("/iserver/marketdata/snapshot", params=params).json()
    q = market.quote("AAPL")
    row = second[0]
    assert row["31"] == f"{q.last:.2f}" and row["84"] == f"{q.bid:.2f}"
    assert row["86"] == f"{q.ask:.2f}"
    assert all(isinstance(row[k], str) for k in ("31", "84", "86", "88", "85", "87", "7762"))
    assert row["88"] == f"{q.bid_size / 100:.0f}"  # US stock sizes in round lots
    assert row["87"][-1] in "KMB" and float(row["7762"]) == q.volume
    assert row["7295"] == f"{q.open:.2f}" and row["70"] == f"{q.high:.2f}"
    assert row["71"] == f"{q.low:.2f}" and row["7741"] == f"{q.prior_close:.2f}"
    assert "7296" not in row  # today's close only exists after the close
    assert row["6509"] == "RpB" and row["55"] == "AAPL"
    # a field asked for the first time shows up from the next call on
    more = {"conids": str(AAPL), "fields": FIELDS + ",7051"}
    assert "7051" not in ready.get("/iserver/marketdata/snapshot", params=more).json()[0]
    assert ready.get("/iserver/marketdata/snapshot",
                     params=more).json()[0]["7051"] == "APPLE INC"


def test_snapshot_fx_and_crypto(ready, market):
    rows = ready.snapshot([EURUSD, BTC], FIELDS)
    fx, btc = rows
    assert fx["31"] == f"{market.quote('EUR.USD').last:.5f}" and "87" not in fx
    assert fx["55"] == "EUR.USD"
    assert float(btc["31"]) == market.quote("BTC").last


def test_snapshot_prior_close_prefix_when_closed(ready, clock, market):
    clock.t = WEEKEND_T  # stocks closed, crypto open
    rows = ready.snapshot([AAPL, BTC], FIELDS)
    aapl, btc = rows
    q = market.quote("AAPL")
    assert aapl["31"] == "C" + f"{q.last:.2f}" and aapl["7296"] == f"{q.last:.2f}"
    assert aapl["6509"].startswith("Z")
    assert not btc["31"].startswith(("C", "H")) and btc["6509"] == "RpB"


def test_snapshot_halted_and_no_market_data(ready, portal):
    portal.set_halted("AAPL")
    row = ready.snapshot([AAPL], FIELDS)[0]
    assert row["31"].startswith("H") and float(row["31"][1:]) > 0
    portal.set_halted("AAPL", False)
    portal.set_md_availability("N")
    row = ready.get("/iserver/marketdata/snapshot",
                    params={"conids": AAPL, "fields": FIELDS}).json()[0]
    assert row["6509"] == "N" and "31" not in row and "84" not in row


def test_snapshot_unknown_conid_never_gets_fields(ready):
    for _ in range(3):
        row = ready.get("/iserver/marketdata/snapshot",
                        params={"conids": "999999", "fields": "31"}).json()[0]
        assert row["conid"] == 999999 and "31" not in row
    assert ready.get("/iserver/marketdata/snapshot", params={"conids": "x"}).status_code == 400
    assert ready.get("/iserver/marketdata/snapshot").status_code == 400


def test_snapshot_warmup_and_unsubscribe(ready, portal):
    ready.get("/iserver/marketdata/snapshot", params={"conids": AAPL, "fields": "31"})
    assert "31" in ready.get("/iserver/marketdata/snapshot",
                             params={"conids": AAPL, "fields": "31"}).json()[0]
    assert ready.get("/iserver/marketdata/unsubscribeall").json() == {"unsubscribed": True}
    row = ready.get("/iserver/marketdata/snapshot", params={"conids": AAPL, "fields": "31"})
    assert "31" not in row.json()[0]  # a fresh subscription again


def test_secdef_search_and_stocks(ready):
    hits = ready.get("/iserver/secdef/search", params={"symbol": "AAPL"}).json()
    assert hits[0]["conid"] == str(AAPL)  # a string here
    assert {s["secType"] for s in hits[0]["sections"]} >= {"STK"}
    assert hits[0]["companyName"] == "APPLE INC" and hits[0]["description"] == "NASDAQ"
    post = ready.post("/iserver/secdef/search", json={"symbol": "AAPL", "secType": "STK"})
    assert post.json()[0]["conid"] == str(AAPL)
    fx = ready.get("/iserver/secdef/search", params={"symbol": "EUR.USD", "secType": "CASH"})
    assert [h["conid"] for h in fx.json()] == [str(EURUSD)]
    btc = ready.get("/iserver/secdef/search", params={"symbol": "BTC", "secType": "CRYPTO"})
    assert [h["conid"] for h in btc.json()] == [str(BTC)]
    assert ready.get("/iserver/secdef/search", params={"symbol": "NOPE"}).json() == []
    by_name = ready.get("/iserver/secdef/search", params={"symbol": "APPLE", "name": "true"})
    assert by_name.json()[0]["symbol"] == "AAPL"
    st = ready.get("/trsrv/stocks", params={"symbols": "AAPL,BRK B,NOPE"}).json()
    assert st["AAPL"][0]["contracts"][0] == {"conid": AAPL, "exchange": "NASDAQ", "isUS": True}
    assert st["BRK B"][0]["contracts"][0]["conid"] == 72063691 and st["NOPE"] == []
    pairs = ready.get("/iserver/currency/pairs", params={"currency": "USD"}).json()["USD"]
    assert {"symbol": "EUR.USD", "conid": EURUSD, "ccyPair": "EUR"} in pairs
    assert {"symbol": "USD.JPY", "conid": 15016059, "ccyPair": "JPY"} in pairs
    info = ready.get(f"/iserver/contract/{AAPL}/info").json()
    assert info["con_id"] == AAPL and info["instrument_type"] == "STK"


def _hist(api, **params):
    return api.get("/iserver/marketdata/history", params={"conid": AAPL, **params})


def test_history_shape_and_bar_mapping(ready, market):
    r = _hist(ready, period="2d", bar="1h", outsideRth="false")
    assert r.status_code == 200
    body = r.json()
    for key in ("symbol", "text", "priceFactor", "startTime", "points", "data"):
        assert key in body
    assert body["symbol"] == "AAPL" and body["points"] == len(body["data"])
    bar = body["data"][0]
    assert set(bar) == {"t", "o", "h", "l", "c", "v"}
    ts = [b["t"] for b in body["data"]]
    assert ts == sorted(ts) and all(t % 1000 == 0 for t in ts)
    # the same bars as the market gives: 2 sessions of regular-hours hourly bars
    sess = market.last_sessions("AAPL", market.now() + 1e-6, 2, use_rth=True)
    bars = market.bars("AAPL", sess[0].start, market.now() + 1e-6, 3600, "seconds", "TRADES",
                       use_rth=True)
    assert ts == [int(t) * 1000 for t in bars.time.tolist()]
    assert [b["c"] for b in body["data"]] == pytest.approx(bars.close.tolist())
    start = dt.datetime.strptime(body["startTime"], "%Y%m%d-%H:%M:%S").replace(
        tzinfo=dt.timezone.utc)
    assert start.timestamp() * 1000 == ts[0]
    daily = _hist(ready, period="1w", bar="1d").json()["data"]
    assert 4 <= len(daily) <= 6
    fx = ready.get("/iserver/marketdata/history",
                   params={"conid": EURUSD, "period": "1h", "bar": "5min"}).json()
    assert len(fx["data"]) == 13 and fx["symbol"] == "EUR.USD"  # 14:00 (partial) .. 15:00


@pytest.mark.parametrize("bar,period", [("1min", "30min"), ("2min", "1h"), ("3min", "2h"),
                                        ("5min", "1d"), ("10min", "1d"), ("15min", "2d"),
                                        ("30min", "1w"), ("2h", "1w"), ("3h", "1w"),
                                        ("4h", "1m"), ("8h", "1m"), ("1w", "1y"),
                                        ("1m", "2y")])
def test_history_every_bar_size(ready, bar, period):
    r = _hist(ready, bar=bar, period=period, outsideRth="true")
    assert r.status_code == 200, r.text
    assert r.json()["data"]


@pytest.mark.parametrize("bar,period", [("1sec", "1d"), ("1hour", "1d"), ("7min", "1d"),
                                        ("1h", "31min"), ("1h", "9h"), ("1d", "1001d"),
                                        ("1d", "793w"), ("1d", "183m"), ("1d", "16y"),
                                        ("1d", "0d"), ("1d", "5x"), ("1d", "")])
def test_history_invalid_bar_or_period_is_400(ready, bar, period):
    r = _hist(ready, bar=bar, period=period)
    assert r.status_code == 400 and "error" in r.json()


def test_history_at_most_1000_points_and_start_time_is_the_end(ready):
    body = _hist(ready, period="1000d", bar="1d").json()
    assert len(body["data"]) == 1000 and body["points"] == 1000
    mins = _hist(ready, period="30d", bar="1min", outsideRth="true").json()["data"]
    assert len(mins) == 1000
    assert mins[-1]["t"] // 1000 // 60 * 60 == mins[-1]["t"] // 1000  # the newest minutes
    last = mins[0]["t"] // 1000
    stamp = dt.datetime.fromtimestamp(last, dt.timezone.utc).strftime("%Y%m%d-%H:%M:%S")
    older = _hist(ready, period="30d", bar="1min", outsideRth="true",
                  startTime=stamp).json()["data"]
    assert older and older[-1]["t"] < mins[0]["t"] and len(older) == 1000
    assert _hist(ready, period="1d", bar="1h", startTime="2024/01/01").status_code == 400
    assert ready.get("/iserver/marketdata/history",
                     params={"conid": "999", "period": "1d", "bar": "1h"}).status_code == 400


def test_deterministic_per_seed(clock):
    def grab() -> tuple:
        with run_portal_simulator(market=PaperMarket(seed=7, clock=clock),
                                  enforce_rate_limits=False) as h:
            api = Api(h)
            api.preflight()
            snap = api.snapshot([AAPL, EURUSD], FIELDS)
            for row in snap:
                row.pop("_updated")
            hist = _hist(api, period="1d", bar="5min").json()
            q = api.order(conid=AAPL, side="BUY", quantity=1, orderType="MKT", tif="DAY").json()
            tk = api.post("/tickle").json()
            api.close()
            return snap, hist, q, tk

    assert grab() == grab()


def test_snapshot_warmup(market):
    from .conftest import StepClock

    mono = StepClock(50.0)
    with run_portal_simulator(market=market, clock=mono, enforce_rate_limits=False) as h:
        h.set(snapshot_warmup_s=2.0)
        api = Api(h)
        api.preflight()
        get = lambda: api.get("/iserver/marketdata/snapshot",  # noqa: E731
                              params={"conids": AAPL, "fields": "31"}).json()[0]
        assert "31" not in get() and "31" not in get()
        mono.advance(2.0)
        assert "31" in get()
        api.close()
