"""Symbol text -> :class:`Instrument` (the IB contract and the Yahoo ticker).

One parse gives every source what it needs: IB's contract fields (secType,
exchange, currency, whatToShow for historical data) and Yahoo's ticker. The
module imports nothing heavy; ``ib_async`` is imported only when
:meth:`Instrument.to_ib_contract` builds a contract.

Accepted spellings (case-insensitive, surrounding whitespace ignored):

* stocks: ``AAPL``, ``aapl``; class shares ``BRK.B``, ``BRK-B``, ``BRK B``,
  ``BRK/B`` (a root of 1-10 letters and digits starting with a letter, and a
  1-2 letter class). Whether the ticker exists is for the sources to say
  (``UnknownSymbolError``), so that an agent's unknown ticker is an
  operational failure and not a crash;
* FX: ``EURUSD``, ``EUR.USD``, ``EUR/USD``, ``EUR-USD``, ``EUR USD``,
  ``EURUSD=X``, and Yahoo's ``JPY=X`` (= ``USDJPY``); both sides must be
  currencies in :data:`FX_CURRENCIES`;
* crypto: ``BTC-USD``, ``BTC/USD``, ``BTC.USD``, ``BTCUSD``, ``BTCUSDT``,
  ``BTC-USDC``...; the base must be in :data:`CRYPTO_BASES`, and the USDT /
  USDC quotes map to USD (IB's PAXOS venue quotes in USD only).

Symbol text must be ASCII: ``"ıbm"``, ``"ſpy"`` or ``"ﬁ"`` would upper-case
into other tickers (IBM, SPY, FI), so non-ASCII text raises
:class:`~ib_nice_funcs.errors.NonAsciiSymbolError` (a ValueError) instead.

A bare ``BTC`` or ``ETH`` stays a stock ticker on purpose: ``BTC`` is also an
NYSE Arca ETF, so crypto needs its quote currency spelled out.

Anything IB can trade can still be reached by passing an ib_async ``Contract``
(futures, options, non-US stocks...); it is used as is.
"""

from __future__ import annotations

import functools
import math
import numbers
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import NonAsciiSymbolError

if TYPE_CHECKING:
    from ib_async import Contract

__all__ = [
    "CRYPTO_BASES",
    "CRYPTO_QUOTES",
    "FX_CURRENCIES",
    "Instrument",
    "parse_symbol",
    "symbol_label",
    "unrecognised",
]

#: Currencies IB quotes on IDEALPRO (and Yahoo as ``XXXYYY=X``).
FX_CURRENCIES: frozenset[str] = frozenset(
    {
        "USD", "EUR", "GBP", "JPY", "CHF", "AUD", "NZD", "CAD", "SEK", "NOK",
        "DKK", "HKD", "SGD", "MXN", "ZAR", "CNH", "CZK", "HUF", "PLN", "ILS",
        "TRY", "KRW", "RUB", "AED", "SAR", "INR", "THB", "TWD", "BRL",
    }
)  # fmt: skip

#: Crypto bases recognised in pair spellings. IB's PAXOS venue lists BTC, ETH,
#: LTC and BCH; the others are accepted so Yahoo can serve them (IB answers
#: "no security definition" for what it does not list, and the data falls back).
CRYPTO_BASES: frozenset[str] = frozenset(
    {"BTC", "ETH", "LTC", "BCH", "SOL", "DOGE", "XRP", "ADA", "AVAX", "LINK", "DOT", "MATIC"}
)

#: Quote currencies accepted for crypto; all map to USD.
CRYPTO_QUOTES: frozenset[str] = frozenset({"USD", "USDT", "USDC"})

_ACCEPTED = (
    "a stock ticker (AAPL, BRK.B), an FX pair (EURUSD, EUR.USD, EUR/USD, EURUSD=X), "
    "a crypto pair (BTC-USD, BTC/USD, BTCUSD, BTCUSDT) or an ib_async Contract"
)

# Roots up to 10 characters: an unknown but plausible ticker must reach the
# sources (an operational "unknown symbol"), not die here as a ValueError.
_STOCK_RE = re.compile(r"^([A-Z][A-Z0-9]{0,9})(?:[.\- /]([A-Z]{1,2}))?$")
_PAIR_RE = re.compile(r"^([A-Z]{2,6})[.\-/ ]([A-Z]{3,4})$")
_YAHOO_FX_RE = re.compile(r"^([A-Z]{3})([A-Z]{3})?=X$")
_LETTERS_RE = re.compile(r"^[A-Z]{4,10}$")

