"""What the simulators' handler modules see of their simulator: small protocols.

The TWS simulator (:mod:`.tws`) and the Client Portal simulator
(:mod:`.portal`) assemble their message and route tables from handler
modules (``_orders``, ``_account``, ``_extras``, ``_scanner``;
``_portal_*``). The handlers are typed against :class:`TWSView` and
:class:`PortalView`, not against the simulator classes: those import the
handlers, so typing against them (even under ``TYPE_CHECKING``) would close
an import cycle. The simulator classes satisfy the protocols as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from ._conn import Conn
    from .catalog import Instrument
    from .market import PaperMarket
    from .matching import MatchingEngine

__all__ = ["PortalSession", "PortalView", "TWSView"]


class TWSView(Protocol):
    """The TWS simulator as its message handlers see it (the simulator's loop)."""

    account: str
    acks_dropped: bool
    engine: MatchingEngine
    market: PaperMarket
    tick_interval: float

    def is_deaf(self, conn: Conn) -> bool:
        """Whether ``conn`` gets no answers (a hung gateway)."""
        ...

    def resolve(self, c: dict[str, Any]) -> list[tuple[Instrument, str]]:
        """Catalog instruments matching a contract's fields, with their exchange."""
        ...

    def one_instrument(self, conn: Conn, req_id: int, contract: dict) -> Instrument | None:
        """The contract's instrument, or None after sending error 200 to ``conn``."""
        ...

    def dispatch_events(self, events: list) -> None:
        """Send matching-engine events to the connected clients."""
        ...

    def next_order_id(self, used: int) -> None:
        """Keep nextValidId above every order id seen."""
        ...

    def conns(self) -> list[Conn]:
        """Connected clients that finished startApi."""
        ...


@dataclass
class PortalSession:
    """State of the gateway's brokerage session; reset by ``ssodh/init`` and logins.

    Attributes:
        accounts_called: ``GET /iserver/accounts`` was called (pre-flight done).
        portfolio_called: ``GET /portfolio/accounts`` was called.
        subscriptions: conid -> snapshot fields subscribed so far.
        sub_started: conid -> monotonic time the subscription started.
        orders_polled: ``GET /iserver/account/orders`` was called before.
    """

    accounts_called: bool = False
    portfolio_called: bool = False
    subscriptions: dict[int, set[str]] = field(default_factory=dict)
    sub_started: dict[int, float] = field(default_factory=dict)
    orders_polled: bool = False


class PortalView(Protocol):
    """The Client Portal simulator as its route handlers see it."""

    account: str
    engine: MatchingEngine
    market: PaperMarket
    session: PortalSession
    seed: int
    clock: Callable[[], float]
    competing: bool
    exclusive_replies: bool
    questions: bool
    md_availability: str
    halted: set[str]
    snapshot_warmup_s: float
    orders_first_call_empty: bool
    positions_page_size: int
    max_history_points: int
    size_limit: float
    value_limit: float
    price_constraint_pct: float
    suppressed: set[str]
    replies: dict[str, Any]
    rejected: set[int]
    order_count: int

    @property
    def authenticated(self) -> bool:
        """Logged in (False answers 401 to everything)."""
        ...

    @authenticated.setter
    def authenticated(self, value: bool) -> None: ...

    @property
    def no_bridge(self) -> bool:
        """The brokerage session is down."""
        ...

    @no_bridge.setter
    def no_bridge(self, value: bool) -> None: ...

    def reset_session(self) -> None:
        """A new brokerage session (``ssodh/init``, a login)."""
        ...

    async def engine_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the thread that owns the matching engine."""
        ...

    def dispatch_events(self, events: list) -> None:
        """Hand engine events to the TWS clients (on the engine's thread)."""
        ...

    def now_ms(self) -> int:
        """Market time in epoch milliseconds."""
        ...

    def stable_hex(self, *parts: object, n: int = 16) -> str:
        """Hex digits derived from the seed and ``parts``."""
        ...

    def new_reply_id(self) -> str:
        """A fresh reply id."""
        ...

    def next_portal_order_id(self) -> int:
        """Engine order id for the next order placed over REST."""
        ...

    def instrument(self, conid: object) -> Instrument:
        """The catalog instrument of ``conid`` (HttpError 400 when unknown)."""
        ...

    def check_account(self, acct: str) -> None:
        """HttpError 400 unless ``acct`` is this gateway's account."""
        ...
