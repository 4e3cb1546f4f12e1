"""Run a TWSSimulator in its own thread: for synchronous tests, the demo and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._threaded import serve_in_thread
from .market import PaperMarket
from .tws import TWSSimulator

__all__ = ["ServeInfo", "SimulatorHandle", "run_simulator", "serve_forever"]

log = logging.getLogger(__name__)

class SimulatorHandle:
    """A running simulator seen from other threads.

    Attributes:
        sim: the :class:`TWSSimulator` (its plain attributes may be read from
            any thread; use the setters below to change it).
        port: the bound TCP port.
        loop: the event loop the simulator runs on.
    """

    def __init__(self, sim: TWSSimulator, loop: asyncio.AbstractEventLoop) -> None:
        self.sim = sim
        self.loop = loop
        self.port = sim.port
        self.host = sim.host
        #: the Client Portal simulator's handle when started with ``portal=True``
        self.portal: Any = None

    @property
    def market(self) -> PaperMarket:
        """The simulator's paper market."""
        return self.sim.market

    def call(self, fn: Any, *args: Any, timeout: float = 5.0) -> Any:
        """Run ``fn(*args)`` on the simulator's loop and return its result.

        Blocks until done or ``timeout`` seconds.

        Raises:
            concurrent.futures.TimeoutError: if the loop does not answer in time.
        """
        async def runner() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    def set_latency(self, seconds: float) -> None:
        """Delay every reply by ``seconds``."""
        self.call(setattr, self.sim, "latency", float(seconds))

    def set_refuse_new(self, value: bool = True) -> None:
        """Stop (or resume) listening: new connections are refused at once."""
        self.sim.refuse_new = bool(value)

    def set_blackhole(self, value: bool = True) -> None:
        """Accept connections and requests but never answer."""
        self.call(setattr, self.sim, "blackhole", bool(value))

    def set_enforce_pacing(self, value: bool = True) -> None:
        """Switch historical pacing enforcement on or off."""
        self.call(setattr, self.sim, "enforce_pacing", bool(value))

    def set_pacing(self, rules: Any) -> None:
        """Replace the pacing limits (a :class:`PacingRules`) and forget history."""
        self.call(setattr, self.sim, "pacing", rules)

    def set_market_data_subscribed(self, value: bool = True) -> None:
        """False makes live (type 1/2) market data requests fail with error 354."""
        self.call(setattr, self.sim, "market_data_subscribed", bool(value))

    def drop_connections(self) -> None:
        """Close every client socket now; returns once they are closed."""
        self.call(self.sim._drop_all)

    def half_open(self) -> None:
        """Freeze the open connections: sockets stay open, requests are lost and
        nothing is sent until :meth:`heal` (new connections are served; see
        :meth:`TWSSimulator.half_open`). Returns once applied."""
        self.call(self.sim._freeze_all)

    def heal(self) -> None:
        """End :meth:`half_open`: held messages are sent, requests answered again."""
        self.call(self.sim._thaw_all)

    def broadcast_error(self, code: int, message: str = "") -> None:
        """Send IB error ``code`` (1100, 1101, 1102...) with reqId -1 to every client.

        ``message`` defaults to IB's own text for the connectivity codes.
        """
        self.call(self.sim._broadcast, int(code), message)

    def drop_acks(self, on: bool = True) -> None:
        """Swallow (or send again) openOrder/orderStatus acknowledgements of orders.

        Orders are still accepted and executed; see :meth:`TWSSimulator.drop_acks`.
        """
        self.call(self.sim.drop_acks, bool(on))

    def set_price(self, symbol: str, price: float | None) -> None:
        """Pin (or with None unpin) the live price of ``symbol``."""
        self.call(self.sim.set_price, symbol, price)

    def run_close(self) -> None:
        """Run the closing auction now (MOC/LOC orders fill)."""
        self.call(lambda: self.sim.dispatch_events(
            self.sim.engine.run_close(self.sim.market.now())))

    def request_counts(self) -> dict[str, int]:
        """Requests received so far, by name."""
        return dict(self.sim.request_counts)

    def market_data_lines(self) -> int:
        """Streaming market-data subscriptions open now, over every client."""
        return int(self.call(lambda: sum(len(c.md_subs) for c in self.sim.conns())))