# Contract fields that tell two contracts with one symbol apart.
_CONTRACT_ID_FIELDS = (
    "conId",
    "lastTradeDateOrContractMonth",
    "strike",
    "right",
    "multiplier",
    "primaryExchange",
    "localSymbol",
    "tradingClass",
)

# Text fields of a passed contract, checked before any request carries them.
_CONTRACT_TEXT_FIELDS = (
    "symbol",
    "secType",
    "exchange",
    "currency",
    "primaryExchange",
    "localSymbol",
    "tradingClass",
    "lastTradeDateOrContractMonth",
    "right",
    "multiplier",
)
# Text fields that may also be given as a positive int (ib_async sends them as text).
_CONTRACT_NUMERIC_TEXT = frozenset({"multiplier", "lastTradeDateOrContractMonth"})
_SEC_TYPE_RE = re.compile(r"^[A-Z]{2,8}$")

# Which asset class an ib_async secType maps to; anything else is "contract".
_SEC_TYPE_CLASS = {"STK": "stock", "CASH": "fx", "CRYPTO": "crypto"}


@dataclass(frozen=True)
class Instrument:
    """One tradable thing, as every source needs to see it.

    Attributes:
        symbol: Canonical display symbol: ``AAPL``, ``BRK.B``, ``EURUSD``, ``BTC-USD``.
        asset_class: ``"stock"``, ``"fx"``, ``"crypto"`` or ``"contract"``
            (an ib_async Contract of another secType, used as given).
        ib_symbol: IB's symbol: ``AAPL``, ``BRK B``, ``EUR`` (base currency), ``BTC``.
        sec_type: IB secType: ``STK``, ``CASH``, ``CRYPTO``...
        exchange: IB exchange: ``SMART``, ``IDEALPRO``, ``PAXOS``...
        currency: Quote currency, e.g. ``USD``.
        what_to_show: Historical data type: ``TRADES``, ``MIDPOINT`` (FX:
            TRADES is invalid there) or ``AGGTRADES`` (crypto).
        yahoo_ticker: Yahoo's ticker (``AAPL``, ``BRK-B``, ``EURUSD=X``,
            ``BTC-USD``) or None when Yahoo has no equivalent.
        contract: The ib_async Contract the caller passed, else None. Left out
            of equality and hashing: an unqualified Contract is unhashable.
        contract_key: The passed Contract's identifying fields (conId,
            expiry, strike, right...) as a hashable tuple; empty for text.
    """

    symbol: str
    asset_class: str
    ib_symbol: str
    sec_type: str
    exchange: str
    currency: str
    what_to_show: str
    yahoo_ticker: str | None
    contract: Any = field(default=None, compare=False, hash=False, repr=False)
    contract_key: tuple[Any, ...] = field(default=(), repr=False)

    @property
    def key(self) -> tuple[Any, ...]:
        """A hashable cache key that tells instruments apart.

        For a passed Contract it also carries the fields that distinguish two
        contracts with the same symbol (conId, expiry, strike, right...).
        """
        return (
            self.asset_class,
            self.sec_type,
            self.ib_symbol,
            self.exchange,
            self.currency,
        ) + self.contract_key

    def to_ib_contract(self) -> Contract:
        """Build the ib_async contract (or return the one that was passed).

        Returns:
            ``Stock(ib_symbol, exchange, currency)``, ``Forex(pair)`` or
            ``Crypto(ib_symbol, "PAXOS", "USD")``; a passed Contract as is.
        """
        if self.contract is not None:
            return self.contract
        # Deferred: ib_async costs ~0.2 s to import and most callers never need it.
        from ib_async import Crypto, Forex, Stock

        if self.asset_class == "fx":
            return Forex(self.ib_symbol + self.currency, exchange=self.exchange)
        if self.asset_class == "crypto":
            return Crypto(self.ib_symbol, self.exchange, self.currency)
        return Stock(self.ib_symbol, self.exchange, self.currency)


