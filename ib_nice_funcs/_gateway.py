"""IBGateway: one ib_async connection, owned by the loop thread.

It connects lazily, reconnects in the background with exponential backoff
after a drop, fails pending requests promptly when the connection goes, and
keeps the qualified-contract cache. A heartbeat (setting
``heartbeat_interval``) probes a connection that has gone quiet and replaces
one that stays silent (a half-open link); IB's 1100/1101/1102 notices are
tracked in :attr:`IBGateway.health`, which every holder of streamed or cached
data consults before serving it as current. Whatever happens to the socket,
callers only ever see this package's errors (never a raw ``ConnectionError``).
The data source (``sources/ib.py``) and the trading helpers both go through
it; nothing else touches ib_async.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from cachetools import TTLCache

from ._fallback import demote_loggers
from ._link import LinkHealth, heartbeat_step
from ._loop import LoopThread
from .config import Settings
from .errors import (
    CLIENT_ID_IN_USE,
    ClientIdInUseError,
    ConnectionFailedError,
    IBNiceFuncsError,
    MarketDataNotSubscribedError,
    NoDataError,
    OrderRejectedError,
    PacingViolationError,
    RequestTimeoutError,
    UnknownSymbolError,
    classify_ib_error,
)

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Contract

    from .fleet.contracts import SharedContracts
    from .symbols import Instrument

__all__ = ["IBGateway", "error_from_ib"]

log = logging.getLogger("ib_nice_funcs")
T = TypeVar("T")

_LINK_LOST = "ib_nice_funcs: gateway connection lost"
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 30.0
#: Qualified contracts change rarely (conId is permanent); a day is safe.
_CONTRACT_TTL_S = 24 * 3600.0
#: How long a process waits for contracts other processes are asking IB for
#: before it asks for them itself, and how often it looks.
_FLEET_CONTRACT_WAIT_S = 10.0
_FLEET_CONTRACT_POLL_S = 0.05


def error_from_ib(code: int, message: str, what: str) -> IBNiceFuncsError:
    """Turn an IB error code into the matching exception, with a remedy.

    Args:
        code: IB's numeric error code.
        message: IB's error text.
        what: what was asked, e.g. ``"price of AAPL"``.
    """
    text = f"{what}: IB error {code}: {message}"
    if code == 200:
        return UnknownSymbolError(
            f"{text}. Check the symbol spelling, or pass an ib_async Contract "
            "with exchange and currency"
        )
    if code == 162 and "pacing" in message.lower():
        return PacingViolationError(
            f"{text}. Too many historical requests; wait a minute or ask for fewer ranges"
        )
    if code in (162, 165, 366):
        return NoDataError(f"{text}. IB has no data for that range / bar size / data type")
    if code in (354, 10089, 10090, 10167, 10168, 10186, 10197):
        return MarketDataNotSubscribedError(
            f"{text}. Subscribe to the exchange's market data in Client Portal, or "
            "configure(market_data_type=3) for delayed data"
        )
    if classify_ib_error(code) == "reject":
        return OrderRejectedError(text, code)
    if code in (502, 504, 1100, 2110, 326):
        return ConnectionFailedError(f"{text}. Check TWS / IB Gateway and its API settings")
    return IBNiceFuncsError(text)


class IBGateway:
    """A lazily connected ib_async ``IB`` living on the loop thread.

    Threading contract: the ``*_async`` methods run only on the loop thread;
    :meth:`call` is the thread-safe way in from any other thread and blocks
    for at most its timeout.
    """

    def __init__(self, settings: Settings, loop: LoopThread) -> None:
        self.settings = settings
        self.loop = loop
        self._ib: IB | None = None
        self._connect_lock: asyncio.Lock | None = None
        self._lost: asyncio.Future[None] | None = None
        self._closed = False
        self._failures = 0
        self._retry_at = 0.0
        self._last_error: BaseException | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._contracts: TTLCache[Any, Contract] = TTLCache(maxsize=4096, ttl=_CONTRACT_TTL_S)
        #: Contracts shared with the gateway's other processes (``redis_url``).
        self.fleet_contracts: SharedContracts | None = None
        if settings.redis_url:
            from .fleet.contracts import SharedContracts
            from .fleet.state import owner_id

            self.fleet_contracts = SharedContracts(settings.redis_url, settings.host,
                                                   settings.port, owner_id())
        self.account: str | None = settings.account
        #: The client id of the live session: ``client_id`` unless that was in use.
        self.client_id: int = settings.client_id
        self.managed_accounts: list[str] = []
        #: Callbacks run on the loop after every successful (re)connect. They run
        #: while the connect lock is held: a hook must use the ``ib`` it is
        #: given, never await :meth:`ib_async` (that would deadlock).
        self.on_connected: list[Callable[[IB], Awaitable[None]]] = []
        #: Liveness of the connection: what decides whether held data is current.
        self.health = LinkHealth(settings.heartbeat_interval)
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._drop_reason: str | None = None

    # -- thread-safe entry -------------------------------------------------

    def call(self, factory: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
        """Run ``factory()`` on the loop thread; block up to ``timeout`` seconds.

        Raises:
            RequestTimeoutError: no answer in time.
            ConnectionFailedError: the gateway is unreachable or dropped.
            IBNiceFuncsError: any other failure, mapped from IB's code.
        """
        try:
            return self.loop.run(factory, timeout, what)
        except IBNiceFuncsError:
            raise
        except OSError as exc:  # ib_async's "Not connected" / "Socket disconnect"
            raise self._link_error(what, exc) from None

    def _link_error(self, what: str, exc: BaseException | None = None) -> ConnectionFailedError:
        cause = f"the connection to IB gateway {self._where()} dropped"
        if self._drop_reason:
            cause += f" ({self._drop_reason})"
        detail = f": {exc}" if exc is not None and str(exc) else ""
        return ConnectionFailedError(
            f"{what}: {cause}{detail}; it is being re-established in the background, call again"
        )

    def require_current(self, what: str) -> None:
        """Raise unless data held from the connection may be served as current.

        Raises:
            ConnectionFailedError: down, silent, or IB's 1100 in force.
        """
        if not self.health.current:
            raise ConnectionFailedError(f"{what}: not served: {self.health.why_not_current()}")

    async def call_async(self, factory: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
        """:meth:`call` for a caller on another event loop: awaits, no thread waits.

        Raises:
            The same as :meth:`call`.
        """
        return await self.loop.run_async(factory, timeout, what)

    # -- connection --------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ib is not None and self._ib.isConnected()

    async def ib_async(self) -> IB:
        """The connected ``IB``, connecting first if needed (loop thread only).

        Raises:
            ConnectionFailedError: refused, handshake timed out, or in backoff
                after a recent failure (fails fast so callers can fall back).
        """
        ib = self._ib
        if ib is not None and ib.isConnected():
            return ib
        if self._closed:
            raise ConnectionFailedError("this Client is closed; create a new one")
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            ib = self._ib
            if ib is not None and ib.isConnected():
                return ib
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise ConnectionFailedError(
                    f"IB gateway {self._where()} is unavailable ({self._last_error}); "
                    f"next attempt in {wait:.1f} s"
                ) from self._last_error
            try:
                return await self._connect()
            except ConnectionFailedError as exc:
                self._failures += 1
                backoff = min(_BACKOFF_MAX_S, _BACKOFF_FIRST_S * 2 ** (self._failures - 1))
                self._retry_at = time.monotonic() + backoff
                self._last_error = exc
                raise

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    async def _connect_as(self, client_id: int) -> IB:
        """One connection attempt as ``client_id`` (loop thread).

        IB answers a taken id with error 326 and closes; ib_async would then
        wait for its whole handshake timeout, so the 326 is raced against it.

        Raises:
            ClientIdInUseError: the id is taken (try another).
            ConnectionFailedError: refused, timed out or closed for another reason.
        """
        from ib_async import IB

        # This package reports each failure once, with a remedy; ib_async's own
        # records of the same event stay visible at DEBUG.
        demote_loggers(("ib_async.client", "ib_async.wrapper", "ib_async.ib"))
        ib = IB()
        # Failed requests raise RequestError (with IB's code) instead of
        # quietly returning an empty list.
        ib.RaiseRequestErrors = True
        s = self.settings
        in_use: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_error(_req_id: int, code: int, message: str, _contract: Any) -> None:
            if code in CLIENT_ID_IN_USE and not in_use.done():
                in_use.set_result(message)

        ib.errorEvent += on_error
        handshake = asyncio.ensure_future(ib.connectAsync(
            s.host, s.port, clientId=client_id, timeout=s.connect_timeout,
            account=s.account or ""))
        try:
            try:
                await asyncio.wait({handshake, in_use}, return_when=asyncio.FIRST_COMPLETED)
                if not in_use.done():
                    await handshake
            except Exception:
                if not in_use.done():
                    raise  # mapped below; a 326 is reported as such instead
            if in_use.done():
                handshake.cancel()
                await asyncio.gather(handshake, return_exceptions=True)
                ib.client.disconnect()  # IB.disconnect() refuses a half-open session
                raise ClientIdInUseError(
                    f"IB gateway at {self._where()}: client id {client_id} is in use by "
                    f"another API program (IB error 326: {in_use.result()})")
        except ClientIdInUseError:
            raise
        except ConnectionRefusedError as exc:
            ib.disconnect()
            raise ConnectionFailedError(
                f"could not connect to IB gateway at {self._where()}: connection refused. "
                "Start TWS or IB Gateway, tick 'Enable ActiveX and Socket Clients', and "
                "check the port (paper: Gateway 4002, TWS 7497; set IB_PORT)"
            ) from exc
        except (asyncio.TimeoutError, TimeoutError) as exc:
            ib.disconnect()
            raise ConnectionFailedError(
                f"IB gateway at {self._where()} accepted the connection but did not finish "
                f"the API handshake within {s.connect_timeout:g} s. Check that the API is "
                f"enabled, the client id {client_id} is free (IB_CLIENT_ID) and the gateway is "
                "logged in"
            ) from exc
        except OSError as exc:
            ib.disconnect()
            raise ConnectionFailedError(
                f"could not connect to IB gateway at {self._where()}: {exc}"
            ) from exc
        except Exception as exc:  # ib_async raises plain ConnectionError on clientId clash
            ib.disconnect()
            raise ConnectionFailedError(
                f"IB gateway at {self._where()} closed the API session: {exc}. "
                "Another program may use the same client id: set IB_CLIENT_ID"
            ) from exc
        finally:
            ib.errorEvent -= on_error
            if not handshake.done():
                handshake.cancel()
        return ib

    async def _connect(self) -> IB:
        from .fleet.client_ids import connect_first_free

        s = self.settings
        ib, self.client_id = await connect_first_free(
            self._connect_as, s.client_id, s.client_ids, self._where())
        if self._closed:
            # close() ran while this connect was in flight: do not leave a live
            # session behind (it would also hold the client id).
            ib.disconnect()
            raise ConnectionFailedError("this Client is closed; create a new one")
        if not ib.isConnected():
            raise ConnectionFailedError(f"IB gateway at {self._where()} dropped the connection")
        self.managed_accounts = list(ib.wrapper.accounts)
        if s.account is None and len(self.managed_accounts) == 1:
            self.account = self.managed_accounts[0]
        if s.market_data_type != 1:
            ib.reqMarketDataType(s.market_data_type)
        self._lost = asyncio.get_running_loop().create_future()
        ib.disconnectedEvent += self._on_disconnected
        ib.errorEvent += self._on_ib_error
        ib.client.conn.hasData += self.health.heard
        self._ib = ib
        self._drop_reason = None
        self.health.up()
        self._heartbeat_task = asyncio.get_running_loop().create_task(self._heartbeat(ib))
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = None
        log.debug("connected to IB gateway %s as client %s", self._where(), self.client_id)
        for hook in list(self.on_connected):
            try:
                await hook(ib)
            except Exception:  # noqa: BLE001 - a hook must not break the connection
                log.warning("post-connect hook %r failed", hook, exc_info=True)
        return ib

    def _on_disconnected(self) -> None:
        self.health.down()
        lost = self._lost
        if lost is not None and not lost.done():
            lost.set_exception(self._link_error("the request"))
            lost.exception()  # mark retrieved: nobody may be waiting right now
        if self._closed:
            return
        log.warning(
            "IB gateway %s disconnected%s; reconnecting in the background", self._where(),
            f" ({self._drop_reason})" if self._drop_reason else "",
        )
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _heartbeat(self, ib: IB) -> None:
        """Probe a quiet connection; replace one that stays silent (loop thread).

        The probe is a bare ``reqCurrentTime`` with no future of ours: any
        message at all counts as an answer, and a concurrent
        ``server_time()`` keeps its own future.
        """
        interval = self.health.interval
        probe_at: float | None = None
        while ib is self._ib and ib.isConnected() and not self._closed:
            await asyncio.sleep(interval / 2)
            if ib is not self._ib or not ib.isConnected() or self._closed:
                return
            # ib_async queues what its throttle holds back (``_msgQ``; no public view).
            queued = bool(getattr(ib.client, "_msgQ", None))
            action, probe_at = heartbeat_step(self.health.clock(), self.health.last_heard,
                                              probe_at, interval, queued)
            try:
                if action == "probe":
                    ib.client.reqCurrentTime()
                elif action == "dead":
                    self._replace_silent(ib)
                    return
            except ConnectionError:  # went away between the check and the send
                return

    def _replace_silent(self, ib: IB) -> None:
        """Drop a connection that stopped answering, so the reconnect loop replaces it."""
        quiet = self.health.quiet_for
        self._drop_reason = (f"the gateway sent nothing for {quiet:.1f} s and did not answer "
                             "a heartbeat (a hung or half-open connection)")
        log.warning("IB gateway %s: %s; replacing the connection", self._where(),
                    self._drop_reason)
        transport = ib.client.conn.transport
        ib.disconnect()  # fires disconnectedEvent: pending requests fail, reconnect starts
        if transport is not None:
            transport.abort()  # a silent peer may never take the rest of our bytes

    def _on_ib_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        notice = self.health.notice(code)
        if notice == "lost":
            log.warning("IB gateway %s reports IB error %s (%s): live prices, bars and account "
                        "values are not served as current until IB restores the link",
                        self._where(), code, message)
        elif notice is not None:
            log.info("IB gateway %s: IB error %s (%s): %s", self._where(), code, message,
                     "resubscribing the live data" if notice == "restored_data_lost"
                     else "the live data was kept")
            ib = self._ib
            if notice == "restored_data_lost" and ib is not None and ib.isConnected():
                # Account values are a subscription too: ask for them again.
                ib.client.reqAccountUpdates(True, self.account or "")

    async def _reconnect(self) -> None:
        delay = _BACKOFF_FIRST_S
        while not self._closed and not self.connected:
            await asyncio.sleep(max(delay, self._retry_at - time.monotonic()))
            try:
                await self.ib_async()
            except ConnectionFailedError:
                delay = min(_BACKOFF_MAX_S, delay * 2)
            else:
                log.warning("IB gateway %s reconnected", self._where())

    async def request(self, factory: Callable[[IB], Awaitable[T]], what: str) -> T:
        """Run ``factory(ib)`` on a connected IB; fail at once if the link drops.

        Loop thread only. ib_async's ``RequestError`` is mapped to this
        package's errors with :func:`error_from_ib`.
        """
        from ib_async.wrapper import RequestError

        ib = await self.ib_async()
        lost = self._lost
        current = asyncio.current_task()
        watching = lost is not None and current is not None and not lost.done()
        armed = [watching]
        if watching and lost is not None and current is not None:  # (watching says so)
            # Cancel the awaiting task itself when the link drops: cheaper than a
            # second task raced with asyncio.wait (the hop is benchmarked
            # against a bare await).
            def on_lost(_: asyncio.Future[None]) -> None:
                # The callback may already be scheduled when the request ends
                # (removing it then is too late): only cancel while armed.
                if armed[0] and not current.done():
                    current.cancel(msg=_LINK_LOST)

            lost.add_done_callback(on_lost)
        try:
            return await factory(ib)
        except RequestError as exc:
            raise error_from_ib(exc.code, exc.message, what) from None
        except IBNiceFuncsError:
            raise
        except ConnectionError as exc:  # ib_async: "Not connected", "Socket disconnect"
            raise self._link_error(what, exc) from None
        except asyncio.CancelledError as exc:
            if watching and exc.args == (_LINK_LOST,):
                uncancel = getattr(current, "uncancel", None)  # 3.11+: keep counts right
                if uncancel is not None:
                    uncancel()
                if self._closed:
                    raise ConnectionFailedError(
                        f"{what}: this Client was closed during the request; create a new one"
                    ) from None
                raise self._link_error(what) from None
            raise
        except RequestTimeoutError:
            raise  # ours already says what timed out
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise RequestTimeoutError(f"{what}: IB gave no answer in time") from exc
        finally:
            armed[0] = False
            if watching and lost is not None:
                lost.remove_done_callback(on_lost)

    # -- contracts ---------------------------------------------------------

    async def qualify(self, instruments: Sequence[Instrument], what: str) -> list[Contract | None]:
        """Qualified contracts for ``instruments`` (None where IB knows none); cached.

        With ``redis_url`` the processes of the gateway share the answers
        (:mod:`ib_nice_funcs.fleet.contracts`): each contract is asked of IB
        by one of them. Loop thread only.
        """
        result: list[Contract | None] = [self._contracts.get(i.key) for i in instruments]
        missing = [k for k, c in enumerate(result) if c is None]
        if not missing:
            return result
        todo = {instruments[k].key: instruments[k] for k in missing}
        found = await (self._qualify_with_fleet(todo, what) if self.fleet_contracts is not None
                       else self._qualify_at_ib(list(todo.values()), what))
        for k in missing:
            contract = found.get(instruments[k].key)
            result[k] = contract
            if contract is not None:
                self._contracts[instruments[k].key] = contract
        return result

    async def _qualify_with_fleet(self, todo: dict[Any, Instrument], what: str
                                  ) -> dict[Any, Contract | None]:
        """Contracts from the fleet's records; those nobody has are claimed and asked of IB."""
        from .fleet.contracts import UNKNOWN

        fleet = self.fleet_contracts
        assert fleet is not None
        found: dict[Any, Contract | None] = {}
        pending = list(todo)
        give_up = time.monotonic() + _FLEET_CONTRACT_WAIT_S
        while pending:
            for key, got in fleet.read(pending).items():
                found[key] = None if got is UNKNOWN else got
            pending = [k for k in pending if k not in found]
            if not pending:
                break
            # A few at a time, as many as this connection sends in a second or
            # two: the other processes claim the rest, so every connection's
            # queue stays short. Past the wait, ask IB for everything left.
            if time.monotonic() >= give_up:
                mine = pending
            else:
                mine, written = fleet.claim(pending, max(2, 2 * self._message_rate()))
                for key, got in written.items():
                    found[key] = None if got is UNKNOWN else got
                pending = [k for k in pending if k not in found]
                if not pending:
                    break
            if not mine:
                await asyncio.sleep(_FLEET_CONTRACT_POLL_S)
                continue
            try:
                asked = await self._qualify_at_ib([todo[k] for k in mine], what)
            except BaseException:
                fleet.unclaim(mine)
                raise
            fleet.write(asked)
            found.update(asked)
            pending = [k for k in pending if k not in asked]
        return found

    def _message_rate(self) -> int:
        """Messages per second this connection may send (its share of IB's rate)."""
        ib = self._ib
        rate = getattr(getattr(ib, "client", None), "MaxRequests", 0) if ib is not None else 0
        return int(rate) if rate else 45

    async def _qualify_at_ib(self, instruments: Sequence[Instrument], what: str
                             ) -> dict[Any, Contract | None]:
        """Ask IB for the contracts of ``instruments``; None where it knows none or many."""
        contracts = [i.to_ib_contract() for i in instruments]

        async def one(ib: IB, contract: Contract) -> Contract | None:
            try:
                details = await ib.reqContractDetailsAsync(contract)
            except Exception as exc:  # noqa: BLE001 - error 200 is "no such symbol"
                code = getattr(exc, "code", None)
                if code == 200:
                    return None
                raise
            if not details:
                return None
            if len(details) > 1 and contract.secType:
                # ib_async types ContractDetails.contract Optional (a dataclass default);
                # its decoder fills it in every contractDetails answer.
                same = [d for d in details
                        if d.contract.secType == contract.secType]  # type: ignore[union-attr]
                details = same or details
            if len(details) > 1:
                log.warning(
                    "%s is ambiguous at IB (%d matches); pass an ib_async Contract with "
                    "primaryExchange or conId", contract.symbol, len(details)
                )
                return None
            found = details[0].contract
            if contract.exchange == "SMART":
                found.exchange = "SMART"  # type: ignore[union-attr]  # filled, as above
            return found

        async def all_of(ib: IB) -> list[Contract | None]:
            return await asyncio.gather(*(one(ib, c) for c in contracts))

        qualified = await self.request(all_of, what)
        return {i.key: c for i, c in zip(instruments, qualified, strict=True)}

    def clear_contracts(self) -> None:
        """Forget qualified contracts; runs on the loop thread, ahead of any later call."""
        self.loop.loop.call_soon_threadsafe(self._contracts.clear)

    # -- shutdown ----------------------------------------------------------

    async def close_async(self) -> None:
        """Disconnect for good (loop thread only); safe to call twice."""
        self._closed = True
        self.health.down()  # nothing held from this connection is current any more
        for task in (self._reconnect_task, self._heartbeat_task):
            if task is not None:
                task.cancel()
        lost = self._lost
        if lost is not None and not lost.done():
            # Fail the requests in flight now; the disconnect below does not.
            lost.set_exception(ConnectionFailedError("this Client is closed; create a new one"))
            lost.exception()
        ib, self._ib = self._ib, None
        if ib is not None:
            ib.disconnectedEvent -= self._on_disconnected
            ib.disconnect()
        if self.fleet_contracts is not None:
            self.fleet_contracts.close()
