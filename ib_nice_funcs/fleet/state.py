"""I/O-free rules of the fleet: records, their encoding, keys, messages, exposure.

The stores (:mod:`.local`, :mod:`.redis_store`) keep the strings this module
makes and give back what they read; nothing here touches a file or a socket.
Every record carries a format tag; a record of another format, or garbage,
decodes to None (the caller logs one WARNING and never trusts it for risk).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "FORMAT",
    "Halt",
    "Claim",
    "WorkingOrder",
    "Reservation",
    "account_slug",
    "owner_id",
    "owner_pid",
    "encode",
    "decode",
    "halt_message",
    "claimed_message",
    "with_working_orders",
    "claim_is_stale",
    "digest",
    "encode_quote",
    "decode_quote",
]

#: Format tag of every record; a record with another tag is ignored.
FORMAT = "ib_nice_funcs.fleet/1"
#: A claim whose order the gateway has not seen after this long never arrived:
#: another process may place the id.
CLAIM_STALE_S = 120.0

_SLUG = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Halt:
    """The account's halt latch: who latched it, when (UTC epoch s) and why."""

    by: str
    at: float
    reason: str = "emergency_stop()"


@dataclass(frozen=True)
class Claim:
    """A client order id taken by one process (before it sends the order)."""

    owner: str
    at: float


@dataclass(frozen=True)
class WorkingOrder:
    """An order working at the gateway, valued for the exposure check.

    Attributes:
        symbol: Key in the risk snapshot's ``positions_usd``.
        side: ``BUY`` or ``SELL``.
        value_usd: Remaining quantity x price x multiplier, USD, >= 0.
    """

    symbol: str
    side: str
    value_usd: float


@dataclass(frozen=True)
class Reservation:
    """An opening order one process has working at the gateway, for the others' checks."""

    owner: str
    at: float
    symbol: str
    side: str
    value_usd: float
    #: UTC epoch seconds after which it no longer counts (set once the order
    #: filled: the others' position views have the fill by then); None: working.
    until: float | None = None

    def counts(self, now: float) -> bool:
        return self.until is None or now < self.until

    def working(self) -> WorkingOrder:
        return WorkingOrder(self.symbol, self.side, self.value_usd)


def account_slug(account: str) -> str:
    """A file- and key-safe form of an account id (``DU123`` stays ``DU123``)."""
    if not account:
        raise ValueError("account is empty: the fleet state is kept per account")
    return _SLUG.sub("_", account)


def owner_id() -> str:
    """One Trader of this process, as other processes see it: ``host:pid:tag``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def owner_pid(owner: str, host: str | None = None) -> int | None:
    """The pid in ``owner`` when it names a process of ``host`` (this host by default)."""
    name, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if name != (host or socket.gethostname()) or not pid.isdigit():
        return None
    return int(pid)


def encode(record: Halt | Claim | Reservation | float) -> str:
    """The stored text of a record (a float is a day-start net liquidation)."""
    if isinstance(record, (Halt, Claim, Reservation)):
        body: dict[str, Any] = {"kind": type(record).__name__.lower(), **asdict(record)}
    else:
        body = {"kind": "day_start", "value": float(record)}
    return json.dumps({"format": FORMAT, **body}, separators=(",", ":"))


def decode(kind: str, text: str | bytes | None) -> Halt | Claim | Reservation | float | None:
    """The record ``encode`` made, or None for nothing, another format or garbage.

    Args:
        kind: ``halt``, ``claim``, ``reservation`` or ``day_start``.
        text: What the store holds.
    """
    if text is None:
        return None
    try:
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("format") != FORMAT or body.get("kind") != kind:
            return None
        if kind == "halt":
            return Halt(str(body["by"]), _finite(body["at"]), str(body.get("reason", "")))
        if kind == "claim":
            return Claim(str(body["owner"]), _finite(body["at"]))
        if kind == "reservation":
            side = str(body["side"]).upper()
            value = _finite(body["value_usd"])
            if side not in ("BUY", "SELL") or value < 0:
                return None
            until = body.get("until")
            return Reservation(str(body["owner"]), _finite(body["at"]), str(body["symbol"]),
                               side, value, None if until is None else _finite(until))
        if kind == "day_start":
            value = _finite(body["value"])
            return value if value > 0 else None
    except (ValueError, TypeError, KeyError):
        return None
    return None


def _finite(value: Any) -> float:
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"not finite: {value!r}")
    return x


def halt_message(halt: Halt, account: str) -> str:
    """Why an opening order was refused, by whom, and how to resume."""
    when = datetime.fromtimestamp(halt.at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"trading on account {account} is halted: {halt.reason} in process {halt.by} at "
        f"{when}; opening orders are refused in every agent process until "
        "resume_trading() (or 'ib-nice-funcs resume') is called. Closing orders still go"
    )


def claimed_message(client_order_id: str, claim: Claim) -> str:
    """Why an order with an id another process claimed was not sent."""
    return (
        f"client order id {client_order_id!r} is being placed by process {claim.owner}; "
        "nothing was sent here. Call again with the same id to get that order's state"
    )


def claim_is_stale(claim: Claim, now: float, owner_alive: bool | None) -> bool:
    """May another process place the id (its claimant's order never reached the gateway)?

    Args:
        claim: The other process's claim.
        now: UTC epoch seconds.
        owner_alive: Whether the claimant still runs (None: cannot tell,
            e.g. another host).
    """
    if owner_alive is False:
        return True
    return now - claim.at > CLAIM_STALE_S


def with_working_orders(
    positions_usd: Mapping[str, float], working: Iterable[WorkingOrder]
) -> dict[str, float]:
    """Positions as if every working order that adds risk filled.

    An order that would reduce a position is left out (it may be
    cancelled); one that would grow it counts in full: the exposure check
    then holds whichever of the fleet's orders fill.
    """
    out = {k: float(v) for k, v in positions_usd.items()}
    for order in working:
        current = out.get(order.symbol, 0.0)
        signed = order.value_usd if order.side.upper() == "BUY" else -order.value_usd
        if abs(current + signed) > abs(current):
            out[order.symbol] = current + signed
    return out


def digest(value: Any) -> str:
    """A short stable name for a hashable key (instrument, request), for Redis keys."""
    return hashlib.sha1(repr(value).encode()).hexdigest()[:16]


_QUOTE_TAG = "q1"


def encode_quote(price: float, epoch: float) -> str:
    """A shared quote as stored: compact, since every tick writes one."""
    return f"{_QUOTE_TAG}|{price!r}|{epoch!r}"


def decode_quote(text: str | bytes | None) -> tuple[float, float] | None:
    """``(price, epoch)`` from :func:`encode_quote`; None for nothing, another format or garbage."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    parts = text.split("|")
    if len(parts) != 3 or parts[0] != _QUOTE_TAG:
        return None
    try:
        price, epoch = _finite(parts[1]), _finite(parts[2])
    except ValueError:
        return None
    return (price, epoch) if price > 0 else None