def parse_symbol(symbol: str | Contract) -> Instrument:
    """Turn what an agent wrote into an :class:`Instrument`.

    Args:
        symbol: Symbol text in any of the spellings listed in the module
            docstring, or an ib_async ``Contract`` (recognised by its
            ``secType`` and ``symbol`` attributes, used as is).

    Returns:
        The instrument; text parses are cached.

    Raises:
        TypeError: ``symbol`` is neither text nor a Contract, or a contract
            field has the wrong type.
        ValueError: the text is empty or not a recognised spelling (the
            message lists the accepted forms), or a contract field is
            malformed. :class:`~ib_nice_funcs.errors.NonAsciiSymbolError`
            (a ValueError) for non-ASCII text.
    """
    if isinstance(symbol, str):
        return _parse_text(symbol)
    if hasattr(symbol, "secType") and hasattr(symbol, "symbol"):
        return _from_contract(_checked_contract(symbol))
    raise TypeError(
        f"symbol must be a str or an ib_async Contract, got {type(symbol).__name__} "
        f"{symbol!r}; pass {_ACCEPTED}"
    )


def unrecognised(symbol: Any) -> str | None:
    """Why ``symbol`` names no instrument, or None when it parses.

    The module-level functions use it to turn symbol *text* that maps to
    nothing (a typo, a Solana mint address) into their failure value instead
    of an exception: agents call them without ``try``.

    Raises:
        TypeError: ``symbol`` is neither text nor a Contract (a programming error).
    """
    try:
        parse_symbol(symbol)
    except ValueError as exc:
        return str(exc)
    return None


def _stock(root: str, klass: str | None) -> Instrument:
    if klass:
        return Instrument(
            symbol=f"{root}.{klass}",
            asset_class="stock",
            ib_symbol=f"{root} {klass}",
            sec_type="STK",
            exchange="SMART",
            currency="USD",
            what_to_show="TRADES",
            yahoo_ticker=f"{root}-{klass}",
        )
    return Instrument(root, "stock", root, "STK", "SMART", "USD", "TRADES", root)


def _fx(base: str, quote: str) -> Instrument:
    pair = base + quote
    return Instrument(pair, "fx", base, "CASH", "IDEALPRO", quote, "MIDPOINT", f"{pair}=X")


def _crypto(base: str) -> Instrument:
    return Instrument(f"{base}-USD", "crypto", base, "CRYPTO", "PAXOS", "USD", "AGGTRADES",
                      f"{base}-USD")  # fmt: skip


def _pair(base: str, quote: str) -> Instrument | None:
    """An FX or crypto instrument for base/quote, or None when neither fits."""
    if base in FX_CURRENCIES and quote in FX_CURRENCIES and base != quote:
        return _fx(base, quote)
    if base in CRYPTO_BASES and quote in CRYPTO_QUOTES:
        return _crypto(base)
    return None


def _refuse_non_ascii(text: str, what: str) -> None:
    if text.isascii():
        return
    odd = next(ch for ch in text if not ch.isascii())
    raise NonAsciiSymbolError(
        f"{what} {text[:40]!r} contains the non-ASCII character {odd!r} (U+{ord(odd):04X}); "
        "tickers are ASCII letters and digits, and upper-casing look-alikes would pick "
        "another ticker: retype it in ASCII"
    )


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Instrument:
    # Before upper(): "ıbm".upper() is "IBM" and "ſpy".upper() is "SPY".
    _refuse_non_ascii(text, "symbol")
    s = text.strip().upper()
    if not s:
        raise ValueError(f"symbol is empty; pass {_ACCEPTED}")
    if len(s) > 16:
        # No accepted spelling is this long; keep the message short for pasted junk.
        raise ValueError(f"symbol {text[:40]!r} is not recognised; pass {_ACCEPTED}")

    m = _YAHOO_FX_RE.match(s)
    if m:
        # Yahoo writes USD-based pairs as just the other currency: JPY=X is USD/JPY.
        base, quote = (m.group(1), m.group(2)) if m.group(2) else ("USD", m.group(1))
        if base in FX_CURRENCIES and quote in FX_CURRENCIES and base != quote:
            return _fx(base, quote)
        raise ValueError(f"symbol {text!r} is not a known FX pair; pass {_ACCEPTED}")

    m = _PAIR_RE.match(s)
    if m:
        inst = _pair(m.group(1), m.group(2))
        if inst is not None:
            return inst

    if _LETTERS_RE.match(s):
        # Concatenated pairs: EURUSD, BTCUSD, BTCUSDT, DOGEUSD. Checked before the
        # stock rule so that a 6-letter FX pair never reads as a ticker.
        for split in (3, 4, 5):
            if len(s) > split:
                inst = _pair(s[:split], s[split:])
                if inst is not None:
                    return inst

    m = _STOCK_RE.match(s)
    if m:
        return _stock(m.group(1), m.group(2))

    raise ValueError(f"symbol {text!r} is not recognised; pass {_ACCEPTED}")


