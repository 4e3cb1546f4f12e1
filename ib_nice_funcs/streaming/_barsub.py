"""Kept-up-to-date bars: one ``keepUpToDate`` historical subscription per symbol and timeframe.

An agent that polls ``get_ohlcv_data(sym, "15m", 3)`` every minute would send
one historical request per call and soon break IB's 60-per-10-minutes rule.
Instead, the first call for a (symbol, timeframe) opens a ``keepUpToDate=True``
request covering the range asked (older parts, beyond one request's span, are
fetched once as plain requests and kept); IB then streams the forming bar and
each new one, and later calls are answered from that list with no message.
A later call reaching further back fetches only the missing older part.

IB counts the same ``keepUpToDate`` request within 15 s as "identical"; a
subscription is opened with a slightly longer duration to dodge that, and
when every spelling would still have to wait (say, many clients opening the
same one), that call is answered with plain requests and the subscription is
opened by a later call.

With :attr:`BarSubscriptions.sharing` (``redis_url``: see
:mod:`ib_nice_funcs.fleet.bars`) one process of the fleet keeps each
series and writes it to Redis after every update; the others answer from
that copy and take the series over when its holder stops renewing it.

A subscription is reopened when the connection dropped, IB reported 1101
("data lost") or an error on it, or it got no update for
``max(3 bars, 15 minutes)``. Nothing is served from it while the gateway's
``health`` is not current (the link is silent, or IB's 1100 is in force
until 1101 / 1102): those calls fail over to the next source. At most
:attr:`BarSubscriptions.max_subs` (50) are open per client, least recently
read first out; one nobody read for
:attr:`BarSubscriptions.idle_after` (30 minutes) is cancelled.

Threading contract: loop thread only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from .._tasks import SharedTask
from ..errors import (
    CONNECTIVITY_RESTORED_DATA_LOST,
    NoDataError,
    PacingViolationError,
    classify_ib_error,
)
from ..timeframes import plan_chunks

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ib_async import IB, BarDataList, Contract

    from ..symbols import Instrument
    from ..timeframes import Timeframe
    from .source import BarSource

__all__ = ["BarSubscriptions", "BarSharing"]

log = logging.getLogger("ib_nice_funcs")

_MAX_SUBS = 50
_IDLE_S = 1800.0
_MIN_STALE_S = 900.0
_CREATE_TIMEOUT_S = 20.0
_SWEEP_S = 60.0
_DURATION_RE = re.compile(r"^(\d+) ([SDWMY])$")
#: A subscription that could only be opened after this long a pacing wait
#: (an identical one was opened within 15 s, e.g. by another client) is not
#: opened now: that call is answered by plain requests instead.
_MAX_SUB_WAIT_S = 1.0


class BarSharing(Protocol):
    """What :class:`BarSubscriptions` asks of the fleet
    (``ib_nice_funcs.fleet.bars.SharedBars``)."""

    def read_series(self, key: Any) -> Any: ...
    def acquire(self, key: Any) -> bool: ...
    def renew(self, keys: Sequence[Any]) -> set[Any]: ...
    def publish(self, key: Any, frame: pd.DataFrame, covers_from: float) -> bool: ...
    def release(self, key: Any) -> None: ...
    def get_chunk(self, key: Any) -> pd.DataFrame | None: ...
    def put_chunk(self, key: Any, frame: pd.DataFrame) -> None: ...
    def close(self) -> None: ...


#: How long a process waits for the first copy of a series another process is opening.
_FIRST_COPY_WAIT_S = 10.0
_FIRST_COPY_POLL_S = 0.05
#: Updates of a kept series are written to the fleet at most this often.
_PUBLISH_EVERY_S = 0.2
#: How often the holder renews the leases of the series it keeps (a lease
#: lasts 10 s: a quiet market sends no update that would renew it).
_RENEW_EVERY_S = 3.0


class _NotNow(Exception):
    """Opening the subscription now would wait for IB's pacing: use plain requests."""


class _BarSub:
    __slots__ = ("key", "instrument", "contract", "timeframe", "what", "bars", "history",
                 "covers_from", "updated", "last_used", "ib", "alive", "version", "frame",
                 "frame_version")

    def __init__(self, key: Any, instrument: Instrument, contract: Contract, timeframe: Timeframe,
                 what: str, bars: BarDataList, ib: IB, covers_from: datetime, now: float) -> None:
        self.key = key
        self.instrument = instrument
        self.contract = contract
        self.timeframe = timeframe
        self.what = what
        self.bars = bars
        self.history: pd.DataFrame | None = None
        self.covers_from = covers_from
        self.updated = now
        self.last_used = now
        self.ib = ib
        self.alive = True
        self.version = 0
        self.frame: pd.DataFrame | None = None
        self.frame_version = -1


