"""Brackets, OCA groups, modify, cancel-all, what-if and the extra account endpoints over REST."""

from __future__ import annotations

import pytest

from .conftest import AAPL, BTC, wait_until


def _tick(market, px, symbol="AAPL"):
    inst = market.get(symbol)
    return round(round(px / inst.min_tick) * inst.min_tick, inst.price_decimals)


def _rows(api):
    return {r.get("order_ref"): r for r in api.get("/iserver/account/orders").json()["orders"]}


def test_bracket_fills_the_parent_and_protects_it_with_oca_children(ready, portal, market):
    q = market.quote("AAPL")
    orders = [
        {"conid": AAPL, "side": "BUY", "quantity": 10, "orderType": "LMT",
         "price": _tick(market, q.ask), "tif": "DAY", "cOID": "parent"},
        {"conid": AAPL, "side": "SELL", "quantity": 10, "orderType": "LMT",
         "price": _tick(market, q.last * 1.01), "tif": "GTC", "cOID": "tp", "parentId": "parent"},
        {"conid": AAPL, "side": "SELL", "quantity": 10, "orderType": "STP",
         "price": _tick(market, q.last * 0.99), "tif": "GTC", "cOID": "sl", "parentId": "parent"},
    ]
    body, _asked = ready.confirm_all(ready.post(f"/iserver/account/{ready.acct}/orders",
                                                json={"orders": orders}))
    assert [row["local_order_id"] for row in body] == ["parent", "tp", "sl"]
    rows = _rows(ready)
    assert rows["parent"]["status"] == "Filled"
    assert rows["tp"]["parentId"] == rows["sl"]["parentId"] == rows["parent"]["orderId"]
    assert rows["tp"]["status"] == "Submitted" and rows["sl"]["status"] == "Submitted"
    portal.set_price("AAPL", q.last * 0.98)  # through the stop
    wait_until(lambda: _rows(ready)["sl"]["status"] == "Filled")
    assert _rows(ready)["tp"]["status"] == "Cancelled"
    assert ready.get(f"/portfolio/{ready.acct}/positions/0").json() == []
    portal.set_price("AAPL", None)


def test_oca_group_and_cancel_all(ready, market):
    q = market.quote("AAPL")
    orders = [{"conid": AAPL, "side": "BUY", "quantity": 1, "orderType": "LMT",
               "price": _tick(market, q.bid * (1 - k / 100)), "tif": "GTC",
               "cOID": f"oca-{k}", "isSingleGroup": True} for k in (1, 2)]
    body, _ = ready.confirm_all(ready.post(f"/iserver/account/{ready.acct}/orders",
                                           json={"orders": orders}))
    assert len(body) == 2
    rows = _rows(ready)
    assert rows["oca-1"]["status"] == rows["oca-2"]["status"] == "Submitted"  # both working
    unrelated = [dict(orders[0], cOID="x"), dict(orders[1], cOID="y", isSingleGroup=False)]
    for o in unrelated:
        o.pop("isSingleGroup", None)
    r = ready.post(f"/iserver/account/{ready.acct}/orders", json={"orders": unrelated})
    assert r.status_code == 400
    done = ready.delete(f"/iserver/account/{ready.acct}/order/-1").json()
    assert done["msg"] == "Request was submitted" and done["order_id"] == -1
    rows = _rows(ready)
    assert rows["oca-1"]["status"] == rows["oca-2"]["status"] == "Cancelled"


def test_modify_changes_price_and_quantity(ready, market):
    px = _tick(market, market.quote("AAPL").bid * 0.99)
    [placed] = ready.order(conid=AAPL, side="BUY", quantity=5, orderType="LMT", price=px,
                           tif="GTC", cOID="m-1").json()
    oid = placed["order_id"]
    r = ready.post(f"/iserver/account/{ready.acct}/order/{oid}",
                   json={"conid": AAPL, "side": "BUY", "orderType": "LMT", "quantity": 7,
                         "price": _tick(market, px - 0.5), "tif": "GTC"})
    assert r.status_code == 200 and r.json()[0]["order_id"] == oid
    row = _rows(ready)["m-1"]
    assert row["totalSize"] == 7.0 and row["price"] == f"{px - 0.5:.2f}"
    bad = ready.post(f"/iserver/account/{ready.acct}/order/{oid}", json={"side": "SELL"})
    assert bad.status_code == 400
    ready.delete(f"/iserver/account/{ready.acct}/order/{oid}")
    late = ready.post(f"/iserver/account/{ready.acct}/order/{oid}", json={"quantity": 3})
    assert "error" in late.json()


