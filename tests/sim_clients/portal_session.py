"""A scripted ibind session against the Client Portal simulator:
``python portal_session.py URL CA``.

Runs in its own process (ibind reads its settings from the environment at
import and logs to files unless told not to) and prints one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("IBIND_LOG_TO_FILE", "False")
os.environ.setdefault("IBIND_LOG_TO_CONSOLE", "False")

from ibind import IbkrClient, OrderRequest, QuestionType  # noqa: E402
from ibind.support.errors import ExternalBrokerError  # noqa: E402

ANSWERS = {q: True for q in (QuestionType.PRICE_PERCENTAGE_CONSTRAINT,
                             QuestionType.ORDER_VALUE_LIMIT, QuestionType.ORDER_SIZE_LIMIT,
                             QuestionType.MISSING_MARKET_DATA,
                             QuestionType.MARKET_ORDER_CONFIRMATION,
                             QuestionType.MANDATORY_CAP_PRICE, QuestionType.STOP_ORDER_RISKS,
                             QuestionType.CASH_QUANTITY_ORDER)}


class PacedClient(IbkrClient):
    """ibind does not pace itself; a well-behaved agent keeps under the gateway's
    global 10 requests per second, as this one does (0.11 s between requests)."""

    _last = 0.0

    def _request(self, *args, **kwargs):
        wait = self._last + 0.11 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last = time.monotonic()
        return super()._request(*args, **kwargs)


def main(url: str, ca: str) -> dict:
    client = PacedClient(url=url.rstrip("/") + "/", cacert=ca, use_session=False,
                         auto_register_shutdown=False)
    out: dict = {"healthy": client.check_health()}
    acct = client.portfolio_accounts().data[0]["id"]
    client.account_id = acct
    client.receive_brokerage_accounts()
    aapl = client.stock_conid_by_symbol("AAPL").data["AAPL"]
    out["conid"] = aapl
    deadline = time.monotonic() + 10
    snap: dict = {}
    while "31" not in snap and time.monotonic() < deadline:  # the first snapshot is empty
        snap = client.live_marketdata_snapshot(str(aapl), ["31", "84", "86"]).data[0]
    last = float(snap["31"])
    out["last"] = last
    out["bars"] = {bar: len(client.marketdata_history_by_conid(
        str(aapl), bar=bar, period=period).data["data"])
        for bar, period in (("1min", "1d"), ("1h", "5d"), ("1d", "1m"))}

    def order(**kw) -> OrderRequest:
        return OrderRequest(conid=aapl, acct_id=acct, tif=kw.pop("tif", "DAY"), **kw)

    placed = client.place_order(order(side="BUY", quantity=10, order_type="MKT", coid="mkt"),
                                ANSWERS).data
    out["market"] = placed["order_status"]
    stop = client.place_order(order(side="SELL", quantity=1, order_type="STP", tif="GTC",
                                    price=round(last * 0.9, 2), coid="stp"), ANSWERS).data
    out["stop"] = stop["order_status"]
    try:
        client.place_order(order(side="SELL", quantity=1, order_type="STP", tif="GTC",
                                 price=round(last * 0.9, 2), coid="stp"), ANSWERS)
        out["duplicate"] = "accepted"
    except ExternalBrokerError as exc:
        out["duplicate"] = str(exc)
    bracket = client.place_order([
        order(side="BUY", quantity=5, order_type="LMT", price=round(last * 1.01, 2), coid="p"),
        order(side="SELL", quantity=5, order_type="LMT", price=round(last * 1.05, 2), coid="tp",
              parent_id="p", tif="GTC"),
        order(side="SELL", quantity=5, order_type="STP", price=round(last * 0.95, 2), coid="sl",
              parent_id="p", tif="GTC")], ANSWERS).data
    out["bracket"] = [row["order_status"] for row in bracket]
    oca = client.place_order([
        order(side="BUY", quantity=1, order_type="LMT", price=round(last * 0.9, 2), coid="o1",
              is_single_group=True, tif="GTC"),
        order(side="BUY", quantity=1, order_type="LMT", price=round(last * 0.8, 2), coid="o2",
              is_single_group=True, tif="GTC")], ANSWERS).data
    out["oca"] = len(oca)
    modified = client.modify_order(oca[0]["order_id"], order(
        side="BUY", quantity=2, order_type="LMT", price=round(last * 0.85, 2), tif="GTC"),
        ANSWERS).data
    out["modified"] = modified["order_status"] if isinstance(modified, dict) else modified
    client.cancel_order("-1")
    rows = client.live_orders().data["orders"]
    out["open_after_cancel_all"] = [r["order_ref"] for r in rows
                                    if r["status"] in ("Submitted", "PreSubmitted")]
    out["summary"] = client.account_summary(acct).data["netLiquidationValue"]
    out["pnl"] = client.account_profit_and_loss().data["upnl"][f"{acct}.Core"]["nl"]
    out["ledger"] = client.get_ledger(acct).data["USD"]["netliquidationvalue"]
    out["portfolio_summary"] = client.portfolio_summary(acct).data["netliquidation"]["amount"]
    out["positions"] = {p["conid"]: p["position"] for p in client.positions(acct).data}
    out["whatif"] = client.whatif_order(order(side="BUY", quantity=1, order_type="MKT"),
                                        acct).data["error"]
    out["allocation"] = sorted(client.portfolio_account_allocation(acct).data["assetClass"]
                               ["long"])
    out["meta"] = client.portfolio_account_information(acct).data["id"]
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2]), default=str))
