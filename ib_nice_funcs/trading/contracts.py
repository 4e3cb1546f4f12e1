"""Contract rules for orders: qualified contract, tick size, size increment, multiplier.

:class:`ContractRules` asks IB's contract details once per contract and keeps
the answer for the Trader's life (conIds never change). Loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UnknownSymbolError
from ..symbols import Instrument, parse_symbol

if TYPE_CHECKING:  # pragma: no cover
    from ib_async import IB, Contract

    from .._gateway import IBGateway

__all__ = ["ContractRules", "ContractSpec", "finite", "holds", "is_instrument", "multiplier_of",
           "position_symbol"]

log = logging.getLogger("ib_nice_funcs")

#: ib_async's "unset" float.
_UNSET = 1.7976931348623157e308
#: Size steps when IB's contract details carry none.
_DEFAULT_INCREMENT = {"STK": 1.0, "CASH": 1.0, "CRYPTO": 1e-8}
#: Where an order on a contract known only by conId is routed.
_DEFAULT_EXCHANGE = {"STK": "SMART", "CASH": "IDEALPRO", "CRYPTO": "PAXOS"}
#: Ceiling for the contract-details round trip.
_DETAILS_TIMEOUT_S = 10.0


def finite(x: Any) -> float | None:
    """``x`` as a float, or None when it is missing, NaN, infinite or IB's "unset"."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and abs(value) < _UNSET else None


def position_symbol(contract: Contract) -> str:
    """The canonical symbol of an IB contract (``AAPL``, ``EURUSD``, ``BTC-USD``)."""
    try:
        return parse_symbol(contract).symbol
    except (TypeError, ValueError):
        return str(getattr(contract, "localSymbol", "") or getattr(contract, "symbol", ""))


def is_instrument(instrument: Instrument, con_id: Any, symbol: Any,
                  sec_type: str | None = None) -> bool:
    """Whether a position or order row (its ``con_id``, ``symbol``, ``sec_type``) is ``instrument``.

    By conId when both sides carry one; else by canonical symbol, and by
    security type when both name one.
    """
    given = getattr(instrument.contract, "conId", 0) if instrument.contract is not None else 0
    if given and con_id:
        return int(con_id) == int(given)
    return symbol == instrument.symbol and (
        not instrument.sec_type or not sec_type or instrument.sec_type == sec_type)


def holds(instrument: Instrument, contract: Contract) -> bool:
    """Whether an IB position's (or order's) ``contract`` is ``instrument``."""
    return is_instrument(instrument, contract.conId, position_symbol(contract), contract.secType)


def multiplier_of(contract: Contract) -> float:
    """The contract multiplier (1 for stocks, FX and crypto)."""
    value = finite(getattr(contract, "multiplier", "") or 1)
    return value if value and value > 0 else 1.0


@dataclass(frozen=True)
class ContractSpec:
    """A qualified contract with the rules orders on it must follow."""

    contract: Any
    symbol: str
    min_tick: float
    size_increment: float
    min_size: float
    multiplier: float = 1.0


class ContractRules:
    """Cache of :class:`ContractSpec` by instrument and by conId (loop thread only)."""

    def __init__(self, gateway: IBGateway) -> None:
        self.gateway = gateway
        self._by_key: dict[Any, ContractSpec] = {}

    def cached(self, con_id: int) -> ContractSpec | None:
        """The spec of a conId already looked up, else None."""
        return self._by_key.get(("conId", con_id))

    def known(self, instrument: Instrument) -> ContractSpec | None:
        """The spec of an instrument already looked up, else None (never asks IB)."""
        return self._by_key.get(instrument.key)

    async def for_instrument(self, ib: IB, instrument: Instrument, what: str) -> ContractSpec:
        """Qualify ``instrument`` and fetch its rules (cached).

        Raises:
            UnknownSymbolError: IB knows no such contract (nothing is sent).
        """
        spec = self._by_key.get(instrument.key)
        if spec is not None:
            return spec
        (contract,) = await self.gateway.qualify([instrument], what)
        if contract is None:
            raise UnknownSymbolError(
                f"{what}: IB has no instrument for {instrument.symbol!r}; check the symbol, "
                "or pass an ib_async Contract; nothing was sent"
            )
        spec = await self.for_contract(ib, contract, instrument.symbol)
        self._by_key[instrument.key] = spec
        return spec

    async def for_contract(self, ib: IB, contract: Contract, symbol: str) -> ContractSpec:
        """Rules of a contract known by conId (e.g. from a position); cached.

        Missing details only fall back to defaults (whole units for stocks
        and FX, 1e-8 for crypto): a closing order must not fail on them.
        """
        key = ("conId", contract.conId)
        spec = self._by_key.get(key)
        if spec is not None:
            return spec
        from ib_async import Contract as IBContract

        ask = contract if contract.exchange else IBContract(conId=contract.conId)
        details: list[Any] = []
        try:
            details = await asyncio.wait_for(ib.reqContractDetailsAsync(ask), _DETAILS_TIMEOUT_S)
        except (asyncio.TimeoutError, TimeoutError):
            log.debug("no contract details for %s; using default size rules", symbol)
        except Exception as exc:  # noqa: BLE001 - details only refine the defaults
            log.debug("contract details for %s failed: %s", symbol, exc)
        sec_type = contract.secType
        increment = _DEFAULT_INCREMENT.get(sec_type, 1.0)
        min_tick, min_size, qualified = 0.0, 0.0, contract
        if details:
            d = details[0]
            qualified = d.contract if d.contract and d.contract.conId else contract
            min_tick = finite(d.minTick) or 0.0
            inc = finite(d.sizeIncrement)
            if inc and inc > 0:
                increment = inc
            min_size = finite(d.minSize) or 0.0
        if qualified.secType == "STK":
            qualified.exchange = "SMART"  # a position reports the listing exchange
        elif not qualified.exchange:
            qualified.exchange = _DEFAULT_EXCHANGE.get(sec_type, "SMART")
        spec = ContractSpec(
            contract=qualified,
            symbol=symbol,
            min_tick=min_tick,
            size_increment=increment,
            min_size=max(min_size, 0.0) or increment,
            multiplier=multiplier_of(qualified),
        )
        self._by_key[key] = spec
        return spec
