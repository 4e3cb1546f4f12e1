"""The Moon Dev agents' call shapes, through the three faces, against the simulator.

Each test makes the calls the public agents make (trading_agent, risk_agent,
strategy_agent, exchange_manager), with their argument shapes, and checks the
simulator's book through a second API client: positions change as the agent
meant, and bad input gives the original's failure value with one WARNING.
"""

from __future__ import annotations

import math

import pytest

import ib_nice_funcs as n
from ib_nice_funcs import aster, hyperliquid
from ib_nice_funcs.config import USDC_MINT

MINT = "9BB6NFEcjBCtnNLFko2FqVQBq8HHM13kCyYcdQbgpump"
PERP_KEYS = {"position_amount", "entry_price", "mark_price", "pnl", "pnl_percentage", "is_long"}


@pytest.fixture
def agent_sim(tsim, new_client_id):
    """The module-level faces on a fresh simulator (market open), limits an agent can size into."""
    n.configure(host="127.0.0.1", port=tsim.port, client_id=new_client_id(), sources="ib",
                timeout=10, max_position_usd=200_000, max_exposure_usd=400_000,
                clock=tsim.sim.market.clock)
    return tsim


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def held_usd(observer, handle, symbol):
    return observer(handle).get_token_balance_usd(symbol)


# -- the SOLANA-shaped face: from src import nice_funcs as n ----------------------------------


def test_ai_entry_tops_up_to_the_target_in_chunks_and_is_truthy(agent_sim, observer):
    n.configure(max_order_usd=400)
    result = n.ai_entry("BTC-USD", 1_000)  # trading_agent: n.ai_entry(token, position_size)
    assert result and result["success"] is True
    assert 970 <= held_usd(observer, agent_sim, "BTC-USD") <= 1_000
    assert len(result["orders"]) == 3
    assert all(o["filled_qty"] * o["avg_price"] <= 400 + 1e-6 for o in result["orders"])
    again = n.ai_entry("BTC-USD", 1_000)  # at the target already: nothing sent, still success
    assert again and again["orders"] == []


def test_the_agents_cash_reads_the_accounts_cash(agent_sim, observer):
    cash = observer(agent_sim).get_cash()
    assert cash > 0
    for spelling in (USDC_MINT, "USDC", "usd"):
        assert n.get_token_balance_usd(spelling) == pytest.approx(cash)
    n.configure(cash_symbols="DOLLARS")
    assert n.get_token_balance_usd("DOLLARS") == pytest.approx(cash)


def test_wallet_holdings_frame_maps_positions_and_cash(agent_sim, observer):
    n.market_buy("AAPL", 2_000)
    n.market_buy("BTC-USD", 1_500)
    wallet = n.fetch_wallet_holdings_og("4wgfCBf2WwLSRKLef9iW7JXZ2AfkxUxGM4XcKpHm3Sin")
    assert list(wallet.columns) == ["Mint Address", "Amount", "USD Value"]
    rows = wallet.set_index("Mint Address")
    assert set(rows.index) == {USDC_MINT, "AAPL", "BTC-USD"}
    assert rows.loc["AAPL", "Amount"] == observer(agent_sim).get_position("AAPL")["quantity"]
    # The cash row is IB's TotalCashValue; account updates stream in, so it may
    # not reflect the last fill yet: between the cash after both buys and before them.
    cash_row = rows.loc[USDC_MINT, "USD Value"]
    assert 1_000_000 - 3_600 <= cash_row <= 1_000_000 - 1_900
    # The risk agent's filter and sum.
    monitored = wallet[wallet["Mint Address"].isin(["AAPL", "BTC-USD"])
                       & ~wallet["Mint Address"].isin([USDC_MINT])]
    assert monitored["USD Value"].sum() == pytest.approx(
        held_usd(observer, agent_sim, "AAPL") + held_usd(observer, agent_sim, "BTC-USD"), rel=1e-3)
    single = n.fetch_wallet_token_single("addr", "AAPL")
    assert single["Mint Address"].tolist() == ["AAPL"]


