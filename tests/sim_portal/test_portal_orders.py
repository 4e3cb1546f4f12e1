"""Orders over REST: questions and replies, cOID, live orders, cancels, fills."""

from __future__ import annotations

import pytest

from .conftest import AAPL, BTC, EURUSD


def _limit_below(market, symbol="AAPL", pct=0.01):
    inst = market.get(symbol)
    px = market.quote(symbol).bid * (1 - pct)
    return round(round(px / inst.min_tick) * inst.min_tick, inst.price_decimals)


def test_market_order_asks_two_questions_then_places(ready, portal, market):
    r = ready.order(conid=AAPL, side="BUY", quantity=10, orderType="MKT", tif="DAY",
                    cOID="mkt-1")
    q1 = r.json()
    assert r.status_code == 200 and isinstance(q1, list) and len(q1) == 1
    assert set(q1[0]) >= {"id", "message", "messageIds"}
    assert q1[0]["messageIds"] == ["o10151"] and "Are you sure" in q1[0]["message"][0]
    r2 = ready.post(f"/iserver/reply/{q1[0]['id']}", json={"confirmed": True}).json()
    assert r2[0]["messageIds"] == ["o10153"] and r2[0]["id"] != q1[0]["id"]
    assert portal.order_count == 0  # nothing placed before the last answer
    placed = ready.post(f"/iserver/reply/{r2[0]['id']}", json={"confirmed": True}).json()
    assert isinstance(placed[0]["order_id"], str) and placed[0]["order_status"] == "Filled"
    assert portal.order_count == 1
    # a reply id is single use
    again = ready.post(f"/iserver/reply/{r2[0]['id']}", json={"confirmed": True})
    assert again.status_code == 400 and "error" in again.json()
    row = ready.get(f"/portfolio/{ready.acct}/positions/0").json()[0]
    assert row["conid"] == AAPL and row["position"] == 10.0
    assert row["avgCost"] == pytest.approx(market.quote("AAPL").ask + 0.1)


def test_limit_order_within_the_constraint_is_placed_at_once(ready, market):
    px = _limit_below(market)
    r = ready.order(conid=str(AAPL), side="BUY", quantity=5, orderType="LMT", price=px,
                    tif="GTC", cOID="lmt-1")
    body = r.json()
    assert body[0]["order_status"] == "Submitted" and body[0]["local_order_id"] == "lmt-1"
    rows = ready.get("/iserver/account/orders").json()["orders"]
    [row] = [o for o in rows if o.get("order_ref") == "lmt-1"]
    assert row["orderId"] == int(body[0]["order_id"]) and row["status"] == "Submitted"
    assert row["conid"] == AAPL and row["side"] == "BUY" and row["totalSize"] == 5.0
    assert row["price"] == f"{px:.2f}" and row["orderType"] == "Limit"
    assert row["timeInForce"] == "GTC" and row["remainingQuantity"] == 5.0


@pytest.mark.parametrize("fields,expected", [
    ({"orderType": "LMT", "price": "FAR", "quantity": 5}, ["o163"]),
    ({"orderType": "LMT", "price": "NEAR", "quantity": 600}, ["o383", "o451"]),
    ({"orderType": "STP", "price": "FARUP", "quantity": 5}, ["o163", "o10331"]),
    ({"orderType": "TRAIL", "trailingAmt": 2.0, "trailingType": "amt", "quantity": 5},
     ["o10331"]),
    ({"orderType": "MKT", "quantity": 1, "conid": EURUSD}, ["o10151"]),
    ({"orderType": "MKT", "quantity": 0.01, "conid": BTC}, ["o10288"]),
])
def test_question_kinds(ready, market, fields, expected):
    near = _limit_below(market)
    prices = {"FAR": round(near * 0.9, 2), "NEAR": near,
              "FARUP": round(market.quote("AAPL").ask * 1.1, 2)}
    order = {"conid": AAPL, "side": "BUY", "tif": "DAY", **fields}
    if order.get("price") in prices:
        order["price"] = prices[order["price"]]
    body, asked = ready.confirm_all(ready.order(**order))
    assert asked == expected
    assert "order_id" in body[0], body


