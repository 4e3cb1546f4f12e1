"""The Client Portal session: status, re-auth, pre-flights and the tickle keep-alive.

A CP Gateway session has three layers, each of which can lapse:

1. the gateway login (a person logs in in a browser; without it every call
   answers 401, and only a person can fix that);
2. the brokerage session (``/iserver/auth/status``; HTTP 400 "no bridge"
   means it is down and ``POST /iserver/auth/ssodh/init`` reopens it);
3. the pre-flights: ``GET /iserver/accounts`` before snapshots and orders,
   ``GET /portfolio/accounts`` before the other portfolio calls.

:class:`PortalSession` checks them lazily before the first call, re-does
them after a 401, a "no bridge" or a "query /accounts first" answer, and
retries the failed call once. :class:`KeepAlive` tickles the gateway about
every 60 s while the client is in use and stops by itself when idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import (
    ConfigurationError,
    ConnectionFailedError,
    IBNiceFuncsError,
    RequestTimeoutError,
    SourceUnavailableError,
)
from .http import PortalHTTP, PortalHTTPError
from .mapping import accounts_info, auth_healthy, mask_account

__all__ = ["KeepAlive", "PortalSession"]

log = logging.getLogger("ib_nice_funcs.portal")

#: How long a re-opened brokerage session may take to report healthy.
_REAUTH_POLLS = (0.1, 0.25, 0.5, 1.0)


class KeepAlive:
    """Calls ``tickle()`` every ``interval`` seconds while the client is in use.

    The daemon thread starts at the first :meth:`touch` and ends after
    ``idle_after`` seconds without one, or at :meth:`close`; a later touch
    starts it again. ``tickle`` failures are logged at DEBUG and never stop
    the thread.

    Args:
        tickle: One keep-alive call (it must bound its own time).
        interval: Seconds between tickles (IB: about 60).
        idle_after: Seconds without use after which the thread ends.
    """

    def __init__(self, tickle: Callable[[], None], interval: float = 60.0,
                 idle_after: float = 300.0) -> None:
        self._tickle = tickle
        self.interval = float(interval)
        self.idle_after = float(idle_after)
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_use = time.monotonic()
        self.ticks = 0

    def touch(self) -> None:
        """Mark the client as in use; starts the thread if it is not running."""
        with self._lock:
            self._last_use = time.monotonic()
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="ib_nice_funcs-portal-tickle",
                                            daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the keep-alive thread is alive."""
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def wait_ticks(self, count: int, timeout: float) -> bool:
        """Block until ``count`` tickles were attempted or ``timeout`` seconds; True if reached."""
        with self._lock:
            return self._lock.wait_for(lambda: self.ticks >= count, timeout)

    def wait_stopped(self, timeout: float) -> bool:
        """Block until the thread has ended (idle or closed) or ``timeout``; True if ended."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread; waits up to ``timeout`` seconds for it to end."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                idle = time.monotonic() - self._last_use
            if idle > self.idle_after:
                log.debug("portal keep-alive stops: idle for %.0f s", idle)
                break
            try:
                self._tickle()
            except Exception as exc:  # noqa: BLE001 - a failed tickle must not end the loop
                log.debug("portal tickle failed: %s", exc)
            with self._lock:
                self.ticks += 1
                self._lock.notify_all()
        with self._lock:
            if self._thread is threading.current_thread():
                self._thread = None


class PortalSession:
    """Session state of one client of a CP Gateway, and calls that recover from lapses.

    Thread-safe: concurrent callers share one status check / re-auth / pre-flight.

    Args:
        http: The HTTP layer.
        account: The account to use (None: the gateway's selected account).
        tickle_interval: Seconds between keep-alive tickles.
        idle_after: Seconds without calls after which tickling stops.
    """

    def __init__(self, http: PortalHTTP, account: str | None = None, *,
                 tickle_interval: float = 60.0, idle_after: float = 300.0) -> None:
        self.http = http
        self.wanted_account = account
        self._lock = threading.RLock()
        self._authed = False
        self._accounts_done = False
        self._portfolio_done = False
        self.account: str | None = None
        self.accounts: list[str] = []
        self.paper: bool | None = None
        if account:
            http.add_redaction(account)
        self.keepalive = KeepAlive(self.tickle, tickle_interval, idle_after)

    # -- state --------------------------------------------------------------------------

    def invalidate(self, *, auth: bool = True) -> None:
        """Forget the pre-flights (and with ``auth`` the status check): redone at next use."""
        with self._lock:
            if auth:
                self._authed = False
            self._accounts_done = False
            self._portfolio_done = False

    def close(self) -> None:
        """Stop the keep-alive."""
        self.keepalive.close()

    # -- session calls -------------------------------------------------------------------

    def status(self, deadline: float) -> dict[str, Any]:
        """``POST /iserver/auth/status``; blocks until ``deadline``.

        Raises:
            ConnectionFailedError: not logged in (401) or unreachable.
            RequestTimeoutError, SourceUnavailableError: see :meth:`PortalHTTP.request`.
        """
        what = "Client Portal session status"
        try:
            body = self.http.request("POST", "/iserver/auth/status", deadline=deadline, what=what)
        except PortalHTTPError as exc:
            if exc.status not in (404, 405):
                raise self.translate(exc) from None
            # Some gateways (and fakes) serve the status on GET only.
            try:
                body = self.http.request("GET", "/iserver/auth/status", deadline=deadline,
                                         what=what)
            except PortalHTTPError as again:
                raise self.translate(again) from None
        return body if isinstance(body, dict) else {}

    def tickle(self) -> None:
        """``POST /tickle`` (5 s at most); marks the session for a re-check if it lapsed."""
        try:
            body = self.http.request("POST", "/tickle", deadline=time.monotonic() + 5.0,
                                     what="Client Portal keep-alive")
        except PortalHTTPError as exc:
            if exc.status == 401:
                self.invalidate()
            raise
        # The answer carries the session id: read it, never log it.
        status = body.get("iserver", {}).get("authStatus") if isinstance(body, dict) else None
        if isinstance(status, dict) and not auth_healthy(status):
            self.invalidate()

    def reauthenticate(self, deadline: float) -> None:
        """Reopen the brokerage session (``ssodh/init``) and wait until status is healthy.

        Raises:
            ConnectionFailedError: the session stays down (names the gateway's message).
            RequestTimeoutError, SourceUnavailableError: see :meth:`PortalHTTP.request`.
        """
        log.info("Client Portal brokerage session is down; reopening it (ssodh/init)")
        try:
            self.http.request("POST", "/iserver/auth/ssodh/init",
                              json={"publish": True, "compete": True}, deadline=deadline,
                              what="Client Portal re-authentication")
        except PortalHTTPError as exc:
            raise self.translate(exc) from None
        status: dict[str, Any] = {}
        for pause in (0.0, *_REAUTH_POLLS):
            if pause and (time.monotonic() + pause >= deadline or self.http.closed):
                break
            if pause:
                time.sleep(pause)  # the gateway needs a moment to bring the bridge up
            status = self.status(deadline)
            if auth_healthy(status):
                self.invalidate(auth=False)
                return
        raise ConnectionFailedError(
            "the Client Portal brokerage session did not come back after ssodh/init "
            f"({_status_text(status)}); log in again at the gateway's page, or close a "
            "competing TWS / mobile session")

    def ensure_ready(self, deadline: float, *, portfolio: bool = False) -> None:
        """Do what is still missing: status check (re-auth if needed), pre-flights.

        Blocks until done or ``deadline``.

        Raises:
            ConnectionFailedError: not logged in, or the session cannot be reopened.
            ConfigurationError: the configured account is not on this login.
            RequestTimeoutError, SourceUnavailableError: see :meth:`PortalHTTP.request`.
        """
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise RequestTimeoutError("Client Portal session check: another call held it until "
                                      "the timeout; retry or raise the timeout")
        try:
            if not self._authed:
                if not auth_healthy(self.status(deadline)):
                    self.reauthenticate(deadline)
                self._authed = True
            if not self._accounts_done:
                self._preflight_accounts(deadline)
            if portfolio and not self._portfolio_done:
                try:
                    self.http.request("GET", "/portfolio/accounts", deadline=deadline,
                                      what="Client Portal portfolio accounts")
                except PortalHTTPError as exc:
                    raise self.translate(exc) from None
                self._portfolio_done = True
        finally:
            self._lock.release()

    def _preflight_accounts(self, deadline: float) -> None:
        try:
            body = self.http.request("GET", "/iserver/accounts", deadline=deadline,
                                     what="Client Portal accounts")
        except PortalHTTPError as exc:
            raise self.translate(exc) from None
        accounts, selected, paper = accounts_info(body)
        self.http.add_redaction(*accounts)
        account: str | None
        if self.wanted_account:
            if accounts and self.wanted_account not in accounts:
                raise ConfigurationError(
                    f"account {mask_account(self.wanted_account)} (IB_ACCOUNT) is not among the "
                    f"{len(accounts)} account(s) of this Client Portal login; fix IB_ACCOUNT")
            account = self.wanted_account
        else:
            account = selected or (accounts[0] if accounts else None)
        if not account:
            raise SourceUnavailableError("the Client Portal lists no account for this login")
        self.accounts, self.account = accounts, account
        # isPaper is authoritative; without it, IB's paper accounts start with D.
        self.paper = paper if paper is not None else account.upper().startswith("D")
        self._accounts_done = True
        log.debug("Client Portal pre-flight done (account %s, paper=%s)",
                  mask_account(account), self.paper)

    def call(
        self,
        method: str,
        path: str | Callable[[str], str],
        *,
        deadline: float,
        params: dict[str, Any] | None = None,
        json: Any = None,
        what: str,
        portfolio: bool = False,
        translate: bool = True,
        recover: bool = True,
    ) -> Any:
        """One API call after :meth:`ensure_ready`, retried once after a session lapse.

        Blocks until ``deadline``. A 401, a 400 "no bridge" or a "query
        /accounts first" answer resets the session state, re-does the checks
        and sends the call once more (``recover=False`` for calls that must
        never be sent twice).

        Args:
            path: The path, or a function of the account id giving it.
            translate: Turn HTTP errors into this package's exceptions
                (False: raise :class:`PortalHTTPError` for the caller to read).

        Raises:
            ConnectionFailedError, RequestTimeoutError, SourceUnavailableError,
            ConfigurationError; PortalHTTPError with ``translate=False``.
        """
        self.keepalive.touch()
        for attempt in (0, 1):
            self.ensure_ready(deadline, portfolio=portfolio)
            real = path(self.account or "") if callable(path) else path
            try:
                return self.http.request(method, real, deadline=deadline, params=params,
                                         json=json, what=what)
            except PortalHTTPError as exc:
                lapse = self._lapse(exc)
                if lapse and attempt == 0 and recover:
                    log.info("Client Portal %s: %s; checking the session and retrying once",
                             what, lapse)
                    self.invalidate(auth=lapse != "pre-flight missing")
                    continue
                if lapse:
                    self.invalidate(auth=lapse != "pre-flight missing")
                if translate:
                    raise self.translate(exc) from None
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _lapse(exc: PortalHTTPError) -> str | None:
        text = exc.error_text
        if exc.status == 401:
            return "not authenticated (401)"
        if exc.status == 400 and "no bridge" in text:
            return "no bridge"
        if exc.status == 400 and ("accounts first" in text or "/accounts" in text):
            return "pre-flight missing"
        return None

    def translate(self, exc: PortalHTTPError) -> IBNiceFuncsError:
        """This package's exception for an HTTP error of the gateway."""
        what, text = exc.what, exc.text
        if exc.status == 401:
            return ConnectionFailedError(
                f"{what}: the Client Portal gateway at {self.http.base_url} is not logged in "
                "(HTTP 401); open the gateway's page in a browser and log in")
        if exc.status == 400 and "no bridge" in exc.error_text:
            return ConnectionFailedError(
                f"{what}: the Client Portal brokerage session is down (no bridge) and could not "
                "be reopened; log in again, or close a competing session")
        if exc.status == 404:
            return SourceUnavailableError(
                f"{what}: this Client Portal gateway does not serve that endpoint (HTTP 404: "
                f"{text})")
        if exc.status >= 500:
            return SourceUnavailableError(f"{what}: the Client Portal failed (HTTP {exc.status}: "
                                          f"{text}); retry later")
        return SourceUnavailableError(f"{what}: the Client Portal refused it (HTTP {exc.status}: "
                                      f"{text})")


def _status_text(status: dict[str, Any]) -> str:
    parts = [f"{k}={status.get(k)!r}" for k in ("authenticated", "connected", "competing")
             if k in status]
    if status.get("message"):
        parts.append(f"message={status['message']!r}")
    return ", ".join(parts) or "no status"
