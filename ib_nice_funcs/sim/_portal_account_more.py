"""More account endpoints of the Client Portal simulator: the ones ibind and
other gateway clients call beside positions, summary and ledger.

``/iserver/account/{acct}/summary`` (balances), ``/iserver/account/pnl/
partitioned`` (daily, unrealized P&L per account), ``/portfolio/subaccounts``,
``/portfolio/{acct}/meta``, ``/portfolio/{acct}/allocation``,
``/portfolio2/{acct}/positions`` (unpaged), ``/portfolio/{acct}/combo/
positions`` (none: no combos), ``/portfolio/positions/{conid}`` (every
account), ``POST /iserver/account`` (switch account) and
``/iserver/exchangerate``. Shapes follow IB's Web API reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._portal_account import portfolio_accounts, position_rows
from ._portal_http import HttpError, Reply, Request, Route

if TYPE_CHECKING:
    from .portal import PortalSimulator


def _values(sim: PortalSimulator) -> tuple[dict[str, float], float]:
    return sim.engine.values(sim.market.now()), sim.engine.cash


async def iserver_summary(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.check_account(params["acct"])
    values, cash = await sim.engine_call(_values, sim)

    def r(key: str) -> float:
        return round(values[key], 2)

    return Reply(200, {
        "accountType": "", "status": "", "balance": round(cash, 2),
        "SMA": r("AvailableFunds"), "buyingPower": r("BuyingPower"),
        "availableFunds": r("AvailableFunds"), "excessLiquidity": r("ExcessLiquidity"),
        "netLiquidationValue": r("NetLiquidation"), "equityWithLoanValue":
            r("EquityWithLoanValue"), "regTLoan": 0.0, "securitiesGVP": r("GrossPositionValue"),
        "totalCashValue": r("TotalCashValue"), "accruedInterest": 0.0, "regTMargin":
            r("InitMarginReq"), "initialMargin": r("InitMarginReq"),
        "maintenanceMargin": r("MaintMarginReq"),
        "cashBalances": [{"currency": "USD", "balance": round(cash, 2),
                          "settledCash": round(cash, 2)},
                         {"currency": "Total (in USD)", "balance": round(cash, 2),
                          "settledCash": round(cash, 2)}],
    })


async def pnl_partitioned(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    values, _cash = await sim.engine_call(_values, sim)
    unreal, real = values["UnrealizedPnL"], values["RealizedPnL"]
    return Reply(200, {"upnl": {f"{sim.account}.Core": {
        "rowType": 1, "dpl": round(unreal + real, 2), "nl": round(values["NetLiquidation"], 2),
        "upl": round(unreal, 2), "el": round(values["ExcessLiquidity"], 2),
        "mv": round(values["StockMarketValue"], 2)}}})


async def subaccounts(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    return await portfolio_accounts(sim, req, params)


async def meta(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.check_account(params["acct"])
    reply = await portfolio_accounts(sim, req, params)
    return Reply(200, reply.body[0])


async def allocation(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.check_account(params["acct"])
    rows = await sim.engine_call(position_rows, sim)
    out: dict[str, dict[str, dict[str, float]]] = {
        "assetClass": {"long": {}, "short": {}}, "sector": {"long": {}, "short": {}},
        "group": {"long": {}, "short": {}}}
    for row in rows:
        side = "long" if row["position"] > 0 else "short"
        for kind, key in (("assetClass", row["assetClass"]), ("sector", row["sector"] or "Others"),
                          ("group", row["group"] or "Others")):
            book = out[kind][side]
            book[key] = round(book.get(key, 0.0) + row["mktValue"], 2)
    values, cash = await sim.engine_call(_values, sim)
    out["assetClass"]["long"]["CASH"] = round(cash, 2) if cash > 0 else 0.0
    if cash < 0:
        out["assetClass"]["short"]["CASH"] = round(cash, 2)
    return Reply(200, out)


async def positions_unpaged(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.check_account(params["acct"])
    rows = await sim.engine_call(position_rows, sim)
    keep = ("position", "conid", "avgCost", "avgPrice", "currency", "description",
            "unrealizedPnl", "realizedPnl", "marketValue", "mktValue", "mktPrice",
            "secType", "assetClass", "timestamp", "contractDesc", "ticker")
    out = []
    for row in rows:
        row = dict(row, description=row["contractDesc"], marketValue=row["mktValue"],
                   secType=row["assetClass"], timestamp=row["time"])
        out.append({k: row[k] for k in keep})
    return Reply(200, out)


async def combo_positions(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.check_account(params["acct"])
    return Reply(200, [])


async def positions_by_conid(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    inst = sim.instrument(params["conid"])
    rows = await sim.engine_call(position_rows, sim)
    return Reply(200, {sim.account: [r for r in rows if r["conid"] == inst.con_id]})


async def switch_account(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    body = req.json()
    acct = body.get("acctId") if isinstance(body, dict) else None
    if not acct:
        raise HttpError(400, 'the body must be {"acctId": "..."}')
    sim.check_account(str(acct))
    return Reply(200, {"set": True, "acctId": sim.account})


async def exchange_rate(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    source = req.query.get("source", "").upper()
    target = req.query.get("target", "").upper()
    if not source or not target:
        raise HttpError(400, "source and target currencies are required")

    def rate() -> float:
        return sim.engine.usd_rate(source) / sim.engine.usd_rate(target)

    return Reply(200, {"rate": round(await sim.engine_call(rate), 8)})


ROUTES = [
    Route(("GET",), "/iserver/account/{acct}/summary", iserver_summary, iserver=True),
    Route(("GET",), "/iserver/account/pnl/partitioned", pnl_partitioned, iserver=True),
    Route(("POST",), "/iserver/account", switch_account, iserver=True),
    Route(("GET",), "/iserver/exchangerate", exchange_rate, iserver=True),
    Route(("GET",), "/portfolio/subaccounts", subaccounts),
    Route(("GET",), "/portfolio/{acct}/meta", meta, portfolio=True),
    Route(("GET",), "/portfolio/{acct}/allocation", allocation, portfolio=True),
    Route(("GET",), "/portfolio2/{acct}/positions", positions_unpaged),
    Route(("GET",), "/portfolio/{acct}/combo/positions", combo_positions, portfolio=True),
    Route(("GET",), "/portfolio/positions/{conid}", positions_by_conid, portfolio=True),
]
