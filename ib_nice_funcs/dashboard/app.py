"""The dashboard's web app (Starlette): one page, a JSON state, a chart, stop and resume.

Every request must carry the run's token (``?token=`` in the page URL, the
``X-Dashboard-Token`` header from the page's scripts); without it the answer
is 403 and nothing changes. Handlers are plain functions, so Starlette runs
them on worker threads, where the Client's blocking calls belong (never on
the package's loop thread). Plotly's JavaScript is served from the installed
plotly package: the page needs no network.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..trade_journal.store import JournalUnreadableError, read_rows
from .state import HaltState, StateCollector

__all__ = ["create_app", "TOKEN_HEADER"]

log = logging.getLogger("ib_nice_funcs")

TOKEN_HEADER = "X-Dashboard-Token"
_CHART_TIMEFRAMES = ("1m", "5m", "15m", "1h", "1d")


def _plotly_js() -> Path:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():  # pragma: no cover - a broken plotly install
        raise RuntimeError(f"plotly.min.js not found in the plotly package ({path})")
    return path


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json(value: Any, status: int = 200) -> Response:
    body = json.dumps(_finite(value), default=str, allow_nan=False)
    return Response(body, status_code=status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def create_app(client: Any, token: str, journal_path: Path | None,
               halt: HaltState | None = None, stop_timeout: float | None = None) -> Starlette:
    """The dashboard app over ``client`` (its Trader's account), guarded by ``token``.

    ``stop_timeout``: seconds the Emergency stop may take (default: the Trader's).
    """
    if not token or token != token.strip() or any(c in token for c in "\"'<>&?#/ "):
        raise ValueError("token must be URL-safe text (secrets.token_urlsafe())")
    halt = halt or HaltState()
    collector = StateCollector(client, journal_path, halt)
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    plotly_js = _plotly_js()

    def authorised(request: Request) -> bool:
        given = request.headers.get(TOKEN_HEADER) or request.query_params.get("token") or ""
        return secrets.compare_digest(given.encode(), token.encode())

    def forbidden() -> Response:
        return JSONResponse({"error": "forbidden: open the URL with its token that "
                                      "ib-nice-funcs dashboard printed"}, status_code=403)

    def index(request: Request) -> Response:
        if not authorised(request):
            return forbidden()
        html = page.replace("__TOKEN_URL__", token).replace("__TOKEN__", json.dumps(token))
        return HTMLResponse(html,
                            headers={"Cache-Control": "no-store"})

    def plotly(request: Request) -> Response:
        if not authorised(request):
            return forbidden()
        return FileResponse(plotly_js, media_type="application/javascript")

    def state(request: Request) -> Response:
        if not authorised(request):
            return forbidden()
        return _json(collector.state())

    def chart(request: Request) -> Response:
        if not authorised(request):
            return forbidden()
        symbol = (request.query_params.get("symbol") or "").strip()
        timeframe = request.query_params.get("timeframe") or "5m"
        if not symbol or timeframe not in _CHART_TIMEFRAMES:
            return JSONResponse({"error": f"give symbol=... and timeframe in "
                                          f"{', '.join(_CHART_TIMEFRAMES)}"}, status_code=400)
        # Enough days back that a weekend or holiday still leaves bars to draw.
        days = {"1m": 1.0, "5m": 4.0, "15m": 7.0, "1h": 10.0, "1d": 180.0}[timeframe]
        try:
            frame = client.ohlcv(symbol, timeframe, days)
        except Exception as exc:  # noqa: BLE001 - shown on the page
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=502)
        fills: list[dict[str, Any]] = []
        if journal_path is not None:
            try:
                fills = read_rows(journal_path, kind="fill", symbol=symbol)
            except JournalUnreadableError:
                fills = []
        from ..charts import candles_figure

        figure = candles_figure(frame, symbol, fills)
        return Response(figure.to_json(), media_type="application/json")

    def stop(request: Request) -> Response:
        if not authorised(request):
            return forbidden()
        log.warning("dashboard: emergency stop requested")
        try:
            result = client.trading.emergency_stop(timeout=stop_timeout)
        except Exception as exc:  # noqa: BLE001 - the page shows why
            result = {"success": False, "error": f"{type(exc).__name__}: {exc}",
                      "cancelled_orders": 0, "closed": []}
        halt.halt("emergency stop from the dashboard", result)
        collector.invalidate()
        return _json({"halt": collector.halt_now(), "result": result})

    def resume(request: Request) -> Response:
        if not authorised(request):
            return forbidden()
        try:
            note = halt.resume(client.trading, stop_timeout)
        except Exception as exc:  # noqa: BLE001 - the page shows why the halt stays
            return _json({"halt": collector.halt_now(),
                          "error": f"{type(exc).__name__}: {exc}"}, 502)
        collector.invalidate()
        return _json({"halt": collector.halt_now(), "note": note})

    routes = [
        Route("/", index),
        Route("/plotly.min.js", plotly),
        Route("/api/state", state),
        Route("/api/chart", chart),
        Route("/api/stop", stop, methods=["POST"]),
        Route("/api/resume", resume, methods=["POST"]),
    ]
    return Starlette(routes=routes)