def _longer_durations(duration: str) -> list[str]:
    """``duration`` and a few longer spellings of it (to dodge IB's "identical request" rule)."""
    m = _DURATION_RE.match(duration)
    if not m:
        return [duration]
    n, unit = int(m.group(1)), m.group(2)
    cap = {"S": 86400, "D": 365, "W": 52, "M": 12}.get(unit, n + 3)
    out = [duration] + [f"{n + k} {unit}" for k in (1, 2, 3) if n + k <= cap]
    if unit == "S":
        out += ["2 D", "3 D"]
    return out


class BarSubscriptions:
    """The kept-up-to-date bar lists of one IB source (one client)."""

    def __init__(self, source: BarSource, max_subs: int = _MAX_SUBS) -> None:
        self.source = source
        self.gateway = source.gateway
        self.max_subs = max_subs
        self.idle_after = _IDLE_S
        self.clock = time.monotonic
        self._subs: dict[Any, _BarSub] = {}
        self._by_req: dict[int, _BarSub] = {}
        self._creating: dict[Any, SharedTask[_BarSub]] = {}
        self._ib: IB | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        #: Historical requests this manager sent (subscriptions and older parts).
        self.requests_sent = 0
        #: One subscription per series across the fleet's processes (None: alone).
        self.sharing: BarSharing | None = None
        self._publishing: set[Any] = set()
        self._published: dict[Any, int] = {}
        self._renewer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._subs)

    def suitable(self, timeframe: Timeframe, end: datetime) -> bool:
        """Whether a range ending at ``end`` is "up to now" (what a subscription serves).

        "Now" is the client's clock (``Settings.clock``), the one its ranges end at.
        """
        now = datetime.fromtimestamp(self.gateway.settings.clock(), timezone.utc)
        return end >= now - timedelta(seconds=max(60, timeframe.seconds))

    async def frame_async(self, instrument: Instrument, contract: Contract, timeframe: Timeframe,
                          start: datetime, end: datetime, what: str,
                          deadline: float | None = None) -> pd.DataFrame:
        """Bars from ``start`` to now (untrimmed), from a subscription opened if needed.

        ``deadline`` (``time.monotonic()``) is the caller's; the opening is
        shared with callers asking for the same series meanwhile, and is
        cancelled (sending nothing more) when every one of them gave up.
        """
        ib = await self.gateway.ib_async()
        self._bind(ib)
        # Bars held from a silent link or during IB's 1100 are not current: the
        # caller gets an error (and the next source) instead.
        self.gateway.require_current(what)
        key = (instrument.key, timeframe.name)
        now = self.clock()
        self._sweep_idle(now)
        sub = self._subs.get(key)
        if sub is not None and not self._usable(sub, ib, now):
            log.debug("reopening the %s bar subscription of %s", timeframe.name, instrument.symbol)
            self._drop(sub)
            sub = None
        if sub is None and self.sharing is not None and key not in self._creating:
            shared = await self._from_fleet(key, instrument, contract, timeframe, start, what)
            if shared is not None:
                return shared
        if sub is None:
            creating = self._creating.get(key)
            if creating is None:
                creating = SharedTask(
                    self._create(key, instrument, contract, timeframe, start, end, what, deadline))
                self._creating[key] = creating
                creating.task.add_done_callback(
                    functools.partial(self._done_creating, key, creating))
            # A caller that times out leaves the others waiting; the last one
            # to leave cancels the opening (and its older chunks are never sent).
            try:
                sub = await creating.wait()
            except (_NotNow, NoDataError, PacingViolationError, asyncio.TimeoutError) as exc:
                # A gateway that will not stream this series (or not now) still
                # answers plain requests: the caller gets bars either way.
                if not isinstance(exc, _NotNow):
                    log.debug("no %s bar subscription for %s (%s); plain requests instead",
                              timeframe.name, instrument.symbol, exc)
                frame, sent = await self.source.fetch_plain(instrument, contract, timeframe,
                                                            start, end, what, deadline)
                self.requests_sent += sent
                return frame
        if start < sub.covers_from:
            await self._extend(sub, start, what, deadline)
        sub.last_used = self.clock()
        self._publish(sub)
        return self._combined(sub)

    async def _from_fleet(self, key: Any, instrument: Instrument, contract: Contract,
                          timeframe: Timeframe, start: datetime, what: str
                          ) -> pd.DataFrame | None:
        """The series another process keeps, or None when this process is to keep it.

        Waits up to a few seconds for the first copy of a series another
        process is opening; older bars than the copy reaches are fetched here.
        """
        sharing = self.sharing
        assert sharing is not None
        give_up = time.monotonic() + _FIRST_COPY_WAIT_S
        while True:
            series = sharing.read_series(key)
            if series.held and series.frame is not None:
                break
            if not series.held and sharing.acquire(key):
                return None  # ours to keep
            if time.monotonic() >= give_up:
                return None  # the holder never wrote: keep one here too
            await asyncio.sleep(_FIRST_COPY_POLL_S)
        frame = series.frame
        # Less than a bar short: the caller's clock read a moment before the holder's.
        if series.covers_from is not None and \
                start.timestamp() < series.covers_from - timeframe.seconds:
            until = datetime.fromtimestamp(series.covers_from, timezone.utc)
            try:
                older, sent = await self.source.fetch_plain(instrument, contract, timeframe,
                                                            start, until, what)
            except NoDataError:
                older, sent = None, 0
            self.requests_sent += sent
            from ..frames import concat_ohlcv

            frame = concat_ohlcv([older, frame])
        return frame

    def _arm_renew(self) -> None:
        if self._renewer is None and self.sharing is not None:
            self._renewer = asyncio.get_running_loop().call_later(_RENEW_EVERY_S, self._renew)

    def _renew(self) -> None:
        """Renew the leases of the series this process keeps, while it keeps any."""
        self._renewer = None
        sharing = self.sharing
        if sharing is None or not self._subs:
            return
        for key in sharing.renew(list(self._subs)):
            log.debug("another process keeps the %s series now", key)
        self._arm_renew()

    def _publish_soon(self, sub: _BarSub) -> None:
        """Write an updated series to the fleet (coalesced: at most every 0.2 s)."""
        if self.sharing is None or sub.key in self._publishing:
            return
        self._publishing.add(sub.key)

        def publish() -> None:
            self._publishing.discard(sub.key)
            if sub.alive and self._subs.get(sub.key) is sub:
                self._publish(sub)

        asyncio.get_running_loop().call_later(_PUBLISH_EVERY_S, publish)

    def _publish(self, sub: _BarSub) -> None:
        """Write the series to the fleet if it changed since it was last written."""
        sharing = self.sharing
        if sharing is None or self._published.get(sub.key) == sub.version:
            return
        self._published[sub.key] = sub.version
        sharing.publish(sub.key, self._combined(sub), sub.covers_from.timestamp())

    def leave_fleet(self) -> None:
        """The client is closing: hand this process's series to the fleet at once."""
        sharing, self.sharing = self.sharing, None
        if sharing is None:
            return
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        for key in list(self._subs):
            sharing.release(key)
        sharing.close()

    # -- internals -------------------------------------------------------------

    def _done_creating(self, key: Any, creating: SharedTask[_BarSub],
                       done: asyncio.Future[Any]) -> None:
        """The opening task's done-callback: forget it (if it is still the one for ``key``)."""
        if self._creating.get(key) is creating:
            del self._creating[key]

    def _usable(self, sub: _BarSub, ib: IB, now: float) -> bool:
        stale = max(3.0 * sub.timeframe.seconds, _MIN_STALE_S)
        return sub.alive and sub.ib is ib and ib.isConnected() and now - sub.updated <= stale

    async def _create(self, key: Any, instrument: Instrument, contract: Contract,
                      timeframe: Timeframe, start: datetime, end: datetime, what: str,
                      deadline: float | None) -> _BarSub:
        while len(self._subs) >= self.max_subs:
            self._drop(min(self._subs.values(), key=lambda s: s.last_used))
        chunks = plan_chunks(timeframe, start, end)
        newest = chunks[0]
        what_to_show = instrument.what_to_show
        contract_key = (contract.conId, contract.exchange, what_to_show)
        pacing = self.source.pacing
        # IB treats the same keepUpToDate request within 15 s as "identical";
        # one unit more of history costs nothing and is trimmed away.
        options = _longer_durations(newest.duration)
        keys = [(contract_key, "", d, timeframe.ib_bar_size, "keepUpToDate") for d in options]
        waits = [pacing.delay_for(k, contract_key) for k in keys]
        pick = min(range(len(options)), key=lambda k: (waits[k] > 0, waits[k], k))
        if waits[pick] > _MAX_SUB_WAIT_S:
            raise _NotNow
        duration = options[pick]
        if deadline is not None:
            older = [(self.source.chunk_key(contract_key, c, timeframe), contract_key)
                     for c in chunks[1:]]
            self.source.check_plan_fits([(keys[pick], contract_key), *older], deadline, what)
        await self.source.wait_for_slot(pacing.book(keys[pick], contract_key))
        self.requests_sent += 1
        bars, ib = await asyncio.wait_for(
            self.gateway.request(
                lambda ib: self._subscribe(ib, contract, duration, timeframe, what_to_show), what),
            _CREATE_TIMEOUT_S,
        )
        sub = _BarSub(key, instrument, contract, timeframe, what_to_show, bars, ib,
                      newest.start, self.clock())
        bars.updateEvent += lambda _bars, _new, s=sub: self._on_update(s)
        self._subs[key] = sub
        self._by_req[bars.reqId] = sub
        self._arm_sweep()
        self._arm_renew()
        if len(chunks) > 1:
            await self._extend(sub, start, what, deadline)
        return sub

    @staticmethod
    async def _subscribe(ib: IB, contract: Contract, duration: str, timeframe: Timeframe,
                         what_to_show: str) -> tuple[BarDataList, IB]:
        """reqHistoricalData(keepUpToDate=True), cleaning up ib_async's tables on failure."""
        from ib_async import BarDataList

        req_id = ib.client.getReqId()
        bars = BarDataList()
        bars.reqId = req_id
        bars.contract = contract
        bars.endDateTime = ""
        bars.durationStr = duration
        bars.barSizeSetting = timeframe.ib_bar_size
        bars.whatToShow = what_to_show
        bars.useRTH = False
        bars.formatDate = 2
        bars.keepUpToDate = True
        bars.chartOptions = []
        future = ib.wrapper.startReq(req_id, contract, container=bars)
        ib.wrapper.startSubscription(req_id, bars, contract)
        ib.client.reqHistoricalData(req_id, contract, "", duration, timeframe.ib_bar_size,
                                    what_to_show, False, 2, True, [])
        try:
            await future
        except BaseException:
            ib.wrapper.endSubscription(bars)
            if ib.isConnected():
                ib.client.cancelHistoricalData(req_id)
            raise
        return bars, ib

    async def _extend(self, sub: _BarSub, start: datetime, what: str,
                      deadline: float | None = None) -> None:
        """Fetch the older bars ``[start, sub.covers_from)`` once, with plain requests."""
        until = sub.covers_from
        try:
            older, sent = await self.source.fetch_plain(sub.instrument, sub.contract, sub.timeframe,
                                                        start, until, what, deadline)
        except NoDataError:
            older, sent = None, 0
        self.requests_sent += sent
        from ..frames import concat_ohlcv

        if older is not None and len(older):
            sub.history = concat_ohlcv([older, sub.history])
            sub.version += 1
        sub.covers_from = min(sub.covers_from, start)

    def _combined(self, sub: _BarSub) -> pd.DataFrame:
        if sub.frame is not None and sub.frame_version == sub.version:
            return sub.frame
        from ..frames import bars_to_frame, concat_ohlcv

        version = sub.version
        frame = concat_ohlcv([sub.history, bars_to_frame(list(sub.bars))])
        sub.frame, sub.frame_version = frame, version
        return frame

    def _on_update(self, sub: _BarSub) -> None:
        sub.updated = self.clock()
        sub.version += 1
        self._publish_soon(sub)

    def _drop(self, sub: _BarSub) -> None:
        if self._subs.get(sub.key) is sub:
            del self._subs[sub.key]
            self._published.pop(sub.key, None)
            if self.sharing is not None:
                self.sharing.release(sub.key)
        if self._by_req.get(sub.bars.reqId) is sub:
            del self._by_req[sub.bars.reqId]
        if sub.alive and sub.ib.isConnected():
            try:
                sub.ib.cancelHistoricalData(sub.bars)
            except Exception:  # noqa: BLE001 - best effort
                log.debug("cancelHistoricalData failed", exc_info=True)
        sub.alive = False

    def drop_all(self) -> None:
        """Cancel every subscription, and those being opened (the client is closing)."""
        for creating in list(self._creating.values()):
            creating.cancel()
        for sub in list(self._subs.values()):
            self._drop(sub)

    def _sweep_idle(self, now: float) -> None:
        for sub in list(self._subs.values()):
            if now - sub.last_used > self.idle_after:
                log.debug("cancelling the %s bar subscription of %s: not read for %.0f s",
                          sub.timeframe.name, sub.instrument.symbol, now - sub.last_used)
                self._drop(sub)

    def _arm_sweep(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(_SWEEP_S, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        self._sweep_idle(self.clock())
        if self._subs:
            self._arm_sweep()

    def _bind(self, ib: IB) -> None:
        if self._ib is ib:
            return
        if self._ib is not None:
            self._ib.errorEvent -= self._on_error
        self._ib = ib
        ib.errorEvent += self._on_error

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        if code in CONNECTIVITY_RESTORED_DATA_LOST:
            for each in self._subs.values():
                each.alive = False  # reopened by the next call that needs it
            return
        sub = self._by_req.get(req_id)
        if sub is not None and classify_ib_error(code) != "info":
            log.debug("bar subscription of %s ended by IB error %s: %s", sub.instrument.symbol,
                      code, message)
            sub.alive = False
