"""The Client Portal HTTP layer: one ``requests`` Session, TLS, retries, throttling, 429s.

Every request passes, in order: the penalty box (fail fast during a 429
back-off), the per-endpoint concurrency cap, the token buckets (the caller
waits for its slot, bounded by its deadline), then one HTTPS request with an
explicit timeout. Answers are decoded JSON; HTTP errors become
:class:`PortalHTTPError` (the client layer decides what a 401 or a 400 "no
bridge" means) and transport failures become this package's exceptions.

Rules that keep it safe:

* ``session.trust_env = False``: ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``
  (and proxy variables) must not override the configured verification.
* urllib3 ``Retry`` is mounted for GETs only and never for the order paths
  (``/iserver/account/...``, ``/iserver/reply/...``): a POSTed order is sent
  at most once.
* A 429 is never retried: it starts the penalty box, shared by every client
  of the same gateway in this process (IB penalises the IP, not a session).
* Logs carry the method, the path with account ids masked, the status and
  the time; never headers, cookies, bodies or query strings. Account ids are
  masked in urllib3's DEBUG lines as well (a filter on its logger).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..errors import ConnectionFailedError, RequestTimeoutError, SourceUnavailableError
from .mapping import mask_account
from .throttle import PenaltyBox, Throttle, endpoint_key

__all__ = ["Guards", "PortalHTTP", "PortalHTTPError", "gateway_guards", "set_gateway_guards"]

log = logging.getLogger("ib_nice_funcs.portal")

#: Paths that must never be retried by urllib3 (orders, replies, cancels).
_NO_RETRY_PREFIXES = ("/iserver/account/", "/iserver/reply/")
_USER_AGENT = "ib_nice_funcs-portal"


class PortalHTTPError(Exception):
    """The gateway answered with an HTTP error status (not 429: that is a penalty).

    Attributes:
        status: The HTTP status code.
        payload: The decoded JSON body, or the text, or None.
        what: What was asked (for messages).
    """

    def __init__(self, status: int, payload: Any, what: str, text: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {text}")
        self.status = status
        self.payload = payload
        self.what = what
        self.text = text

    @property
    def error_text(self) -> str:
        """The gateway's ``error`` text (lower-case), or the raw text."""
        if isinstance(self.payload, dict):
            return str(self.payload.get("error") or self.payload.get("message") or "").lower()
        return self.text.lower()


@dataclass
class Guards:
    """Rate-limit state shared by every portal client of one gateway in this process.

    Attributes:
        throttle: The token buckets and concurrency caps.
        penalty: The 429 penalty box.
        order_lock: Serialises order submissions (concurrent ones race on reply ids).
    """

    throttle: Throttle
    penalty: PenaltyBox
    order_lock: threading.Lock = field(default_factory=threading.Lock)


_guards: dict[str, Guards] = {}
_guards_lock = threading.Lock()


def gateway_guards(base_url: str, rate: float = 10.0) -> Guards:
    """The shared :class:`Guards` of a gateway (keyed by scheme, host and port).

    IB counts requests and penalises per client IP, so every client in the
    process that talks to the same gateway must share one budget. The first
    caller's ``rate`` wins.
    """
    parts = urlsplit(base_url)
    key = f"{parts.scheme}://{parts.netloc}".lower()
    with _guards_lock:
        found = _guards.get(key)
        if found is None:
            found = _guards[key] = Guards(Throttle(rate), PenaltyBox())
        return found


def set_gateway_guards(base_url: str, guards: Guards) -> None:
    """Use ``guards`` for every client of the gateway at ``base_url`` in this process.

    For a gateway with other limits than an individual account's (or a test
    simulator running faster); call it before the first request.
    """
    parts = urlsplit(base_url)
    with _guards_lock:
        _guards[f"{parts.scheme}://{parts.netloc}".lower()] = guards


