"""Session, account and portfolio endpoints of the Client Portal simulator.

Shapes follow the real gateway: ``/iserver/auth/status`` and ``/tickle``
report the brokerage session; ``/iserver/accounts`` is the pre-flight that
unlocks snapshots and orders; ``/portfolio/accounts`` comes before the other
``/portfolio`` endpoints; positions are pages of 100 rows; the summary maps
lower-case keys to ``{amount, currency, isNull, timestamp, value, severity}``;
the ledger maps currencies (and ``BASE``) to balances.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._portal_http import HttpError, Reply, Request, Route
from .catalog import CRYPTO, FX, STOCK

if TYPE_CHECKING:
    from .portal import PortalSimulator

SERVER_VERSION = "Build 10.25.0p, Dec 5, 2023 5:48:12 PM"


def _server_info(sim: PortalSimulator) -> dict:
    return {"serverName": "JifN" + str(int(sim.stable_hex("server", n=6), 16) % 90000 + 10000),
            "serverVersion": SERVER_VERSION}


def _mac(sim: PortalSimulator) -> str:
    h = sim.stable_hex("mac", n=12).upper()
    return ":".join(h[i:i + 2] for i in range(0, 12, 2))


def auth_status_body(sim: PortalSimulator) -> dict:
    """The body of ``/iserver/auth/status`` now."""
    up = not sim.no_bridge
    return {"authenticated": up, "competing": bool(sim.competing), "connected": True,
            "message": "" if up else "no bridge", "MAC": _mac(sim),
            "serverInfo": _server_info(sim), "fail": "",
            "hardware_info": sim.stable_hex("hw", n=8) + "|" + _mac(sim)}


async def auth_status(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    return Reply(200, auth_status_body(sim))


async def tickle(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    status = auth_status_body(sim)
    return Reply(200, {
        "session": sim.stable_hex("session", sim.seed, n=32),
        "ssoExpires": 460000, "collission": False,
        "userId": int(sim.stable_hex("user", n=7), 16) % 90_000_000 + 10_000_000,
        "hmds": {"error": "no bridge"},
        "iserver": {"authStatus": {k: status[k] for k in ("authenticated", "competing",
                                                         "connected", "message", "MAC",
                                                         "serverInfo")}},
    })


async def ssodh_init(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    body = req.json() or {}
    if not isinstance(body, dict):
        raise HttpError(400, "body must be a JSON object")
    sim.reset_session()
    sim.no_bridge = False
    if body.get("compete", True):
        sim.competing = False
    status = auth_status_body(sim)
    return Reply(200, {"passed": True, "authenticated": status["authenticated"],
                       "connected": True, "competing": status["competing"], "message": "",
                       "MAC": status["MAC"], "serverInfo": status["serverInfo"]})


async def reauthenticate(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.reset_session()
    sim.no_bridge = False
    return Reply(200, {"message": "triggered"})


async def logout(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.authenticated = False
    return Reply(200, {"status": True})


async def iserver_accounts(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.session.accounts_called = True
    acct = sim.account
    return Reply(200, {
        "accounts": [acct],
        "acctProps": {acct: {"hasChildAccounts": False, "supportsCashQty": True,
                             "noFXConv": False, "isProp": False, "supportsFractions": True,
                             "allowCustomerTime": False}},
        "aliases": {acct: acct},
        "allowFeatures": {"showGFIS": True, "showEUCostReport": False,
                          "allowEventContract": True, "allowFXConv": True,
                          "allowFinancialLens": False, "allowMTA": True,
                          "allowTypeAhead": True, "allowEventTrading": True,
                          "snapshotRefreshTimeout": 30, "liteUser": False,
                          "showWebNews": True, "research": True, "debugPnl": True,
                          "showTaxOpt": True, "showImpactDashboard": True,
                          "allowDynAccount": False, "allowCrypto": True,
                          "allowedAssetTypes": "STK,CFD,OPT,FOP,WAR,FUT,BAG,PDC,CASH,IND,BOND,"
                                               "BILL,FUND,SLB,News,CMDTY,IOPT,ICU,ICS,PHYSS,"
                                               "CRYPTO"},
        "chartPeriods": {"STK": ["*"], "CASH": ["*"], "CRYPTO": ["*"]},
        "groups": [], "profiles": [], "selectedAccount": acct,
        "serverInfo": _server_info(sim),
        "sessionId": sim.stable_hex("sess", n=8) + ".00000001",
        "isFT": False,
        "isPaper": acct.startswith("D"),
    })


async def portfolio_accounts(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.session.portfolio_called = True
    acct = sim.account
    paper = acct.startswith("D")
    return Reply(200, [{
        "id": acct, "PrepaidCrypto-Z": False, "PrepaidCrypto-P": False, "brokerageAccess": True,
        "accountId": acct, "accountVan": acct, "accountTitle": "", "displayName": acct,
        "accountAlias": None, "accountStatus": 1_644_814_800_000, "currency": "USD",
        "type": "DEMO" if paper else "INDIVIDUAL", "tradingType": "PMRGN",
        "businessType": "IB_PROSERVE", "ibEntity": "IBLLC-US", "faclient": False,
        "clearingStatus": "O", "covestor": False, "noClientTrading": False,
        "trackVirtualFXPortfolio": True,
        "parent": {"mmc": [], "accountId": "", "isMParent": False, "isMChild": False,
                   "isMultiplex": False},
        "desc": acct,
    }])


def position_rows(sim: PortalSimulator) -> list[dict]:
    """Open positions as the gateway lists them (run on the engine's thread)."""
    now = sim.market.now()
    rows = []
    for pos, px, _value, _unreal in sim.engine.portfolio(now):
        if pos.quantity == 0:
            continue
        inst = pos.inst
        desc = inst.key
        rows.append({
            "acctId": sim.account, "conid": inst.con_id, "contractDesc": desc,
            "position": float(pos.quantity), "mktPrice": float(px),
            "mktValue": round(float(pos.quantity * px), 2), "currency": inst.currency,
            "avgCost": round(float(pos.avg_cost), 8), "avgPrice": round(float(pos.avg_cost), 8),
            "realizedPnl": round(float(pos.realized), 2),
            "unrealizedPnl": round(float((px - pos.avg_cost) * pos.quantity), 2),
            "exchs": None, "expiry": None, "putOrCall": None, "multiplier": None,
            "strike": 0.0, "exerciseStyle": None, "conExchMap": [],
            "assetClass": inst.sec_type, "undConid": 0, "model": "",
            "time": int(now * 1000), "chineseName": None,
            "allExchanges": inst.valid_exchanges, "listingExchange": inst.primary_exchange,
            "countryCode": "US" if inst.sec_type == STOCK else "",
            "name": inst.long_name, "lastTradingDay": None,
            "group": inst.industry or None, "sector": inst.industry or None,
            "sectorGroup": inst.category or None, "ticker": inst.key,
            "type": inst.stock_type or ("" if inst.sec_type != STOCK else "COMMON"),
            "hasOptions": inst.sec_type == STOCK, "fullName": desc,
            "isUS": inst.sec_type == STOCK, "isEventContract": False,
            "displayRule": {"magnification": 0,
                            "displayRuleStep": [{"decimalDigits": inst.price_decimals,
                                                 "lowerEdge": 0.0, "wholeDigits": 4}]},
            "incrementRules": [{"lowerEdge": 0.0, "increment": inst.min_tick}],
        })
    rows.sort(key=lambda r: (r["assetClass"] != STOCK, r["contractDesc"]))
    return rows


async def positions(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.check_account(params["acct"])
    try:
        page = int(params["page"])
    except ValueError:
        raise HttpError(400, f"Invalid page number: {params['page']}") from None
    if page < 0:
        raise HttpError(400, f"Invalid page number: {page}")
    rows = await sim.engine_call(position_rows, sim)
    size = int(sim.positions_page_size)
    chunk = rows[page * size:(page + 1) * size]
    for row in chunk:
        row["pageSize"] = size
    return Reply(200, chunk)


async def position_by_conid(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.check_account(params["acct"])
    inst = sim.instrument(params["conid"])
    rows = await sim.engine_call(position_rows, sim)
    return Reply(200, [r for r in rows if r["conid"] == inst.con_id])


async def invalidate_positions(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.check_account(params["acct"])
    return Reply(200, {"message": "success"})


_MONEY = ("netliquidation", "totalcashvalue", "settledcash", "accruedcash",
          "equitywithloanvalue", "grosspositionvalue", "initmarginreq", "maintmarginreq",
          "fullinitmarginreq", "fullmaintmarginreq", "availablefunds", "fullavailablefunds",
          "excessliquidity", "fullexcessliquidity", "buyingpower", "previousdayequitywithloanvalue",
          "regtequity", "regtmargin", "sma", "lookaheadavailablefunds",
          "lookaheadexcessliquidity", "lookaheadinitmarginreq", "lookaheadmaintmarginreq")
_TAGS = {"netliquidation": "NetLiquidation", "totalcashvalue": "TotalCashValue",
         "settledcash": "SettledCash", "accruedcash": "AccruedCash",
         "equitywithloanvalue": "EquityWithLoanValue",
         "grosspositionvalue": "GrossPositionValue", "initmarginreq": "InitMarginReq",
         "maintmarginreq": "MaintMarginReq", "fullinitmarginreq": "FullInitMarginReq",
         "fullmaintmarginreq": "FullMaintMarginReq", "availablefunds": "AvailableFunds",
         "fullavailablefunds": "FullAvailableFunds", "excessliquidity": "ExcessLiquidity",
         "fullexcessliquidity": "FullExcessLiquidity", "buyingpower": "BuyingPower",
         "previousdayequitywithloanvalue": "EquityWithLoanValue",
         "regtequity": "EquityWithLoanValue", "regtmargin": "InitMarginReq",
         "sma": "AvailableFunds", "lookaheadavailablefunds": "AvailableFunds",
         "lookaheadexcessliquidity": "ExcessLiquidity",
         "lookaheadinitmarginreq": "InitMarginReq", "lookaheadmaintmarginreq": "MaintMarginReq"}


def _values(sim: PortalSimulator) -> dict[str, float]:
    return sim.engine.values(sim.market.now())


async def summary(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.check_account(params["acct"])
    values = await sim.engine_call(_values, sim)
    ts = sim.now_ms()

    def money(amount: float, currency: str | None = "USD") -> dict:
        return {"amount": round(float(amount), 2), "currency": currency, "isNull": False,
                "timestamp": ts, "value": None, "severity": 0}

    def text(value: str) -> dict:
        return {"amount": 0.0, "currency": None, "isNull": False, "timestamp": ts,
                "value": value, "severity": 0}

    out = {"accountcode": text(sim.account), "accounttype": text("INDIVIDUAL"),
           "accountready": text("true"), "billable": text("false"),
           "currency": text("USD")}
    for key in _MONEY:
        out[key] = money(values[_TAGS[key]])
        if key in ("netliquidation", "availablefunds", "totalcashvalue", "excessliquidity",
                   "equitywithloanvalue", "initmarginreq", "maintmarginreq"):
            out[key + "-s"] = money(values[_TAGS[key]])
            out[key + "-c"] = money(0.0)
    out["cushion"] = money(values["Cushion"], None)
    out["leverage-s"] = money(values["Leverage"], None)
    out["daytradesremaining"] = money(values["DayTradesRemaining"], None)
    out["daytradesremainingt+1"] = money(values["DayTradesRemaining"], None)
    return Reply(200, out)


async def ledger(sim: PortalSimulator, req: Request, params: dict) -> Reply:
    sim.check_account(params["acct"])

    def read() -> tuple[dict[str, float], float, dict[str, float]]:
        now = sim.market.now()
        by_type = {STOCK: 0.0, CRYPTO: 0.0, FX: 0.0}
        for pos, _px, value, _unreal in sim.engine.portfolio(now):
            by_type[pos.inst.sec_type] = by_type.get(pos.inst.sec_type, 0.0) + value
        return sim.engine.values(now), sim.engine.cash, by_type

    values, cash, by_type = await sim.engine_call(read)
    stock, crypto, fx = by_type[STOCK], by_type[CRYPTO], by_type[FX]
    ts = int(sim.market.now())

    def entry(second: str) -> dict:
        return {"commoditymarketvalue": 0.0, "futuremarketvalue": 0.0,
                "settledcash": round(cash, 2), "exchangerate": 1,
                "sessionid": 1, "cashbalance": round(cash, 2),
                "corporatebondsmarketvalue": 0.0, "warrantsmarketvalue": 0.0,
                "netliquidationvalue": round(values["NetLiquidation"], 2), "interest": 0.0,
                "unrealizedpnl": round(values["UnrealizedPnL"], 2),
                "stockmarketvalue": round(stock, 2), "moneyfunds": 0.0, "currency": second,
                "realizedpnl": round(values["RealizedPnL"], 2), "funds": 0.0,
                "acctcode": sim.account, "issueroptionsmarketvalue": 0.0, "key": "LedgerList",
                "timestamp": ts, "severity": 0, "stockoptionmarketvalue": 0.0,
                "futuresonlypnl": 0.0, "tbondsmarketvalue": 0.0, "futureoptionmarketvalue": 0.0,
                "cashbalancefxsegment": round(fx, 2), "secondkey": second,
                "tbillsmarketvalue": 0.0, "endofbundle": 1, "dividends": 0.0,
                "cryptocurrencyvalue": round(crypto, 2)}

    return Reply(200, {"USD": entry("USD"), "BASE": entry("BASE")})


ROUTES = [
    Route(("GET", "POST"), "/iserver/auth/status", auth_status),
    Route(("GET", "POST"), "/tickle", tickle),
    Route(("POST",), "/iserver/auth/ssodh/init", ssodh_init),
    Route(("GET", "POST"), "/iserver/reauthenticate", reauthenticate),
    Route(("GET", "POST"), "/logout", logout),
    Route(("GET",), "/iserver/accounts", iserver_accounts, iserver=True),
    Route(("GET",), "/portfolio/accounts", portfolio_accounts),
    Route(("POST",), "/portfolio/{acct}/positions/invalidate", invalidate_positions,
          portfolio=True),
    Route(("GET",), "/portfolio/{acct}/positions/{page}", positions, portfolio=True),
    Route(("GET",), "/portfolio/{acct}/position/{conid}", position_by_conid, portfolio=True),
    Route(("GET",), "/portfolio/{acct}/summary", summary, portfolio=True),
    Route(("GET",), "/portfolio/{acct}/ledger", ledger, portfolio=True),
]
