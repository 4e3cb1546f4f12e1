"""Run a PortalSimulator in its own thread: for synchronous tests, the demo and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

from ._threaded import serve_in_thread
from .market import PaperMarket
from .portal import PortalSimulator

__all__ = ["PortalHandle", "run_portal_simulator"]

log = logging.getLogger(__name__)


class PortalHandle:
    """A running Client Portal simulator seen from other threads.

    Attributes:
        sim: the :class:`PortalSimulator` (read its attributes freely; change
            it through the setters, which are thread-safe).
        loop: the event loop it runs on.
        url: base URL, e.g. ``https://127.0.0.1:PORT/v1/api``.
        ca_path: CA certificate (PEM) to pass as ``verify=``; None without TLS.
        port, host: where it listens.
    """

    def __init__(self, sim: PortalSimulator, loop: asyncio.AbstractEventLoop) -> None:
        self.sim = sim
        self.loop = loop
        self.url = sim.url
        self.ca_path = sim.ca_path
        self.port = sim.port
        self.host = sim.host

    @property
    def market(self) -> PaperMarket:
        """The paper market behind the simulator."""
        return self.sim.market

    @property
    def account(self) -> str:
        """The account id the simulator serves."""
        return self.sim.account

    def call(self, fn: Any, *args: Any, timeout: float = 5.0) -> Any:
        """Run ``fn(*args)`` on the simulator's loop and return its result.

        Raises:
            concurrent.futures.TimeoutError: if the loop does not answer in time.
        """
        async def runner() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    def _set(self, name: str, value: Any) -> None:
        self.call(setattr, self.sim, name, value)

    # ---------------------------------------------------------------- session
    def set_authenticated(self, value: bool = True) -> None:
        """False: every request gets 401 (logged out); True logs in with a new session."""
        self._set("authenticated", bool(value))

    def set_no_bridge(self, value: bool = True) -> None:
        """True: /iserver endpoints answer 400 "no bridge" until ssodh/init is called."""
        self._set("no_bridge", bool(value))

    def set_competing(self, value: bool = True) -> None:
        """True: a competing session; /iserver endpoints fail until ssodh/init compete=true."""
        self._set("competing", bool(value))

    def reset_session(self) -> None:
        """Forget the pre-flights, snapshot subscriptions and pending questions."""
        self.call(self.sim.reset_session)

    # ----------------------------------------------------------------- faults
    def set_latency(self, seconds: float) -> None:
        """Delay every answer by ``seconds``."""
        self._set("latency", float(seconds))

    def set_blackhole(self, value: bool = True) -> None:
        """Accept connections and read requests, but never answer them."""
        self._set("blackhole", bool(value))

    def set_drop(self, value: bool = True) -> None:
        """Close the connection on every request instead of answering."""
        self._set("drop", bool(value))

    def set_refuse_new(self, value: bool = True) -> None:
        """Stop (or resume) listening: new connections are refused at once."""
        self.sim.refuse_new = bool(value)

    def drop_connections(self) -> None:
        """Close every client connection now; returns once they are closed."""
        self.call(self.sim._drop_all)

    def set_down(self, value: bool = True) -> None:
        """The gateway process gone (True) or back (False): refuse new and drop open ones."""
        self.set_refuse_new(value)
        if value:
            self.drop_connections()

    # ------------------------------------------------------------ rate limits
    def set_penalty_s(self, seconds: float) -> None:
        """Seconds an IP stays in the penalty box."""
        self._set("penalty_s", float(seconds))

    def set_penalty_after(self, violations: int) -> None:
        """Rate-limit violations within a minute that put an IP into the penalty box
        (1: the first 429 does)."""
        if violations < 1:
            raise ValueError(f"violations must be at least 1, got {violations}")
        self.call(setattr, self.sim.limiter, "penalty_after", int(violations))

    def set_enforce_rate_limits(self, value: bool = True) -> None:
        """Switch the 429 rate limits on or off."""
        self._set("enforce_rate_limits", bool(value))

    def set_rate_limits(self, limits: dict[str, tuple[float, float]]) -> None:
        """Replace the limits (``pattern -> (count, per_s)``, ``global`` for all)."""
        self.call(self.sim.limiter.set_limits, dict(limits))

    def clear_penalty(self) -> None:
        """Release every IP from the penalty box."""
        self.call(self.sim.limiter.clear_penalty)

    def penalized(self, ip: str = "127.0.0.1") -> bool:
        """Whether ``ip`` is in the penalty box now."""
        return self.call(self.sim.limiter.penalized_until, ip) is not None

    # ------------------------------------------------------------ market data
    def set_price(self, symbol: str, price: float | None) -> None:
        """Pin (or with None unpin) the live price of ``symbol``."""
        self.sim.market.set_price(symbol, price)

    def set_halted(self, symbol: str, value: bool = True) -> None:
        """Mark ``symbol`` halted: snapshot field 31 gets the ``H`` prefix."""
        key = self.sim.market.get(symbol).key.upper()
        self.call(self.sim.halted.add if value else self.sim.halted.discard, key)

    def set_md_availability(self, code: str) -> None:
        """``R`` live, ``D`` delayed, ``N`` no market data (snapshots carry no prices)."""
        self._set("md_availability", str(code))

    def set_questions(self, value: bool = True) -> None:
        """Ask order questions (True) or place orders at once (False)."""
        self._set("questions", bool(value))

    def set(self, **knobs: Any) -> None:
        """Set any simulator attributes at once (e.g. ``size_limit=100``)."""
        def apply() -> None:
            for name, value in knobs.items():
                if not hasattr(self.sim, name):
                    raise AttributeError(f"PortalSimulator has no knob {name!r}")
                setattr(self.sim, name, value)

        self.call(apply)

    # --------------------------------------------------------------- counters
    def request_counts(self) -> Counter[str]:
        """Requests received so far, by ``"METHOD /pattern"``."""
        return self.sim.request_counts

    @property
    def count_429(self) -> int:
        """HTTP 429 answers sent so far."""
        return self.sim.count_429

    @property
    def order_count(self) -> int:
        """Orders the portal has handed to the matching engine."""
        return self.sim.order_count


@contextlib.contextmanager
def run_portal_simulator(startup_timeout: float = 15.0, **kwargs: Any) -> Iterator[PortalHandle]:
    """Run a :class:`PortalSimulator` on a daemon thread with its own event loop.

    Keyword arguments go to :class:`PortalSimulator` (``port=0`` picks a free
    port; ``tws=`` shares a running TWS simulator's market and engine). Blocks
    until it listens; on exit stops it and joins the thread.

    Raises:
        OSError: if the port cannot be bound.
        TlsUnavailableError: TLS asked for and no way to make a certificate.
        TimeoutError: if it does not start within ``startup_timeout`` seconds.
    """
    with serve_in_thread(lambda: PortalSimulator(**kwargs), "portal-simulator",
                         startup_timeout) as (sim, loop):
        yield PortalHandle(sim, loop)