class _RedactAccounts(logging.Filter):
    """Masks our account ids in urllib3's DEBUG lines (they carry the URL path)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            hits = [s for s in tuple(self.secrets) if s in message]
            if hits:
                for secret in hits:
                    message = message.replace(secret, mask_account(secret))
                record.msg, record.args = message, ()
        return True


_redactor = _RedactAccounts()
_redactor_lock = threading.Lock()


def _redact_in_urllib3(secrets: set[str]) -> None:
    with _redactor_lock:
        if not _redactor.secrets:
            logging.getLogger("urllib3.connectionpool").addFilter(_redactor)
        _redactor.secrets |= secrets


_insecure_warned: set[str] = set()
_insecure_lock = threading.Lock()


def _warn_insecure_once(base_url: str) -> None:
    """Log one WARNING per process for verification off; mute urllib3's per-request one."""
    host = urlsplit(base_url).hostname or ""
    with _insecure_lock:
        if base_url in _insecure_warned:
            return
        first = not _insecure_warned
        _insecure_warned.add(base_url)
        # Scoped to this host: other HTTPS users in the process keep urllib3's warning.
        from urllib3.exceptions import InsecureRequestWarning

        warnings.filterwarnings(
            "ignore",
            message=rf"Unverified HTTPS request is being made to host '{re.escape(host)}'",
            category=InsecureRequestWarning,
        )
    if first:
        log.warning(
            "TLS certificate verification is OFF for the Client Portal at %s "
            "(IB_PORTAL_VERIFY=0 / portal_verify=False): anyone on the path can read and change "
            "orders. Prefer IB_PORTAL_CA=<the gateway's CA bundle>", base_url,
        )