def test_duplicate_coid_uses_the_gateway_wording(ready, market):
    px = _tick(market, market.quote("AAPL").bid * 0.99)
    ready.order(conid=AAPL, side="BUY", quantity=1, orderType="LMT", price=px, cOID="d-1")
    again = ready.order(conid=AAPL, side="BUY", quantity=1, orderType="LMT", price=px, cOID="d-1")
    assert again.json()["error"].startswith("Order couldn't be submitted: Local order ID=d-1")


def test_stop_limit_and_cash_quantity_orders(ready, market):
    q = market.quote("AAPL")
    body, asked = ready.confirm_all(ready.order(
        conid=AAPL, side="SELL", quantity=1, orderType="STOP_LIMIT",
        price=_tick(market, q.last * 0.985), auxPrice=_tick(market, q.last * 0.99), tif="GTC",
        cOID="sl-1"))
    assert "o10331" in asked and body[0]["order_status"] in ("Submitted", "PreSubmitted")
    assert _rows(ready)["sl-1"]["orderType"] == "Stop Limit"
    body, asked = ready.confirm_all(ready.order(conid=BTC, side="BUY", cashQty=500,
                                                orderType="MKT", tif="IOC", cOID="cash-1"))
    assert "o10223" in asked and body[0]["order_status"] == "Filled"
    row = _rows(ready)["cash-1"]
    assert 0 < row["filledQuantity"] * market.quote("BTC").ask <= 500


def test_whatif_previews_without_placing(ready, portal, market):
    r = ready.post(f"/iserver/account/{ready.acct}/orders/whatif",
                   json={"orders": [{"conid": AAPL, "side": "BUY", "quantity": 10,
                                     "orderType": "MKT"}]})
    body = r.json()
    assert body["error"] is None and body["position"]["after"] == "10"
    assert body["amount"]["commission"] == "1.00 USD"
    assert portal.order_count == 0
    huge = ready.post(f"/iserver/account/{ready.acct}/orders/whatif",
                      json={"orders": [{"conid": AAPL, "side": "SELL", "quantity": 1_000_000,
                                        "orderType": "MKT"}]}).json()
    assert "INITIAL MARGIN" in huge["error"]


def test_account_summary_pnl_and_portfolio_siblings(ready, market):
    body, _ = ready.confirm_all(ready.order(conid=AAPL, side="BUY", quantity=3,
                                            orderType="MKT", tif="DAY"))
    acct = ready.acct
    summary = ready.get(f"/iserver/account/{acct}/summary").json()
    assert summary["netLiquidationValue"] > 0 and summary["buyingPower"] > 0
    pnl = ready.get("/iserver/account/pnl/partitioned").json()["upnl"][f"{acct}.Core"]
    assert pnl["nl"] == pytest.approx(summary["netLiquidationValue"], abs=0.02)
    assert ready.get("/portfolio/subaccounts").json()[0]["id"] == acct
    assert ready.get(f"/portfolio/{acct}/meta").json()["id"] == acct
    alloc = ready.get(f"/portfolio/{acct}/allocation").json()
    assert alloc["assetClass"]["long"]["STK"] > 0
    [pos] = ready.get(f"/portfolio2/{acct}/positions").json()
    assert pos["conid"] == AAPL and pos["position"] == 3.0
    assert ready.get(f"/portfolio/{acct}/combo/positions").json() == []
    assert ready.get(f"/portfolio/positions/{AAPL}").json()[acct][0]["position"] == 3.0
    assert ready.post("/iserver/account", json={"acctId": acct}).json()["set"] is True
    assert ready.get("/iserver/exchangerate", params={"source": "USD",
                                                      "target": "USD"}).json()["rate"] == 1.0


def test_scanner_params_and_run(ready, portal, market):
    params = ready.get("/iserver/scanner/params").json()
    codes = [t["code"] for t in params["scan_type_list"]]
    assert "TOP_PERC_GAIN" in codes and "MOST_ACTIVE" in codes
    body = {"instrument": "STK", "type": "TOP_PERC_GAIN", "location": "STK.US.MAJOR",
            "filter": [{"code": "priceAbove", "value": 50}]}
    hits = ready.post("/iserver/scanner/run", json=body).json()["contracts"]
    assert hits and all(market.quote(h["symbol"]).last >= 50 for h in hits)
    change = [(market.quote(h["symbol"]).last / market.quote(h["symbol"]).prior_close)
              for h in hits]
    assert change == sorted(change, reverse=True)
    again = ready.post("/iserver/scanner/run", json=body)
    assert again.status_code == 429 or again.json()["contracts"] == hits  # 1 run per second
    portal.set_enforce_rate_limits(False)
    bad = ready.post("/iserver/scanner/run", json={"instrument": "FUT", "type": "X"})
    assert bad.status_code == 400
