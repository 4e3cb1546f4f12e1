"""Portfolio endpoints: the pre-flight, paged positions, summary and ledger."""

from __future__ import annotations

import pytest

from .conftest import AAPL


def _buy(api, conid, qty):
    api.post("/iserver/questions/suppress", json={"messageIds": ["o10151", "o10153", "o10288",
                                                                 "o451", "o383"]})
    body = api.order(conid=conid, side="BUY", quantity=qty, orderType="MKT", tif="DAY").json()
    assert "order_id" in body[0], body


def test_portfolio_preflight(api):
    r = api.get(f"/portfolio/{api.acct}/positions/0")
    assert r.status_code == 400 and "portfolio/accounts" in r.json()["error"]
    api.get("/portfolio/accounts")
    assert api.get(f"/portfolio/{api.acct}/positions/0").json() == []


def test_positions_are_paged(ready, portal, market):
    symbols = ["AAPL", "MSFT", "IBM", "JPM", "SPY"]
    for sym in symbols:
        _buy(ready, market.get(sym).con_id, 1)
    portal.set(positions_page_size=2)
    pages = [ready.get(f"/portfolio/{ready.acct}/positions/{n}").json() for n in range(4)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    got = [row["contractDesc"] for page in pages for row in page]
    assert sorted(got) == sorted(symbols) and len(set(got)) == 5
    row = pages[0][0]
    for key in ("conid", "contractDesc", "ticker", "position", "mktPrice", "mktValue", "avgCost",
                "unrealizedPnl", "currency", "assetClass"):
        assert key in row
    assert isinstance(row["conid"], int) and row["pageSize"] == 2
    q = market.quote(row["ticker"])
    assert row["mktPrice"] == q.last and row["mktValue"] == pytest.approx(q.last)
    assert ready.get(f"/portfolio/{ready.acct}/positions/x").status_code == 400
    assert ready.get("/portfolio/U999/positions/0").status_code == 400
    one = ready.get(f"/portfolio/{ready.acct}/position/{AAPL}").json()
    assert [r["conid"] for r in one] == [AAPL]


def test_summary_and_ledger(ready, market):
    s = ready.get(f"/portfolio/{ready.acct}/summary").json()
    assert s["netliquidation"]["amount"] == 1_000_000.0
    assert s["netliquidation"]["currency"] == "USD"
    assert s["availablefunds"]["amount"] == 1_000_000.0
    assert s["accountcode"]["value"] == ready.acct
    for key in ("totalcashvalue", "buyingpower", "equitywithloanvalue", "initmarginreq"):
        assert set(s[key]) >= {"amount", "currency", "isNull", "timestamp", "value"}
    _buy(ready, AAPL, 10)
    s = ready.get(f"/portfolio/{ready.acct}/summary").json()
    assert s["netliquidation"]["amount"] < 1_000_000.0  # spread and commission
    assert s["grosspositionvalue"]["amount"] == pytest.approx(10 * market.quote("AAPL").last)
    led = ready.get(f"/portfolio/{ready.acct}/ledger").json()
    assert set(led) == {"USD", "BASE"}
    assert led["BASE"]["netliquidationvalue"] == pytest.approx(s["netliquidation"]["amount"])
    assert led["USD"]["cashbalance"] == pytest.approx(s["totalcashvalue"]["amount"])