class PortalHTTP:
    """JSON over HTTPS to one Client Portal gateway, throttled and time-boxed.

    Threading contract: :meth:`request` may be called from any thread
    concurrently; each call blocks for at most the time left until its
    ``deadline`` (waiting for a rate-limit slot included).

    Args:
        base_url: The API base, e.g. ``https://localhost:5000/v1/api``.
        verify: False switches TLS verification off (logs one WARNING per process).
        ca_path: PEM bundle of the CA that signed the gateway's certificate;
            None uses the system store.
        guards: Shared rate-limit state (default: :func:`gateway_guards`).
        penalty_s: Seconds to back off after an HTTP 429.
        rate: Overall requests per second (for new guards).
        connect_timeout: Upper bound of the TCP + TLS connect time per request.
        session: A ready ``requests.Session`` (tests); one is made otherwise.
    """

    def __init__(
        self,
        base_url: str,
        *,
        verify: bool = True,
        ca_path: str | None = None,
        guards: Guards | None = None,
        penalty_s: float = 600.0,
        rate: float = 10.0,
        connect_timeout: float = 4.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.guards = guards or gateway_guards(self.base_url, rate)
        self.penalty_s = float(penalty_s)
        self.connect_timeout = float(connect_timeout)
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._closed = threading.Event()
        self._redact: set[str] = set()
        if verify:
            self.verify: bool | str = ca_path or True
        else:
            self.verify = False
            _warn_insecure_once(self.base_url)
        self.session = session or self._make_session()

    def _make_session(self) -> requests.Session:
        s = requests.Session()
        # Environment CA bundles and proxies must not override what we were told.
        s.trust_env = False
        s.verify = self.verify
        s.headers["User-Agent"] = _USER_AGENT
        retry = Retry(
            total=2, connect=2, read=0, status=1, other=0,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            backoff_factor=0.1,
            respect_retry_after_header=False,  # a 429 is a penalty, never a retry
            raise_on_status=False,
        )
        s.mount(self.base_url + "/", HTTPAdapter(max_retries=retry, pool_maxsize=16))
        plain = HTTPAdapter(max_retries=Retry(total=0, connect=0, read=0, status=0, other=0,
                                              raise_on_status=False), pool_maxsize=4)
        for prefix in _NO_RETRY_PREFIXES:
            s.mount(self.base_url + prefix, plain)
        return s

    # -- housekeeping ----------------------------------------------------------------

    def add_redaction(self, *secrets: str) -> None:
        """Strings (account ids) to mask wherever this layer writes a log line or an error.

        urllib3's own DEBUG lines (which show URL paths) are masked too.
        """
        fresh = {s for s in secrets if s and len(s) >= 3} - self._redact
        if fresh:
            self._redact |= fresh
            _redact_in_urllib3(fresh)

    def redact(self, text: str) -> str:
        """``text`` with every registered account id masked."""
        for secret in tuple(self._redact):  # a snapshot: another thread may add one
            text = text.replace(secret, mask_account(secret))
        return text

    def close(self) -> None:
        """Close the pooled connections; later requests fail with SourceUnavailableError."""
        self._closed.set()
        self.session.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed.is_set()

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    # -- the request -------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        deadline: float,
        params: dict[str, Any] | None = None,
        json: Any = None,
        what: str | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON body.

        Blocks until the answer, at most until ``deadline`` (``time.monotonic``
        seconds), including the wait for a rate-limit slot.

        Args:
            method: ``GET``, ``POST`` or ``DELETE``.
            path: The API path after the base URL, e.g. ``/iserver/accounts``.
            deadline: Monotonic time by which the call must be done.
            params: Query parameters.
            json: A JSON body.
            what: What is being asked, for error messages.

        Returns:
            The decoded JSON (None for an empty body).

        Raises:
            SourceUnavailableError: the penalty box is running (nothing sent),
                the gateway answered 429 (the penalty starts now), the client
                was closed, or the answer was not JSON.
            RequestTimeoutError: no rate-limit slot, concurrency slot or answer in time.
            ConnectionFailedError: refused, dropped, or TLS verification failed.
            PortalHTTPError: any other HTTP error status.
        """
        what = what or f"{method} {self.redact(path)}"
        if self._closed.is_set():
            raise SourceUnavailableError(f"{what}: the Client Portal client was closed")
        guards = self.guards
        guards.penalty.check(what)
        key = endpoint_key(path)
        slot = guards.throttle.concurrency(key)
        if slot is not None and not slot.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise RequestTimeoutError(
                f"{what}: every concurrent-request slot for {key} stayed busy until the timeout; "
                "retry later or raise the timeout")
        try:
            delay = guards.throttle.reserve(key, max_wait=deadline - time.monotonic(), what=what)
            if delay > 0 and self._closed.wait(delay):
                raise SourceUnavailableError(f"{what}: the Client Portal client was closed")
            guards.penalty.check(what)  # a 429 may have arrived while we waited
            return self._send(method, path, params, json, deadline, what)
        finally:
            if slot is not None:
                slot.release()

    def _send(self, method: str, path: str, params: Any, body: Any, deadline: float,
              what: str) -> Any:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeoutError(f"{what}: no time left in the call's timeout")
        url = self.base_url + path
        started = time.monotonic()
        try:
            response = self.session.request(
                method, url, params=params, json=body, verify=self.verify,
                timeout=(min(self.connect_timeout, remaining), remaining), allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            self._count("tls_error")
            raise ConnectionFailedError(
                f"{what}: TLS verification of the Client Portal at {self.base_url} failed "
                f"({_short(exc)}); set IB_PORTAL_CA / configure(portal_ca=...) to the gateway's "
                "CA bundle (or, knowingly, IB_PORTAL_VERIFY=0)"
            ) from None
        except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout) as exc:
            self._count("timeout")
            raise RequestTimeoutError(
                f"{what}: the Client Portal at {self.base_url} did not answer within "
                f"{remaining:.1f} s ({type(exc).__name__}); check the gateway or raise the timeout"
            ) from None
        except requests.exceptions.RequestException as exc:
            self._count("connection_error")
            raise ConnectionFailedError(
                f"{what}: could not reach the Client Portal at {self.base_url} "
                f"({type(exc).__name__}); is the CP Gateway running and IB_PORTAL_URL right?"
            ) from None
        elapsed_ms = (time.monotonic() - started) * 1000
        status = response.status_code
        self._count("requests")
        self._count(f"http_{status}")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("portal %s %s -> %d in %.0f ms", method, self.redact(path), status,
                      elapsed_ms)
        if status == 429:
            self._count("429")
            reason = f"the gateway answered HTTP 429 (rate limit) to {method} {self.redact(path)}"
            self.guards.penalty.enter(self.penalty_s, reason)
            log.warning("Client Portal rate limit hit (%s); backing off for %.0f s, during which "
                        "portal calls fail fast and data falls back to the next source",
                        reason, self.penalty_s)
            self.guards.penalty.check(what)
        payload = _decode(response)
        if status >= 400:
            text = self.redact(_error_text(payload, response))
            raise PortalHTTPError(status, payload, what, text)
        if payload is _NOT_JSON:
            raise SourceUnavailableError(
                f"{what}: the Client Portal answered HTTP {status} with something that is not "
                "JSON; is IB_PORTAL_URL the API base (…/v1/api)?")
        return payload


_NOT_JSON = object()


def _decode(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return _NOT_JSON


def _error_text(payload: Any, response: requests.Response) -> str:
    if isinstance(payload, dict):
        text = payload.get("error") or payload.get("message") or payload
    elif payload is _NOT_JSON:
        text = response.text
    else:
        text = payload
    return str(text)[:300]


def _short(exc: BaseException) -> str:
    text = str(exc)
    m = re.search(r"(certificate verify failed[^')\"]*|hostname [^')\"]*|SSL[^')\"]*)", text)
    return (m.group(1) if m else text)[:160].strip()
