"""PortalClient: the Client Portal endpoints this package needs, as blocking calls.

Contracts (with a conid cache), snapshot prices (with the pre-flight poll),
history (bar/period mapping, chunked, at most 5 requests in flight),
positions (every page), the account summary and the live orders. Orders
live in :mod:`ib_nice_funcs.portal.orders`.

Every method takes a ``deadline`` (``time.monotonic()`` seconds) or a
``timeout`` and blocks at most until then; waits for rate-limit slots are
part of that time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from ..errors import (
    MarketDataNotSubscribedError,
    NoDataError,
    RequestTimeoutError,
    SourceUnavailableError,
    UnknownSymbolError,
)
from .http import PortalHTTP, PortalHTTPError
from .mapping import (
    BAR_BY_TIMEFRAME,
    SNAPSHOT_FIELDS,
    as_conid,
    format_start_time,
    history_frame,
    normalize_base_url,
    pick_fx_pair,
    pick_search_result,
    pick_trsrv_stock,
    plan_history,
    position_row,
    snapshot_availability,
    snapshot_price,
    summary_values,
)
from .order_mapping import live_orders_rows
from .session import PortalSession

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..symbols import Instrument
    from ..timeframes import Timeframe

__all__ = ["PortalClient"]

log = logging.getLogger("ib_nice_funcs.portal")

#: Conids are stable; a day keeps the cache fresh enough for renamed tickers.
_CONID_TTL_S = 86_400.0
#: An unknown symbol is asked again after this long.
_MISSING_TTL_S = 300.0
#: Conids per snapshot request (the gateway takes a comma list).
_SNAPSHOT_BATCH = 50
#: Pages of 100 positions read at most (10,000 positions).
_MAX_POSITION_PAGES = 100


class PortalClient:
    """A blocking client of one Client Portal gateway.

    Threading contract: every method may be called from any thread
    concurrently; each blocks at most until its deadline. Rate limits are
    shared with every other client of the same gateway in the process.

    Args:
        base_url: The gateway's API base (``https://localhost:5000/v1/api``).
        verify: TLS verification (False is an explicit, logged opt-in).
        ca_path: CA bundle (PEM) for the gateway's certificate; None: the system store.
        account: Account id to use (None: the gateway's selected account).
        penalty_s: Back-off after an HTTP 429.
        rate: Overall requests per second (IB: 10).
        connect_timeout: Upper bound of one connect.
        snapshot_wait: Longest wait for a snapshot's fields to appear.
        tickle_interval: Seconds between keep-alive tickles while in use.
        idle_after: Seconds without calls after which tickling stops.
        max_points: Bars per history answer the gateway serves at most.
        http: A ready HTTP layer (tests); made from the arguments otherwise.
        clock: UTC epoch seconds "now" for history ranges (``Settings.clock``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        verify: bool = True,
        ca_path: str | None = None,
        account: str | None = None,
        penalty_s: float = 600.0,
        rate: float = 10.0,
        connect_timeout: float = 4.0,
        snapshot_wait: float = 5.0,
        tickle_interval: float = 60.0,
        idle_after: float = 300.0,
        max_points: int = 1000,
        http: PortalHTTP | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self.http = http or PortalHTTP(self.base_url, verify=verify, ca_path=ca_path,
                                       penalty_s=penalty_s, rate=rate,
                                       connect_timeout=connect_timeout)
        self.session = PortalSession(self.http, account, tickle_interval=tickle_interval,
                                     idle_after=idle_after)
        self.snapshot_wait = float(snapshot_wait)
        self.max_points = int(max_points)
        self.clock = clock
        self._cache_lock = threading.Lock()
        self._conids: TTLCache[tuple[Any, ...], int] = TTLCache(4096, _CONID_TTL_S)
        self._missing: TTLCache[tuple[Any, ...], bool] = TTLCache(1024, _MISSING_TTL_S)

    def __repr__(self) -> str:
        return f"PortalClient({self.base_url!r})"

    def close(self) -> None:
        """Stop the keep-alive and close the connections (safe to call twice)."""
        self.http.close()  # first: it also wakes a tickle waiting for its rate-limit slot
        self.session.close()

    @property
    def penalty(self) -> Any:
        """The shared penalty box of this gateway."""
        return self.http.guards.penalty

    # -- account ------------------------------------------------------------------------

    def account(self, deadline: float) -> str:
        """The account id in use (after the pre-flight); blocks until ``deadline``."""
        self.session.keepalive.touch()
        self.session.ensure_ready(deadline)
        assert self.session.account is not None
        return self.session.account

    def is_paper(self, deadline: float) -> bool:
        """Whether the account is a paper account (``isPaper``, else a ``D`` prefix)."""
        self.account(deadline)
        return bool(self.session.paper)

    # -- contracts ----------------------------------------------------------------------

    def conid(self, instrument: Instrument, deadline: float) -> int | None:
        """The conid of ``instrument``, or None when the gateway knows no such contract.

        Cached for a day (misses for five minutes). Blocks until ``deadline``.

        Raises:
            ConnectionFailedError, RequestTimeoutError, SourceUnavailableError.
        """
        contract = instrument.contract
        given = as_conid(getattr(contract, "conId", None)) if contract is not None else None
        if given:
            return given
        key = instrument.key
        with self._cache_lock:
            if key in self._conids:
                return self._conids[key]
            if key in self._missing:
                return None
        found = self._search(instrument, deadline)
        with self._cache_lock:
            if found is None:
                self._missing[key] = True
            else:
                self._conids[key] = found
        if found is None:
            log.debug("Client Portal knows no contract for %s", instrument.symbol)
        return found

    def _get(self, path: str, params: dict[str, Any], deadline: float, what: str) -> Any:
        """A lookup GET whose HTTP refusal means "not here" (None), not a failure.

        A 405 is asked again as a POST with the parameters as a JSON body
        (older gateways take ``/iserver/secdef/search`` only that way).
        """
        for method in ("GET", "POST"):
            try:
                return self.session.call(
                    method, path, params=params if method == "GET" else None,
                    json=params if method == "POST" else None, deadline=deadline, what=what,
                    translate=False)
            except PortalHTTPError as exc:
                # Down or logged out is a failure; anything else (some gateways answer 500
                # to an unknown symbol) only means "not found here".
                if exc.status in (401, 502, 503, 504):
                    raise self.session.translate(exc) from None
                log.debug("%s: HTTP %d (%s)", what, exc.status, exc.error_text[:80])
                if exc.status != 405:
                    return None
        return None

    def _search(self, instrument: Instrument, deadline: float) -> int | None:
        what = f"contract search for {instrument.symbol}"
        kind = instrument.asset_class
        if kind == "fx":
            for ccy in (instrument.currency, instrument.ib_symbol):
                found = pick_fx_pair(
                    self._get("/iserver/currency/pairs", {"currency": ccy}, deadline, what),
                    instrument.ib_symbol, instrument.currency)
                if found:
                    return found
            rows = self._get("/iserver/secdef/search",
                             {"symbol": instrument.ib_symbol, "secType": "CASH"}, deadline, what)
            return pick_search_result(rows, instrument)
        sec_type = {"stock": "STK", "crypto": "CRYPTO"}.get(kind, instrument.sec_type or "STK")
        rows = self._get("/iserver/secdef/search",
                         {"symbol": instrument.ib_symbol, "secType": sec_type}, deadline, what)
        found = pick_search_result(rows, instrument)
        if found is None and kind == "stock":
            found = pick_trsrv_stock(
                self._get("/trsrv/stocks", {"symbols": instrument.ib_symbol}, deadline, what),
                instrument.ib_symbol)
        return found

    # -- prices -------------------------------------------------------------------------

    def prices(self, instruments: Sequence[Instrument], deadline: float) -> dict[str, float | None]:
        """Snapshot prices keyed by ``Instrument.symbol``; None where none arrived in time.

        Blocks until ``deadline`` at most; the snapshot poll itself stops after
        ``snapshot_wait`` seconds so a silent contract leaves time to fall back.

        Raises:
            UnknownSymbolError: the gateway knows none of the instruments.
            MarketDataNotSubscribedError: the gateway has no market data for any of them.
            ConnectionFailedError, RequestTimeoutError, SourceUnavailableError.
        """
        out: dict[str, float | None] = {i.symbol: None for i in instruments}
        conids: dict[str, int] = {}
        for instrument in instruments:
            found = self.conid(instrument, deadline)
            if found is not None:
                conids[instrument.symbol] = found
        if instruments and not conids:
            names = ", ".join(i.symbol for i in instruments)
            raise UnknownSymbolError(f"price of {names}: the Client Portal knows no such "
                                     "contract; check the symbol")
        if not conids:
            return out
        rows = self.snapshot(sorted(set(conids.values())), deadline)
        none = 0
        for symbol, conid in conids.items():
            row = rows.get(conid)
            if row is None:
                continue
            out[symbol] = snapshot_price(row)
            if out[symbol] is None and snapshot_availability(row) == "N":
                none += 1
        if none and none == len(conids):
            raise MarketDataNotSubscribedError(
                f"price of {', '.join(conids)}: the Client Portal has no market data for it "
                "(availability N); subscribe to the market data, or use another source")
        return out

    def snapshot(self, conids: Sequence[int], deadline: float) -> dict[int, Mapping[str, Any]]:
        """Snapshot rows by conid, polling until each has a price or the poll ends.

        The first request for a conid only starts its subscription, so the
        call is repeated (a short pause between tries, on top of the rate
        limit) until the fields appear, availability says there is no data,
        or ``min(deadline, now + snapshot_wait)`` passes.

        Returns:
            The last row seen for each conid (rows without a price included).
        """
        poll_end = min(deadline, time.monotonic() + self.snapshot_wait)
        pending = list(dict.fromkeys(int(c) for c in conids))
        rows: dict[int, Mapping[str, Any]] = {}
        attempt = 0
        while pending:
            for start in range(0, len(pending), _SNAPSHOT_BATCH):
                batch = pending[start:start + _SNAPSHOT_BATCH]
                payload = self.session.call(
                    "GET", "/iserver/marketdata/snapshot", deadline=deadline,
                    params={"conids": ",".join(map(str, batch)),
                            "fields": ",".join(SNAPSHOT_FIELDS)},
                    what=f"snapshot of conid {','.join(map(str, batch))}")
                for row in payload if isinstance(payload, list) else []:
                    if isinstance(row, Mapping):
                        conid = as_conid(row.get("conid")) or as_conid(row.get("conidEx"))
                        if conid is not None:
                            rows[conid] = row
            pending = [c for c in pending if c not in rows or (
                snapshot_price(rows[c]) is None and snapshot_availability(rows[c]) != "N")]
            if not pending:
                break
            # First retry at once (the rate limit spaces it); then back off a little.
            pause = 0.0 if attempt == 0 else min(0.5, 0.1 * 2 ** (attempt - 1))
            attempt += 1
            if time.monotonic() + pause >= poll_end:
                break
            if pause:
                time.sleep(pause)
        return rows

    # -- history ------------------------------------------------------------------------

    def history(
        self, instrument: Instrument, timeframe: Timeframe, start: datetime, end: datetime,
        deadline: float,
    ) -> pd.DataFrame:
        """OHLCV bars in ``[start, end)``, fetched in chunks of at most ~1000 bars.

        Chunks go out concurrently (at most 5 in flight, the gateway's limit).
        Blocks until ``deadline``.

        Raises:
            ValueError: a timeframe the Client Portal has no bar for.
            UnknownSymbolError: no such contract.
            NoDataError: no bars in the range.
            ConnectionFailedError, RequestTimeoutError, SourceUnavailableError.
        """
        from ..frames import concat_ohlcv, trim

        what = f"{timeframe.name} bars of {instrument.symbol}"
        if timeframe.name not in BAR_BY_TIMEFRAME:
            raise ValueError(f"{what}: the Client Portal has no {timeframe.name} bars")
        conid = self.conid(instrument, deadline)
        if conid is None:
            raise UnknownSymbolError(f"{what}: the Client Portal knows no contract for "
                                     f"{instrument.symbol!r}; check the symbol")
        chunks = plan_history(timeframe, start, end, self.max_points)
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        daily = timeframe.seconds >= 86_400

        def fetch(index: int) -> pd.DataFrame:
            chunk = chunks[index]
            params = {"conid": str(conid), "bar": BAR_BY_TIMEFRAME[timeframe.name],
                      "period": chunk.period, "outsideRth": "true"}
            if chunk.end < now:  # the newest chunk ends now: no startTime needed
                params["startTime"] = format_start_time(chunk.end)
            try:
                payload = self.session.call("GET", "/iserver/marketdata/history", params=params,
                                            deadline=deadline, what=what, translate=False)
            except PortalHTTPError as exc:
                raise self._history_error(exc, what) from None
            return history_frame(payload, daily)

        if len(chunks) == 1:
            frames = [fetch(0)]
        else:
            frames = self._fetch_all(fetch, len(chunks), deadline, what)
        frame = trim(concat_ohlcv(frames), start, end)
        if frame.empty:
            raise NoDataError(
                f"{what}: the Client Portal returned no bars between {start:%Y-%m-%d %H:%M} and "
                f"{end:%Y-%m-%d %H:%M} UTC (market closed, or no data for that range)")
        return frame

    @staticmethod
    def _fetch_all(fetch: Any, count: int, deadline: float, what: str) -> list[pd.DataFrame]:
        pool = ThreadPoolExecutor(max_workers=min(5, count), thread_name_prefix="ib_nice_funcs-cp")
        try:
            futures = [pool.submit(fetch, i) for i in range(count)]
            done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()),
                                 return_when=FIRST_EXCEPTION)
            for fut in done:
                if fut.exception() is not None:
                    raise fut.exception()  # type: ignore[misc]
            if pending:
                raise RequestTimeoutError(f"{what}: {len(pending)} of {count} history chunks "
                                          "had no answer before the timeout")
            return [f.result() for f in futures]
        finally:
            # Unstarted chunks are dropped; running ones end by their own deadline.
            pool.shutdown(wait=False, cancel_futures=True)

    def _history_error(self, exc: PortalHTTPError, what: str) -> Exception:
        text = exc.error_text
        if exc.status in (400, 404, 500) and ("conid" in text or "contract" in text):
            return UnknownSymbolError(f"{what}: the Client Portal does not know the contract "
                                      f"({exc.text})")
        if exc.status == 400 and ("bar" in text or "period" in text):
            return SourceUnavailableError(f"{what}: the Client Portal refused the request "
                                          f"({exc.text})")
        if exc.status in (400, 404, 500) and ("data" in text or "chart" in text):
            return NoDataError(f"{what}: the Client Portal has no data ({exc.text})")
        return self.session.translate(exc)

    # -- portfolio ------------------------------------------------------------------------

    def positions(self, deadline: float) -> list[dict[str, Any]]:
        """Every open position (all pages of 100), as nice_funcs position dicts.

        Blocks until ``deadline``.

        Raises:
            ConnectionFailedError, RequestTimeoutError, SourceUnavailableError.
        """
        out: list[dict[str, Any]] = []
        seen: set[Any] = set()
        for page in range(_MAX_POSITION_PAGES):
            def positions_path(acct: str, p: int = page) -> str:
                return f"/portfolio/{acct}/positions/{p}"

            rows = self.session.call(
                "GET", positions_path, deadline=deadline,
                what=f"positions page {page}", portfolio=True)
            rows = [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []
            fresh = [r for r in rows if _row_key(r) not in seen]
            seen.update(_row_key(r) for r in rows)
            out.extend(position_row(r) for r in fresh)
            size = next((int(r["pageSize"]) for r in rows if str(r.get("pageSize", "")).isdigit()),
                        100)
            # A short page ends the list; so does a gateway that ignores the page number.
            if len(rows) < size or not fresh:
                break
        return [p for p in out if p["quantity"] != 0]

    def account_summary(self, deadline: float) -> dict[str, Any]:
        """Net liquidation, available funds and the rest of ``/portfolio/{acct}/summary``.

        Returns:
            ``account, net_liquidation, available_funds, buying_power,
            total_cash, currency, values`` (every summary key, lower case) and
            ``source`` ("portal").

        Raises:
            ConnectionFailedError, RequestTimeoutError, SourceUnavailableError.
        """
        payload = self.session.call("GET", lambda acct: f"/portfolio/{acct}/summary",
                                    deadline=deadline, what="account summary", portfolio=True)
        values = summary_values(payload)

        def number(*keys: str) -> float | None:
            for key in keys:
                value = values.get(key)
                if isinstance(value, (int, float)):
                    return float(value)
            return None

        currency = values.get("currency") if isinstance(values.get("currency"), str) else None
        if currency is None and isinstance(payload, Mapping):
            entry = payload.get("netliquidation")
            currency = entry.get("currency") if isinstance(entry, Mapping) else None
        return {
            "account": self.session.account,
            "net_liquidation": number("netliquidation", "netliquidation-s"),
            "available_funds": number("availablefunds", "availablefunds-s"),
            "buying_power": number("buyingpower"),
            "total_cash": number("totalcashvalue", "totalcashvalue-s"),
            "currency": currency or "USD",
            "values": values,
            "source": "portal",
        }

    def live_orders(self, deadline: float) -> list[Mapping[str, Any]]:
        """Rows of ``GET /iserver/account/orders`` (today's orders, done ones included).

        The endpoint allows one request per 5 s; the caller waits for its slot
        within ``deadline``. A first answer marked ``"snapshot": false`` (the
        gateway still loading) is asked again once if time allows.

        Raises:
            ConnectionFailedError, RequestTimeoutError, SourceUnavailableError.
        """
        payload = self.session.call("GET", "/iserver/account/orders", deadline=deadline,
                                    what="live orders")
        if isinstance(payload, Mapping) and payload.get("snapshot") is False \
                and not live_orders_rows(payload):
            try:
                payload = self.session.call("GET", "/iserver/account/orders", deadline=deadline,
                                            what="live orders")
            except RequestTimeoutError:
                log.debug("live orders: no time for the second request; using the first answer")
        return live_orders_rows(payload)


def _row_key(row: Mapping[str, Any]) -> Any:
    return (as_conid(row.get("conid")), row.get("contractDesc"), row.get("acctId"))