def test_suppressed_questions_are_not_asked(ready):
    ok = ready.post("/iserver/questions/suppress", json={"messageIds": ["o10151", "o10153"]})
    assert ok.json() == {"status": "submitted"}
    body = ready.order(conid=AAPL, side="BUY", quantity=1, orderType="MKT", tif="DAY").json()
    assert "order_id" in body[0]
    ready.post("/iserver/questions/suppress/reset")
    body = ready.order(conid=AAPL, side="BUY", quantity=1, orderType="MKT", tif="DAY").json()
    assert body[0]["messageIds"] == ["o10151"]


def test_a_new_submission_invalidates_earlier_reply_ids(ready, portal):
    first = ready.order(conid=AAPL, side="BUY", quantity=1, orderType="MKT", tif="DAY").json()
    second = ready.order(conid=AAPL, side="SELL", quantity=1, orderType="MKT", tif="DAY").json()
    stale = ready.post(f"/iserver/reply/{first[0]['id']}", json={"confirmed": True})
    assert stale.status_code == 400
    body, _ = ready.confirm_all(ready.post(f"/iserver/reply/{second[0]['id']}",
                                           json={"confirmed": True}))
    assert "order_id" in body[0] and portal.order_count == 1


def test_declining_a_question_places_nothing(ready, portal):
    q = ready.order(conid=AAPL, side="BUY", quantity=1, orderType="MKT", tif="DAY").json()
    no = ready.post(f"/iserver/reply/{q[0]['id']}", json={"confirmed": False}).json()
    assert "error" in no and portal.order_count == 0
    assert ready.get("/iserver/account/orders").json()["orders"] == []


def test_coid_round_trip_and_duplicate_refusal(ready, portal, market):
    px = _limit_below(market)
    first = ready.order(conid=AAPL, side="BUY", quantity=2, orderType="LMT", price=px,
                        tif="DAY", cOID="dup-1").json()
    oid = first[0]["order_id"]
    dup = ready.order(conid=AAPL, side="BUY", quantity=2, orderType="LMT", price=px,
                      tif="DAY", cOID="dup-1")
    assert dup.status_code == 200 and "dup-1" in dup.json()["error"]
    assert "already" in dup.json()["error"]
    # still refused after the first is cancelled, and while questions are pending
    ready.delete(f"/iserver/account/{ready.acct}/order/{oid}")
    again = ready.order(conid=AAPL, side="SELL", quantity=1, orderType="MKT", tif="DAY",
                        cOID="dup-1")
    assert "error" in again.json()
    q = ready.order(conid=AAPL, side="BUY", quantity=1, orderType="MKT", tif="DAY",
                    cOID="dup-2").json()
    ready.order(conid=AAPL, side="BUY", quantity=1, orderType="LMT", price=px, tif="DAY",
                cOID="dup-2")  # placed at once, no question
    body, _ = ready.confirm_all(ready.post(f"/iserver/reply/{q[0]['id']}",
                                           json={"confirmed": True}))
    assert isinstance(body, dict) or "error" in body  # stale (400) or duplicate
    refs = [o.get("order_ref") for o in ready.get("/iserver/account/orders").json()["orders"]]
    assert refs.count("dup-1") == 1 and refs.count("dup-2") == 1
    assert portal.order_count == 2