@contextlib.contextmanager
def run_simulator(startup_timeout: float = 10.0, portal: bool = False,
                  portal_kwargs: dict[str, Any] | None = None,
                  **kwargs: Any) -> Iterator[SimulatorHandle]:
    """Run a :class:`TWSSimulator` on a daemon thread with its own event loop.

    Keyword arguments go to :class:`TWSSimulator` (``port=0`` picks a free
    port). Blocks until the simulator listens; on exit stops it and joins
    the thread (each step bounded by ``startup_timeout``).

    With ``portal=True`` a Client Portal simulator (``portal_kwargs`` go to
    :class:`~ib_nice_funcs.sim.portal.PortalSimulator`) also runs, sharing
    this simulator's market and matching engine; its handle is
    ``handle.portal`` (``.url``, ``.ca_path``, knobs).

    Raises:
        OSError: if the simulator cannot bind its port.
        TimeoutError: if it does not start within ``startup_timeout`` seconds.
    """
    with serve_in_thread(lambda: TWSSimulator(**kwargs), "tws-simulator",
                         startup_timeout) as (sim, loop):
        handle = SimulatorHandle(sim, loop)
        with contextlib.ExitStack() as stack:
            if portal:
                from ._portal_runner import run_portal_simulator

                handle.portal = stack.enter_context(run_portal_simulator(
                    startup_timeout=max(startup_timeout, 15.0), tws=sim,
                    **(portal_kwargs or {})))
            yield handle


def serve_forever(host: str = "127.0.0.1", port: int = 4002, seed: int = 0,
                  account: str = "DU1234567", portal_port: int | None = None,
                  portal_kwargs: dict[str, Any] | None = None,
                  on_ready: Callable[[ServeInfo], None] | None = None,
                  clock: Callable[[], float] | None = None, **kwargs: Any) -> None:
    """Run the simulator in the foreground until KeyboardInterrupt or SIGTERM.

    Blocks. With ``portal_port`` (0 picks a free port) a Client Portal
    simulator sharing the market and the account also runs. Once listening,
    ``on_ready`` gets where (the bound ports, the portal URL and its CA
    file); the CLI prints it. ``clock`` is the market clock (see
    :class:`~ib_nice_funcs.sim.clock.MarketClock`). SIGTERM stops it like
    Ctrl-C, so the portal's TLS directory (private key included) is removed.

    Raises:
        OSError: if a port cannot be bound.
    """
    async def main() -> None:
        market = PaperMarket(seed=seed, clock=clock) if clock is not None else None
        sim = TWSSimulator(market, host=host, port=port, seed=seed, account=account, **kwargs)
        await sim.start()
        log.info("paper TWS on %s:%d, account %s; Ctrl-C stops it", host, sim.port, account)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        cp = None
        try:
            if portal_port is not None:
                from .portal import PortalSimulator

                cp = PortalSimulator(sim, host=host, port=portal_port, **(portal_kwargs or {}))
                await cp.start()
                log.info("paper Client Portal on %s (CA file %s)", cp.url,
                         cp.ca_path or "none")
            if on_ready is not None:
                on_ready(ServeInfo(host=host, port=sim.port, account=account,
                                   portal_url=cp.url if cp else None,
                                   portal_ca=cp.ca_path if cp else None))
            await stop.wait()
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGTERM)
            if cp is not None:
                await cp.stop()
            await sim.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    log.info("simulator stopped")


@dataclass(frozen=True)
class ServeInfo:
    """Where :func:`serve_forever` listens (``portal_*`` are None without a portal)."""

    host: str
    port: int
    account: str
    portal_url: str | None
    portal_ca: str | None