def test_chunk_kill_with_three_dollar_children_closes_the_whole_position(agent_sim, book):
    n.market_buy("BTC-USD", 1_000)
    result = n.chunk_kill("BTC-USD", 3, 199)  # trading_agent / risk_agent: max_usd_order_size=3
    # copybot: if success
    assert result and result["success"] is True and result["remaining_qty"] == 0
    # more children than the old cap, none above $3 + one increment
    assert len(result["chunks"]) > 100
    assert "BTC-USD" not in book(agent_sim)


def test_close_all_positions_flattens_the_account(agent_sim, book):
    n.market_buy("AAPL", 1_000)
    n.market_buy("ETH-USD", 500)
    result = n.close_all_positions()
    assert result["success"] is True and len(result["closed"]) == 2
    assert book(agent_sim) == {}


def test_get_position_is_a_superset_with_the_perp_keys(agent_sim):
    n.market_buy("AAPL", 1_000)
    pos = n.get_position("AAPL")
    assert PERP_KEYS <= set(pos) and {"has_position", "quantity", "avg_cost"} <= set(pos)
    assert pos["position_amount"] == pos["quantity"] > 0 and pos["is_long"] is True
    assert pos["mark_price"] == pos["current_price"] and pos["pnl"] == pos["unrealized_pnl"]
    flat = n.get_position("MSFT")
    assert flat["position_amount"] == 0 and flat["is_long"] is False


@pytest.mark.parametrize("call, failure", [
    (lambda s: n.token_price(s), None),
    (lambda s: n.get_token_balance_usd(s), 0.0),
    (lambda s: bool(n.ai_entry(s, 100)), False),
    (lambda s: n.market_buy(s, 100, 199)["success"], False),
    (lambda s: n.market_sell(s, 100)["success"], False),
    (lambda s: bool(n.chunk_kill(s, 3, 199)), False),
    (lambda s: n.kill_switch(s)["success"], False),
    (lambda s: n.get_position(s)["known"], False),
    (lambda s: n.get_data(s, 0.33, "15m").empty, True),
    (lambda s: n.get_ohlcv_data(s, "1h", 1).empty, True),
    (lambda s: n.fetch_wallet_token_single("addr", s).empty, True),
    (lambda s: aster.get_position(s), None),
    (lambda s: aster.token_price(s), 0),
    (lambda s: aster.ai_entry(s, 100, leverage=9), False),
    (lambda s: aster.chunk_kill(s, 3, 199), False),
    (lambda s: aster.open_short(s, 100, 0, leverage=9), None),
    (lambda s: hyperliquid.get_current_price(s), 0.0),
    (lambda s: hyperliquid.get_position(s, object())[1], False),
    (lambda s: hyperliquid.get_data(symbol=s, timeframe="1h", bars=10).empty, True),
])
@pytest.mark.parametrize("symbol", ["ZZQXNOTREAL", MINT, "BTC USD?!"])
def test_symbol_text_that_names_nothing_gives_the_failure_value_and_one_warning(
        agent_sim, observer, sim_open_orders, caplog, call, failure, symbol):
    caplog.set_level("WARNING", logger="ib_nice_funcs")
    assert call(symbol) == failure
    assert len(warnings(caplog)) == 1
    assert sim_open_orders(agent_sim) == [] and observer(agent_sim).get_all_positions() == []


def test_a_zero_amount_is_a_failure_value_and_bad_amounts_raise(agent_sim, sim_open_orders, caplog):
    caplog.set_level("WARNING", logger="ib_nice_funcs")
    assert not n.ai_entry("AAPL", 0)  # an agent with no cash sizes its entry at 0
    assert n.market_buy("AAPL", 0)["success"] is False
    assert aster.ai_entry("BTC", 0, leverage=9) is False
    assert hyperliquid.market_buy("BTC", 0, None) is None
    assert len(warnings(caplog)) == 4
    for bad in (-5, math.nan, math.inf):
        with pytest.raises(ValueError):
            n.ai_entry("AAPL", bad)
        with pytest.raises(ValueError):
            aster.market_buy("BTC", bad, 0, leverage=9)
    with pytest.raises(TypeError):
        n.ai_entry("AAPL", "100")
    with pytest.raises(ValueError):
        aster.ai_entry("BTC", 100, leverage=0)
    with pytest.raises(TypeError):
        n.get_token_balance_usd(12345)
    assert sim_open_orders(agent_sim) == []