def test_live_orders_cancel_status_and_trades(ready, market):
    px = _limit_below(market)
    placed = ready.order(conid=AAPL, side="BUY", quantity=3, orderType="LMT", price=px,
                         tif="DAY", cOID="c-1").json()
    oid = placed[0]["order_id"]
    row = ready.get("/iserver/account/orders").json()["orders"][0]
    assert row["timeInForce"] == "CLOSE"  # DAY, as the gateway shows it
    st = ready.get(f"/iserver/account/order/status/{oid}").json()
    assert st["order_status"] == "Submitted" and st["order_id"] == int(oid)
    assert st["cannot_cancel_order"] is False
    r = ready.delete(f"/iserver/account/{ready.acct}/order/{oid}")
    assert r.status_code == 200 and r.json()["msg"] == "Request was submitted"
    assert r.json()["order_id"] == int(oid)
    rows = ready.get("/iserver/account/orders").json()["orders"]
    assert rows[0]["status"] == "Cancelled"
    assert ready.get("/iserver/account/orders",
                     params={"filters": "submitted"}).json()["orders"] == []
    assert len(ready.get("/iserver/account/orders",
                         params={"filters": "Cancelled"}).json()["orders"]) == 1
    twice = ready.delete(f"/iserver/account/{ready.acct}/order/{oid}")
    assert "error" in twice.json()
    assert ready.delete(f"/iserver/account/{ready.acct}/order/42").status_code == 400
    # a fill shows in the trades with its cOID
    body, _ = ready.confirm_all(ready.order(conid=AAPL, side="BUY", quantity=4,
                                            orderType="MKT", tif="DAY", cOID="t-1"))
    [trade] = ready.get("/iserver/account/trades").json()
    assert trade["order_ref"] == "t-1" and trade["size"] == 4.0 and trade["side"] == "B"
    assert float(trade["price"]) == market.quote("AAPL").ask
    st = ready.get(f"/iserver/account/order/status/{body[0]['order_id']}").json()
    assert st["order_status"] == "Filled" and float(st["average_price"]) == float(trade["price"])


def test_resting_order_fills_when_the_price_moves(ready, portal, market):
    px = _limit_below(market, pct=0.02)
    oid = ready.order(conid=AAPL, side="BUY", quantity=1, orderType="LMT", price=px,
                      tif="DAY", cOID="r-1").json()[0]["order_id"]
    portal.set_price("AAPL", px - 0.5)
    from .conftest import wait_until

    wait_until(lambda: ready.get(f"/iserver/account/order/status/{oid}").json()[
        "order_status"] == "Filled")
    portal.set_price("AAPL", None)


def test_malformed_and_rejected_orders(ready, market):
    acct = ready.acct
    cases = [
        {"conid": AAPL, "side": "HOLD", "quantity": 1, "orderType": "MKT"},
        {"conid": AAPL, "side": "BUY", "quantity": -1, "orderType": "MKT"},
        {"conid": AAPL, "side": "BUY", "quantity": 1, "orderType": "LMT"},
        {"conid": AAPL, "side": "BUY", "quantity": 1, "orderType": "STOP_LIMIT", "price": 1},
        {"conid": 123, "side": "BUY", "quantity": 1, "orderType": "MKT"},
        {"conid": AAPL, "side": "BUY", "cashQty": -5, "orderType": "MKT"},
        {"conid": AAPL, "side": "BUY", "quantity": 1, "orderType": "MKT", "tif": "XYZ"},
    ]
    for order in cases:
        r = ready.post(f"/iserver/account/{acct}/orders", json={"orders": [order]})
        assert r.status_code == 400 and "error" in r.json(), order
    assert ready.post(f"/iserver/account/{acct}/orders", json={"orders": []}).status_code == 400
    assert ready.post("/iserver/account/U999/orders",
                      json={"orders": [cases[0]]}).status_code == 400
    # the engine refuses what buying power cannot pay: an error, and the order is Inactive
    body, _ = ready.confirm_all(ready.order(conid=AAPL, side="BUY", quantity=100_000,
                                            orderType="LMT", price=_limit_below(market),
                                            tif="DAY", cOID="big"))
    assert "BUYING POWER" in body["error"]
    [row] = ready.get("/iserver/account/orders").json()["orders"]
    assert row["status"] == "Inactive" and row["order_ref"] == "big"


def test_first_live_orders_call_may_be_empty(ready, portal, market):
    portal.set(orders_first_call_empty=True)
    ready.order(conid=AAPL, side="BUY", quantity=1, orderType="LMT",
                price=_limit_below(market), tif="DAY", cOID="e-1")
    first = ready.get("/iserver/account/orders").json()
    assert first == {"orders": [], "snapshot": False}
    assert [o["order_ref"] for o in ready.get("/iserver/account/orders").json()["orders"]] == \
        ["e-1"]