def _checked_contract(contract: Any) -> Any:
    """``contract`` after checking every field a request would carry; a real Contract.

    A duck-typed object (anything with ``secType`` and ``symbol``) is copied
    into an ib_async ``Contract``, so a missing field cannot fail inside
    ib_async after a request went out.

    Raises:
        TypeError: a field of the wrong type.
        ValueError: a malformed field (non-ASCII text, an empty secType...).
    """
    fields: dict[str, Any] = {}
    for name in _CONTRACT_TEXT_FIELDS:
        value = getattr(contract, name, "")
        if value is None:
            value = ""
        # int(value) > 0, not value > 0: typeshed's numbers.Integral does not compare with int.
        if name in _CONTRACT_NUMERIC_TEXT and isinstance(value, numbers.Integral) \
                and not isinstance(value, bool) and int(value) > 0:
            value = str(value)  # multiplier=100, lastTradeDateOrContractMonth=202412
        if not isinstance(value, str):
            raise TypeError(f"contract.{name} must be a str, got {type(value).__name__} {value!r}")
        _refuse_non_ascii(value, f"contract.{name}")
        fields[name] = value
    if not _SEC_TYPE_RE.match(fields["secType"].upper()):
        raise ValueError(
            f"contract.secType must be an IB security type such as STK, CASH, CRYPTO or FUT, "
            f"got {fields['secType']!r}"
        )
    con_id = getattr(contract, "conId", 0) or 0
    if isinstance(con_id, bool) or not isinstance(con_id, numbers.Integral) or con_id < 0:
        raise TypeError(f"contract.conId must be a non-negative int, got {con_id!r}")
    strike = getattr(contract, "strike", 0.0) or 0.0
    if isinstance(strike, bool) or not isinstance(strike, numbers.Real):
        raise TypeError(f"contract.strike must be a number, got {strike!r}")
    if not math.isfinite(float(strike)) or strike < 0:
        raise ValueError(f"contract.strike must be finite and >= 0, got {strike!r}")
    if not (fields["symbol"] or fields["localSymbol"] or con_id):
        raise ValueError("the contract names no instrument: set symbol, localSymbol or conId")
    ib_async = sys.modules.get("ib_async")
    if ib_async is not None and isinstance(contract, ib_async.Contract):
        return contract
    # Deferred: only a duck-typed contract needs ib_async here.
    from ib_async import Contract

    return Contract(conId=int(con_id), strike=float(strike), **fields)


def _from_contract(contract: Any) -> Instrument:
    sec_type = str(getattr(contract, "secType", "") or "").upper()
    sym = str(getattr(contract, "symbol", "") or "")
    currency = str(getattr(contract, "currency", "") or "") or "USD"
    exchange = str(getattr(contract, "exchange", "") or "")
    asset_class = _SEC_TYPE_CLASS.get(sec_type, "contract")
    if asset_class == "stock":
        display = sym.replace(" ", ".")
        yahoo = display.replace(".", "-") if currency == "USD" and display else None
        what, exchange = "TRADES", exchange or "SMART"
    elif asset_class == "fx":
        display = sym + currency
        yahoo = f"{display}=X" if display else None
        what, exchange = "MIDPOINT", exchange or "IDEALPRO"
    elif asset_class == "crypto":
        display = f"{sym}-{currency}"
        yahoo = display if sym else None
        what, exchange = "AGGTRADES", exchange or "PAXOS"
    else:
        display = str(getattr(contract, "localSymbol", "") or "") or sym
        yahoo = None
        what = "TRADES"
    return Instrument(
        symbol=display,
        asset_class=asset_class,
        ib_symbol=sym,
        sec_type=sec_type,
        exchange=exchange,
        currency=currency,
        what_to_show=what,
        yahoo_ticker=yahoo,
        contract=contract,
        contract_key=tuple(_plain(getattr(contract, name, None)) for name in _CONTRACT_ID_FIELDS),
    )


def _plain(value: Any) -> Any:
    """Keep hashable scalars; anything else becomes its repr so the key stays hashable."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def symbol_label(symbol: Any) -> str:
    """``symbol`` as text for messages: the text itself, a contract's ``symbol``, else its repr."""
    return symbol if isinstance(symbol, str) else getattr(symbol, "symbol", repr(symbol))