def test_a_risk_breach_refuses_the_entry_falsy_and_sends_nothing(agent_sim, book, caplog):
    caplog.set_level("WARNING", logger="ib_nice_funcs")
    n.configure(max_position_usd=1_000)
    assert not n.ai_entry("AAPL", 5_000)  # the agents' 90% x leverage sizing, refused
    assert "AAPL" not in book(agent_sim)
    assert any("ai_entry" in w for w in warnings(caplog))


# -- the Aster face: from src import nice_funcs_aster as n ------------------------------------


def test_aster_face_entries_exits_and_shorts(agent_sim, observer, book):
    assert aster.ai_entry("BTC", 900, leverage=9) is True
    pos = aster.get_position("BTC")
    assert PERP_KEYS <= set(pos) and pos["position_amount"] > 0 and pos["is_long"] is True
    size = abs(pos["position_amount"]) * pos["mark_price"]
    assert aster.get_token_balance_usd("BTC") == pytest.approx(size)
    # monitor_position_pnl's exit: limit_sell(token, position_size, slippage=0, leverage=9)
    assert aster.limit_sell("BTC", size / 3, slippage=0, leverage=9) is not None
    assert held_usd(observer, agent_sim, "BTC-USD") == pytest.approx(size * 2 / 3, rel=0.05)
    assert aster.chunk_kill("BTC", 100, 199) is True
    assert "BTC-USD" not in book(agent_sim)
    # LONG_ONLY=False: a SELL with no position opens a short (a stock; IB refuses crypto shorts)
    assert aster.open_short("AAPL", 2_000, 199, leverage=9) is not None
    assert aster.get_position("AAPL")["position_amount"] < 0
    assert aster.open_short("BTC", 500, 199, leverage=9) is None
    assert aster.chunk_kill("AAPL", 500, 199) is True  # covers the short
    assert book(agent_sim) == {}
    balance = aster.get_account_balance()
    assert set(balance) == {"available", "total_equity", "position_margin", "unrealized_pnl"}
    assert balance["total_equity"] == pytest.approx(observer(agent_sim).get_account_value())


def test_aster_market_sell_out_of_a_long_never_flips_it_short(agent_sim, book):
    aster.market_buy("AAPL", 1_000, 0, leverage=9)
    held = book(agent_sim)["AAPL"]
    assert aster.market_sell("AAPL", 50_000, 199, leverage=9) is not None  # more than held
    assert "AAPL" not in book(agent_sim) and held > 0


# -- the HyperLiquid face: from src import nice_funcs_hyperliquid as n --------------------------


def test_hyperliquid_face_call_shapes(agent_sim, book):
    account = hyperliquid._get_account_from_env()
    assert hyperliquid.ai_entry("ETH", 800, leverage=9) is True
    positions, im_in_pos, pos_size, pos_sym, entry_px, pnl_perc, is_long = \
        hyperliquid.get_position("ETH", account)
    assert im_in_pos is True and pos_sym == "ETH" and pos_size > 0 and is_long is True
    assert positions[0]["coin"] == "ETH" and entry_px > 0
    as_dict = hyperliquid.get_position("ETH")  # the trading agent's one-argument call
    assert as_dict["position_amount"] == pytest.approx(pos_size)
    assert hyperliquid.get_token_balance_usd("ETH") > 700
    assert hyperliquid.get_all_positions(account)[0]["symbol"] == "ETH-USD"
    assert hyperliquid.market_sell("ETH", 200, account) is not None
    assert hyperliquid.get_account_value(account) > 0 and hyperliquid.get_balance(account) > 0
    assert hyperliquid.kill_switch("ETH", account) is not None
    assert hyperliquid.get_position("ETH", account)[1] is False
    assert hyperliquid.kill_switch("ETH", account) is None  # flat: nothing to close
    assert book(agent_sim) == {}
