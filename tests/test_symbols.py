"""Symbol parsing: every documented spelling, Contracts as given, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs.symbols import (
    CRYPTO_BASES,
    CRYPTO_QUOTES,
    FX_CURRENCIES,
    Instrument,
    parse_symbol,
)

FX = sorted(FX_CURRENCIES)
CRYPTO = sorted(CRYPTO_BASES)


def _random_case(draw, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.lower() if f else c.upper() for c, f in zip(text, flips, strict=True))


@st.composite
def fx_spellings(draw):
    base, quote = draw(st.sampled_from(FX)), draw(st.sampled_from(FX))
    if base == quote:
        quote = "USD" if base != "USD" else "EUR"
    sep = draw(st.sampled_from(["", ".", "/", "-", " "]))
    text = f"{base}{sep}{quote}"
    if sep == "" and draw(st.booleans()):
        text += "=X"
    pad = draw(st.sampled_from(["", " ", "\t"]))
    return base, quote, pad + _random_case(draw, text) + pad


@st.composite
def crypto_spellings(draw):
    base = draw(st.sampled_from(CRYPTO))
    quote = draw(st.sampled_from(sorted(CRYPTO_QUOTES)))
    sep = draw(st.sampled_from(["", "-", "/", "."]))
    return base, _random_case(draw, f"{base}{sep}{quote}")


@st.composite
def stock_spellings(draw):
    # Up to 5 letters: a concatenated FX/crypto pair needs at least 6.
    root = draw(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=5))
    klass = draw(st.one_of(st.none(), st.sampled_from(["A", "B", "PR"])))
    sep = draw(st.sampled_from([".", "-", " ", "/"]))
    text = root if klass is None else f"{root}{sep}{klass}"
    return root, klass, _random_case(draw, text)


@given(fx_spellings())
def test_fx_spellings_map_to_one_cash_contract(case):
    base, quote, text = case
    inst = parse_symbol(text)
    assert inst.asset_class == "fx"
    assert inst.symbol == base + quote
    assert (inst.ib_symbol, inst.currency) == (base, quote)
    assert (inst.sec_type, inst.exchange, inst.what_to_show) == ("CASH", "IDEALPRO", "MIDPOINT")
    assert inst.yahoo_ticker == f"{base}{quote}=X"


@given(crypto_spellings())
def test_crypto_spellings_map_to_paxos_usd(case):
    base, text = case
    inst = parse_symbol(text)
    assert inst.asset_class == "crypto"
    assert inst.symbol == f"{base}-USD"
    assert (inst.ib_symbol, inst.currency) == (base, "USD")
    assert (inst.sec_type, inst.exchange, inst.what_to_show) == ("CRYPTO", "PAXOS", "AGGTRADES")
    assert inst.yahoo_ticker == f"{base}-USD"


@given(stock_spellings())
def test_stock_spellings(case):
    root, klass, text = case
    inst = parse_symbol(text)
    assert inst.asset_class == "stock"
    assert (inst.sec_type, inst.exchange, inst.currency, inst.what_to_show) == (
        "STK", "SMART", "USD", "TRADES"
    )  # fmt: skip
    if klass is None:
        assert inst.symbol == inst.ib_symbol == inst.yahoo_ticker == root
    else:
        assert inst.symbol == f"{root}.{klass}"
        assert inst.ib_symbol == f"{root} {klass}"
        assert inst.yahoo_ticker == f"{root}-{klass}"


@pytest.mark.parametrize(
    "text, symbol, ib_symbol, yahoo",
    [
        ("AAPL", "AAPL", "AAPL", "AAPL"),
        (" aapl ", "AAPL", "AAPL", "AAPL"),
        ("BRK.B", "BRK.B", "BRK B", "BRK-B"),
        ("BRK-B", "BRK.B", "BRK B", "BRK-B"),
        ("BRK B", "BRK.B", "BRK B", "BRK-B"),
        ("EURUSD", "EURUSD", "EUR", "EURUSD=X"),
        ("EUR.USD", "EURUSD", "EUR", "EURUSD=X"),
        ("EUR/USD", "EURUSD", "EUR", "EURUSD=X"),
        ("EURUSD=X", "EURUSD", "EUR", "EURUSD=X"),
        ("eurusd", "EURUSD", "EUR", "EURUSD=X"),
        ("JPY=X", "USDJPY", "USD", "USDJPY=X"),
        ("BTC-USD", "BTC-USD", "BTC", "BTC-USD"),
        ("BTC/USD", "BTC-USD", "BTC", "BTC-USD"),
        ("BTCUSD", "BTC-USD", "BTC", "BTC-USD"),
        ("BTCUSDT", "BTC-USD", "BTC", "BTC-USD"),
        ("BTC-USDT", "BTC-USD", "BTC", "BTC-USD"),
        ("ETHUSD", "ETH-USD", "ETH", "ETH-USD"),
        ("ltc-usdc", "LTC-USD", "LTC", "LTC-USD"),
        ("BCHUSD", "BCH-USD", "BCH", "BCH-USD"),
        # A bare crypto code is a stock ticker (BTC is an NYSE Arca ETF).
        ("BTC", "BTC", "BTC", "BTC"),
        # Unknown but plausible tickers parse; the sources say they are unknown.
        ("NOPEZZ", "NOPEZZ", "NOPEZZ", "NOPEZZ"),
        ("EURXYZ", "EURXYZ", "EURXYZ", "EURXYZ"),
    ],
)
def test_documented_examples(text, symbol, ib_symbol, yahoo):
    inst = parse_symbol(text)
    assert (inst.symbol, inst.ib_symbol, inst.yahoo_ticker) == (symbol, ib_symbol, yahoo)


def test_to_ib_contract_builds_the_right_ib_async_contracts():
    from ib_async import Contract

    stock = parse_symbol("BRK.B").to_ib_contract()
    assert (stock.secType, stock.symbol, stock.exchange, stock.currency) == (
        "STK", "BRK B", "SMART", "USD"
    )  # fmt: skip
    fx = parse_symbol("EUR/USD").to_ib_contract()
    assert (fx.secType, fx.symbol, fx.currency, fx.exchange) == ("CASH", "EUR", "USD", "IDEALPRO")
    crypto = parse_symbol("BTCUSDT").to_ib_contract()
    assert (crypto.secType, crypto.symbol, crypto.exchange, crypto.currency) == (
        "CRYPTO", "BTC", "PAXOS", "USD"
    )  # fmt: skip
    assert all(isinstance(c, Contract) for c in (stock, fx, crypto))


def test_contract_is_accepted_as_is():
    from ib_async import Contract, Forex, Future, Stock

    fut = Future("ES", "202412", "CME")
    inst = parse_symbol(fut)
    assert inst.contract is fut and inst.to_ib_contract() is fut
    assert inst.asset_class == "contract" and inst.sec_type == "FUT"
    assert inst.yahoo_ticker is None

    stk = Stock("BRK B", "SMART", "USD")
    s = parse_symbol(stk)
    assert (s.asset_class, s.symbol, s.yahoo_ticker) == ("stock", "BRK.B", "BRK-B")

    fx = parse_symbol(Forex("GBPUSD"))
    assert (fx.asset_class, fx.symbol, fx.what_to_show, fx.yahoo_ticker) == (
        "fx", "GBPUSD", "MIDPOINT", "GBPUSD=X"
    )  # fmt: skip

    # Two futures with one symbol but different expiries must not share a cache key.
    other = parse_symbol(Future("ES", "202503", "CME"))
    assert inst.key != other.key
    assert hash(inst.key) != hash(other.key) or inst.key != other.key
    # Unqualified contracts are unhashable in ib_async; the instrument still hashes.
    with pytest.raises(ValueError):
        hash(Contract(secType="FUT", symbol="ES"))
    hash(inst)
    hash(inst.key)


def test_duck_typed_contract_without_ib_async():
    class FakeContract:
        secType = "CRYPTO"
        symbol = "ETH"
        currency = "USD"
        exchange = "PAXOS"

    inst = parse_symbol(FakeContract())
    assert (inst.asset_class, inst.symbol, inst.what_to_show) == ("crypto", "ETH-USD", "AGGTRADES")


def test_text_and_contract_keys_match_for_the_same_stock():
    assert parse_symbol("AAPL").key[:5] == ("stock", "STK", "AAPL", "SMART", "USD")
    assert parse_symbol("aapl") == parse_symbol("AAPL")
    assert parse_symbol("EUR/USD").key == parse_symbol("EURUSD=X").key
    assert parse_symbol("BTCUSDT").key == parse_symbol("BTC-USD").key
    assert parse_symbol("AAPL").key != parse_symbol("MSFT").key


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "\t\n", "EUR/XYZ", "BTC-EUR", "!!!", "12345", "AAPL$", "TOOLONGNAME1",
     "A.BCD", "BRK..B", "1AAPL", "x" * 1000],
)  # fmt: skip
def test_garbage_raises_value_error_naming_the_forms(bad):
    with pytest.raises(ValueError) as err:
        parse_symbol(bad)
    msg = str(err.value)
    assert "symbol" in msg
    assert "EURUSD" in msg and "BTC-USD" in msg and "AAPL" in msg
    assert len(msg) < 400


@pytest.mark.parametrize("bad", [None, 42, 1.5, b"AAPL", ["AAPL"], True])
def test_wrong_type_raises_type_error(bad):
    with pytest.raises(TypeError, match="symbol must be a str"):
        parse_symbol(bad)


@given(st.text(max_size=30))
def test_any_text_parses_or_raises_value_error(text):
    try:
        inst = parse_symbol(text)
    except ValueError:
        return
    assert isinstance(inst, Instrument)
    assert inst.asset_class in ("stock", "fx", "crypto")
    # Parsing the canonical form gives the same instrument back.
    assert parse_symbol(inst.symbol) == inst


def test_text_parses_are_cached():
    a = parse_symbol("MSFT")
    assert parse_symbol("MSFT") is a


def test_importing_symbols_imports_nothing_heavy():
    code = (
        "import sys, ib_nice_funcs.symbols as s; s.parse_symbol('AAPL');"
        "heavy = [m for m in ('pandas', 'numpy', 'ib_async', 'yfinance', 'requests')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # The package __init__ may import its own light modules; none of these.
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
