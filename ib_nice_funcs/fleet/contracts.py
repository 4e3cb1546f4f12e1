"""SharedContracts: qualified contracts one process asked IB for, read by the others.

A ``conId`` is permanent, so the answer of one ``reqContractDetails`` serves
every process of a gateway. Without this, twenty agents polling fifty
symbols send a thousand contract-details requests at start, which at their
share of IB's message rate (two a second each, see :mod:`.messages`) keeps
each connection's queue full for half a minute: prices, bars and even the
heartbeat's probe wait behind them.

Keys, per gateway, under ``ib_nice_funcs:fleet:1:gw:<host>:<port>:``:
``contract:<instrument>`` (the contract's fields as JSON, a day; or
``"none"`` for a symbol IB does not know, a minute) and
``contract-claim:<instrument>`` (the process asking IB for it now: a 5 s
lease, given back when the answer is written). A process that finds a
claim waits for the record (polling Redis); when the claim lapses without
one it claims the symbol itself. Redis is reached with redis-py's blocking
client from the loop thread; when it is unreachable every process asks IB
itself.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from .link import RedisLink
from .redis_store import KEY_PREFIX
from .state import FORMAT, digest

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import Contract

__all__ = ["SharedContracts", "UNKNOWN", "encode_contract", "decode_contract"]

log = logging.getLogger("ib_nice_funcs")

#: A claim on asking IB for a contract lapses after this long (its holder died).
CLAIM_MS = 5000
_CONTRACT_TTL_S = 24 * 3600
#: "IB knows no such instrument" is shared briefly: a listing may appear.
_UNKNOWN_TTL_S = 60
_UNKNOWN = "none"
#: What :meth:`SharedContracts.read` gives for a symbol IB does not know.
UNKNOWN: Any = object()
# Fields that hold objects (combo legs, delta-neutral): such contracts are not shared.
_NESTED = ("comboLegs", "deltaNeutralContract")


def encode_contract(contract: Contract) -> str | None:
    """A qualified contract as stored; None when it has nested parts (not shared)."""
    fields = {f.name: getattr(contract, f.name) for f in dataclasses.fields(contract)}
    if any(fields.pop(name, None) for name in _NESTED):
        return None
    return json.dumps({"format": FORMAT, "kind": "contract", "fields": fields},
                      separators=(",", ":"))


def decode_contract(text: str | bytes | None) -> Contract | None:
    """The contract of :func:`encode_contract`; None for nothing, garbage or another version."""
    if text is None:
        return None
    from ib_async import Contract

    try:
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("format") != FORMAT \
                or body.get("kind") != "contract":
            return None
        fields = body["fields"]
        known = {f.name for f in dataclasses.fields(Contract)}
        if not isinstance(fields, dict) or not set(fields) <= known:
            return None
        contract = Contract.create(**fields)
        return contract if contract.conId else None
    except (ValueError, TypeError, KeyError):
        return None


def _record(text: str | bytes | None) -> Any:
    """A stored record: the contract, :data:`UNKNOWN`, or None (nothing, or garbage)."""
    if text in (_UNKNOWN, _UNKNOWN.encode()):
        return UNKNOWN
    return decode_contract(text)


class SharedContracts:
    """The qualified contracts of one gateway's processes; thread-safe."""

    def __init__(self, url: str, host: str, port: int, owner: str) -> None:
        self.owner = owner
        self.link = RedisLink(url)
        self._prefix = f"{KEY_PREFIX}:gw:{host}:{port}"

    def _key(self, kind: str, key: Hashable) -> str:
        return f"{self._prefix}:{kind}:{digest(key)}"

    def read(self, keys: Sequence[Hashable]) -> dict[Hashable, Any]:
        """The contracts others wrote for ``keys`` (:data:`UNKNOWN` for no such symbol)."""
        if not keys:
            return {}
        got = self.link.run(lambda c: c.mget([self._key("contract", k) for k in keys]), None)
        if got is None:
            return {}
        out: dict[Hashable, Any] = {}
        for key, text in zip(keys, got, strict=True):
            record = _record(text)
            if record is not None:
                out[key] = record
        return out

    def claim(self, keys: Sequence[Hashable], limit: int
              ) -> tuple[list[Hashable], dict[Hashable, Any]]:
        """Claim up to ``limit`` of ``keys`` to ask IB for: ``(claimed, found)``.

        ``found``: records written since the caller's :meth:`read` (their
        writer freed the claim just before this one was taken: the claim is
        given back at once, so nothing is asked twice). All keys are claimed
        when Redis is away.
        """
        some = list(keys[:limit])

        def run(client: Any) -> tuple[list[Hashable], dict[Hashable, Any]]:
            pipe = client.pipeline(transaction=False)
            for key in some:
                # A writer sets the record before it frees the claim, so a claim
                # taken here sees any record written before it.
                pipe.set(self._key("contract-claim", key), self.owner, nx=True, px=CLAIM_MS)
                pipe.get(self._key("contract", key))
            answers = pipe.execute()
            claimed: list[Hashable] = []
            found: dict[Hashable, Any] = {}
            for i, key in enumerate(some):
                took, record = answers[2 * i], _record(answers[2 * i + 1])
                if record is not None:
                    found[key] = record
                    if took:
                        client.delete(self._key("contract-claim", key))
                elif took:
                    claimed.append(key)
            return claimed, found

        # Without Redis every key is ours to ask IB for, and nothing is known.
        without_redis: tuple[list[Hashable], dict[Hashable, Any]] = (list(keys), {})
        return self.link.run(run, without_redis)

    def write(self, found: dict[Hashable, Contract | None]) -> None:
        """Write the answers of claimed keys (None: IB knows no such symbol) and free the claims."""
        if not found:
            return

        def run(client: Any) -> None:
            pipe = client.pipeline(transaction=False)
            for key, contract in found.items():
                text = encode_contract(contract) if contract is not None else _UNKNOWN
                if text is not None:
                    pipe.set(self._key("contract", key), text,
                             ex=_UNKNOWN_TTL_S if contract is None else _CONTRACT_TTL_S)
                pipe.delete(self._key("contract-claim", key))
            pipe.execute()

        self.link.run(run, None)

    def unclaim(self, keys: Sequence[Hashable]) -> None:
        """Give back claims whose answer never came (the request failed)."""
        for key in keys:
            self.link.release(self._key("contract-claim", key), self.owner)

    def close(self) -> None:
        self.link.close()
