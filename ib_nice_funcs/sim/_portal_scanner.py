"""Market scanner endpoints of the Client Portal simulator.

``GET /iserver/scanner/params`` lists the scans (the TWS simulator's:
``TOP_PERC_GAIN``, ``TOP_PERC_LOSE``, ``MOST_ACTIVE``, ``HOT_BY_VOLUME``,
``HIGH_OPEN_GAP``, ``LOW_OPEN_GAP`` over US stocks); ``POST
/iserver/scanner/run`` with ``{"instrument": "STK", "type": CODE,
"location": "STK.US.MAJOR", "filter": [...]}`` ranks the catalog's stocks
(filters ``priceAbove``, ``priceBelow``, ``volumeAbove``) and answers
``{"contracts": [...], "scan_data_column_name": ...}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._portal_http import HttpError, Reply, Request, Route
from ._scanner import MAX_ROWS, SCANS, scan

if TYPE_CHECKING:
    from .views import PortalView

_LOCATION = "STK.US.MAJOR"


async def params(sim: PortalView, req: Request, params: dict) -> Reply:
    return Reply(200, {
        "scan_type_list": [{"display_name": code.replace("_", " ").title(), "code": code,
                            "instruments": ["STK"]} for code in SCANS],
        "instrument_list": [{"display_name": "US Stocks", "type": "STK",
                             "filters": ["priceAbove", "priceBelow", "volumeAbove"]}],
        "filter_list": [{"group": "Price", "display_name": name, "code": name,
                         "type": "non-range"} for name in ("priceAbove", "priceBelow",
                                                           "volumeAbove")],
        "location_tree": [{"display_name": "US Stocks", "type": "STK",
                           "locations": [{"display_name": "Listed/NASDAQ",
                                          "type": _LOCATION, "locations": []}]}],
    })


def _filter_value(filters: object, code: str) -> float | None:
    for item in filters if isinstance(filters, list) else []:
        if isinstance(item, dict) and item.get("code") == code:
            value: Any = item.get("value")  # any JSON value; float() rejects non-numbers
            try:
                return float(value)
            except (TypeError, ValueError):
                raise HttpError(400, f"filter {code} needs a number") from None
    return None


async def run(sim: PortalView, req: Request, params: dict) -> Reply:
    body = req.json()
    if not isinstance(body, dict):
        raise HttpError(400, 'the body must be {"instrument", "type", "location", "filter"}')
    instrument = str(body.get("instrument", "")).upper()
    code = str(body.get("type", "")).upper()
    if instrument != "STK" or code not in SCANS:
        raise HttpError(400, f"scanner {instrument} {code} is not available; instrument STK "
                             f"with type one of {', '.join(SCANS)}")
    filters = body.get("filter")
    hits = scan(sim.market, code, MAX_ROWS, _filter_value(filters, "priceAbove"),
                _filter_value(filters, "priceBelow"), _filter_value(filters, "volumeAbove"))
    contracts = [{"server_id": str(rank), "column_name": "Chg%", "symbol": inst.symbol,
                  "conidex": str(inst.con_id), "con_id": inst.con_id,
                  "available_chart_periods": "#R|1", "company_name": inst.long_name,
                  "contract_description_1": inst.symbol,
                  "listing_exchange": inst.primary_exchange, "sec_type": inst.sec_type}
                 for rank, inst in enumerate(hits)]
    return Reply(200, {"contracts": contracts, "scan_data_column_name": "Chg%"})


ROUTES = [
    Route(("GET",), "/iserver/scanner/params", params, iserver=True),
    Route(("POST",), "/iserver/scanner/run", run, iserver=True),
]
