"""The cost calculator against examples worked by hand from the seed's schedule.

Schedule (ib_facts.md): stocks $0.005/share, $1.00 minimum, at most 1% of the
trade value; options $0.65/contract ($1.00 minimum per order); $10 monthly
minimum. Non-professional data: US equity bundle $4.50, single exchange $1.50,
waived with $30+ of monthly commissions. Professional: NYSE $50, NASDAQ $24.
"""

from __future__ import annotations

import pytest

from ib_nice_funcs.cli import main
from ib_nice_funcs.costs import (
    commission_usd,
    monthly_data_cost,
    plan_commissions,
    plan_market_data,
)


def test_forty_trades_of_a_hundred_shares():
    # 100 x $0.005 = $0.50, below the $1.00 minimum: $1.00 per order; 40 orders = $40.00.
    plan = plan_commissions(stock_orders=40, shares=100)
    assert plan.stock_per_order == 1.00
    assert plan.commissions == 40.00 and plan.top_up == 0.0 and plan.total == 40.00


def test_a_quiet_month_pays_only_its_commissions():
    # 5 orders x $1.00 = $5.00; IBKR Pro has had no monthly activity fee since 2021.
    plan = plan_commissions(stock_orders=5, shares=100, price=150.0)
    assert plan.commissions == 5.00 and plan.top_up == 0.0 and plan.total == 5.00


def test_big_orders_pay_per_share_and_the_one_percent_cap():
    # 1,000 x $0.005 = $5.00 (1% of $20,000 = $200 does not bite): 20 orders = $100.00.
    assert plan_commissions(20, 1000, 20.0).total == 100.00
    # 100 shares at $0.50: $1.00 minimum, but 1% of $50 = $0.50 caps it.
    assert plan_commissions(1, 100, 0.50).stock_per_order == 0.50
    # Without a price the cap cannot be applied.
    assert plan_commissions(1, 100).stock_per_order == 1.00


def test_option_orders():
    # 2 contracts x $0.65 = $1.30 per order; 10 orders = $13.00.
    plan = plan_commissions(option_orders=10, contracts=2)
    assert plan.option_per_order == 1.30 and plan.total == 13.00
    # One contract: $0.65 is below the $1.00 per-order minimum.
    assert plan_commissions(option_orders=12, contracts=1).total == 12.00


def test_two_nasdaq_stocks_need_one_single_exchange_then_waived():
    # AAPL and MSFT list on NASDAQ: $1.50 beats the $4.50 bundle; $40 of commissions waive it.
    plan = plan_market_data(["AAPL", "MSFT"], monthly_commissions=40.0)
    assert [line.key for line in plan.lines] == ["nasdaq"]
    assert plan.singles_cost == 1.50 and plan.bundle_cost == 4.50
    assert plan.choice == "single exchanges" and plan.gross == 1.50
    assert plan.waived and plan.total == 0.0
    assert plan_market_data(["AAPL", "MSFT"], monthly_commissions=29.99).total == 1.50


def test_three_networks_cost_the_same_as_the_bundle_which_wins():
    # AAPL (NASDAQ) + IBM (NYSE) + SPY (Arca, network B) = 3 x $1.50 = $4.50 = the bundle.
    plan = plan_market_data(["AAPL", "IBM", "SPY", "EURUSD", "BTC-USD"], monthly_commissions=10.0)
    assert plan.singles_cost == 4.50 and plan.choice == "bundle" and plan.total == 4.50
    assert plan.free == ("EURUSD", "BTC-USD")
    assert plan.lines[0].symbols == ("AAPL", "IBM", "SPY")


def test_professionals_pay_per_exchange_without_waiver():
    # NASDAQ $24 + NYSE $50 = $74; no bundle, no waiver even at $100 of commissions.
    plan = plan_market_data(["AAPL", "IBM"], professional=True, monthly_commissions=100.0)
    assert plan.bundle_cost is None and plan.choice == "single exchanges"
    assert plan.total == 74.00 and not plan.waived


def test_unknown_listings_and_explicit_exchanges():
    # Unknown listing: counted on all three networks -> the bundle.
    assert plan_market_data(["ZZZZ"]).choice == "bundle"
    assert plan_market_data(["ZZZZ"]).assumed == ("ZZZZ",)
    # Told it lists on NYSE: one single exchange, $1.50.
    plan = plan_market_data(["ZZZZ"], listings={"ZZZZ": "NYSE"})
    assert plan.total == 1.50 and plan.assumed == ()
    # Exchanges asked for directly.
    assert plan_market_data(exchanges=["NYSE", "NASDAQ"]).total == 3.00
    with pytest.raises(ValueError, match="NASDAQ"):
        plan_market_data(exchanges=["MOON"])


def test_plans_agree_with_the_single_order_functions():
    assert plan_commissions(1, 250, 40.0).stock_per_order == commission_usd("STK", 250, 40.0)
    assert (monthly_data_cost(["nasdaq"], 10.0)
            == plan_market_data(["MSFT"], monthly_commissions=10.0).total)


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError):
        plan_commissions(stock_orders=-1)
    with pytest.raises(ValueError):
        plan_commissions(stock_orders=2.5)
    with pytest.raises(ValueError):
        plan_market_data(["AAPL"], monthly_commissions=-5)


def test_costs_command_prints_the_breakdown(capsys):
    assert main(["costs", "AAPL", "MSFT", "--trades", "40", "--shares", "100"]) == 0
    out = capsys.readouterr().out
    assert "40 stock orders x 100 shares at $1.00 each" in out
    assert "NASDAQ (Network C): AAPL, MSFT" in out
    assert "waived: commissions $40.00 >= $30.00" in out
    assert "Total per month: $40.00" in out


def test_costs_command_with_a_quiet_month_and_listings(capsys):
    argv = ["costs", "AAPL", "IBM", "SPY", "ZZZZ", "--trades", "5", "--price", "150",
            "--exchange", "ZZZZ=NYSE"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "no monthly minimum" in out and "as checked on 20" in out
    assert "US equity + options bundle: AAPL, IBM, SPY, ZZZZ" in out
    assert "Total per month: $9.50" in out  # $5.00 commissions + $4.50 bundle


def test_costs_command_rejects_a_bad_exchange(capsys):
    assert main(["costs", "AAPL", "--exchange", "MOON"]) == 1
    assert "unknown exchange" in capsys.readouterr().err
