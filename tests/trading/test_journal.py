"""The trade journal against the paper simulator: one row per order event, never in the way."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from ib_nice_funcs.errors import LiveTradingDisabledError, RiskLimitError
from ib_nice_funcs.trade_journal.api import read_journal
from ib_nice_funcs.trading import NoPositionError


@pytest.fixture
def journaled(tsim, make_client, tmp_path):
    """A Trader on a fresh simulator writing to a journal of the test's own, as agent 'alpha'."""
    path = tmp_path / "journal.sqlite3"
    client = make_client(tsim, journal=str(path), agent="alpha")
    return client.trading


def rows(trader, **kw):
    return read_journal(settings=trader.client.settings, **kw)


def settled_rows(trader, timeout: float = 10.0):
    """The journal once every fill in it has its commission row (IB reports the
    commission after the execution; the order call returns at the fill)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        frame = rows(trader)
        fills = set(frame.loc[frame["kind"] == "fill", "exec_id"])
        paid = set(frame.loc[frame["kind"] == "commission", "exec_id"])
        if fills <= paid or time.monotonic() > deadline:
            return frame
        time.sleep(0.02)  # the next poll of the file; the condition above decides


def test_a_market_buy_leaves_sent_status_fill_and_commission_rows(journaled):
    trader = journaled
    arrival = trader.client.price("AAPL")
    result = trader.market_buy("AAPL", 1000)
    frame = settled_rows(trader)
    coid = result["client_order_id"]
    mine = frame[frame["client_order_id"] == coid]
    assert {"sent", "status", "fill", "commission"} <= set(mine["kind"])
    sent = mine[mine["kind"] == "sent"].iloc[0]
    assert sent["agent"] == "alpha" and sent["symbol"] == "AAPL" and sent["side"] == "BUY"
    assert sent["quantity"] == result["filled_qty"] and sent["order_id"] == result["order_id"]
    assert sent["arrival_price"] == pytest.approx(arrival, rel=0.01)  # the quote then
    arrival = sent["arrival_price"]
    fills = mine[mine["kind"] == "fill"]
    assert fills["quantity"].sum() == result["filled_qty"]
    assert fills["exec_id"].notna().all() and fills["fill_time"].notna().all()
    for _, fill in fills.iterrows():
        expected = (fill["price"] - arrival) / arrival * 10_000
        assert fill["slippage_bps"] == pytest.approx(expected)
    commissions = mine[mine["kind"] == "commission"]
    assert set(commissions["exec_id"]) == set(fills["exec_id"])
    assert (commissions["commission"] > 0).all()
    assert "Filled" in set(mine.loc[mine["kind"] == "status", "status"])


def test_a_sell_slippage_is_positive_when_below_arrival(journaled):
    trader = journaled
    trader.market_buy("MSFT", 2000)
    sold = trader.market_sell("MSFT")
    frame = rows(trader)
    fill = frame[(frame["kind"] == "fill") & (frame["client_order_id"] == sold["client_order_id"])]
    sent = frame[(frame["kind"] == "sent") & (frame["client_order_id"] == sold["client_order_id"])]
    arrival = sent["arrival_price"].iloc[0]
    assert arrival > 0
    for _, row in fill.iterrows():
        assert row["side"] == "SELL"
        assert row["slippage_bps"] == pytest.approx((arrival - row["price"]) / arrival * 10_000)


def test_a_resting_order_records_each_status_change(journaled, tsim, wait_status):
    trader = journaled
    price = trader.client.price("ETH-USD")
    placed = trader.limit_buy("ETH-USD", 500, round(price * 0.8, 2))
    assert trader.cancel_order(placed["order_id"])["success"]
    coid = placed["client_order_id"]
    trader.journal.writer.flush()
    frame = rows(trader)
    statuses = list(frame[(frame["kind"] == "status") & (frame["client_order_id"] == coid)]
                    ["status"])
    assert statuses[-1] == "Cancelled" and "Submitted" in statuses
    assert len(statuses) == len(set(statuses))  # a change is recorded once
    assert frame[(frame["kind"] == "fill") & (frame["client_order_id"] == coid)].empty


def test_refusals_are_recorded_with_their_reason(journaled, tsim):
    trader = journaled
    with pytest.raises(RiskLimitError):
        trader.market_buy("AAPL", 20_000)  # over max_position_usd (10,000)
    with pytest.raises(NoPositionError):
        trader.market_sell("MSFT")
    frame = rows(trader)
    refused = frame[frame["kind"] == "refused"]
    assert list(refused["reason"]) == ["risk:max_position_usd", "no_position"]
    assert list(refused["symbol"]) == ["AAPL", "MSFT"]
    assert refused["detail"].str.len().min() > 10
    assert tsim.sim.order_count == 0


def test_a_refusal_before_the_order_is_planned_is_recorded(tsim, make_client, tmp_path):
    """The live-account guard refuses before sizing: the journal still shows it."""
    client = make_client(tsim, journal=str(tmp_path / "journal.sqlite3"), agent="alpha",
                         account="U1234567")  # a live account; allow_live is off
    with pytest.raises(LiveTradingDisabledError):
        client.trading.market_buy("AAPL", 500)
    frame = rows(client.trading)
    refused = frame[frame["kind"] == "refused"]
    assert list(refused["reason"]) == ["live_disabled"]
    assert list(refused["symbol"]) == ["AAPL"]
    assert tsim.sim.order_count == 0


def test_journal_filters_by_agent_and_since(journaled):
    trader = journaled
    trader.market_buy("AAPL", 500)
    assert set(rows(trader, agent="alpha")["agent"]) == {"alpha"}
    assert rows(trader, since="1s").shape[0] <= rows(trader).shape[0]
    later = trader.client.settings.clock() + 3600
    assert rows(trader, since=later).empty
    with pytest.raises(ValueError, match="agents seen: alpha"):
        rows(trader, agent="beta")
    with pytest.raises(ValueError, match="duration back from now"):
        rows(trader, since="last tuesday")


def test_a_corrupt_journal_warns_once_and_trading_goes_on(tsim, make_client, tmp_path, caplog):
    path = tmp_path / "broken.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    trader = make_client(tsim, journal=str(path)).trading
    with caplog.at_level(logging.WARNING, logger="ib_nice_funcs"):
        assert trader.market_buy("AAPL", 500)["success"]
        assert trader.market_sell("AAPL")["success"]
        trader.journal.writer.flush()
    warnings = [r for r in caplog.records if "journal" in r.getMessage()]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()


def test_a_locked_journal_never_holds_up_an_order(tsim, make_client, tmp_path, caplog):
    path = tmp_path / "locked.sqlite3"
    trader = make_client(tsim, journal=str(path)).trading
    assert trader.market_buy("AAPL", 300)["success"]
    trader.journal.writer.flush()
    holder = sqlite3.connect(str(path))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert trader.market_sell("AAPL")["success"]  # the writer waits, not the order
    finally:
        holder.rollback()
        holder.close()
    assert trader.journal.writer.flush(10)
    assert "sent" in set(rows(trader)["kind"])


def test_journal_off_writes_nothing(tsim, make_client, tmp_path):
    trader = make_client(tsim, journal="off").trading
    assert trader.journal.writer is None
    assert trader.market_buy("AAPL", 300)["success"]
    assert read_journal(settings=trader.client.settings).empty


def test_report_matches_the_fills(journaled, tmp_path, capsys):
    import json

    from ib_nice_funcs.cli import main

    trader = journaled
    first = trader.market_buy("AAPL", 1000)
    second = trader.market_buy("AAPL", 600)
    sold = trader.market_sell("AAPL")
    with pytest.raises(RiskLimitError):
        trader.market_buy("MSFT", 50_000)
    frame = settled_rows(trader)
    arrivals = frame[frame["kind"] == "sent"].set_index("client_order_id")["arrival_price"]
    # Independently, from the order results: average cost of the buys against the sale.
    bought = [(r["filled_qty"], r["avg_price"]) for r in (first, second)]
    qty = sum(q for q, _ in bought)
    assert sold["filled_qty"] == qty
    expected_pnl = qty * sold["avg_price"] - sum(q * p for q, p in bought)
    slips = []
    for res, sign in ((first, 1), (second, 1), (sold, -1)):
        arrival = arrivals[res["client_order_id"]]
        slips.append((sign * (res["avg_price"] - arrival) / arrival * 10_000, res["filled_qty"]))
    expected_avg_slip = sum(s * q for s, q in slips) / sum(q for _, q in slips)

    path = trader.client.settings.journal
    assert main(["report", "--journal", path, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    aapl = next(g for g in report["by_symbol"] if g["key"] == "AAPL")
    assert aapl["realized_pnl"] == pytest.approx(expected_pnl, abs=1e-6)
    assert aapl["orders_sent"] == 3 and aapl["orders_filled"] == 3 and aapl["fill_rate"] == 1.0
    assert aapl["position"] == pytest.approx(0.0)
    assert aapl["avg_slippage_bps"] == pytest.approx(expected_avg_slip, abs=1e-6)
    assert aapl["worst_slippage_bps"] == pytest.approx(max(s for s, _ in slips), abs=1e-6)
    assert aapl["commissions"] > 0
    assert aapl["net_pnl"] == pytest.approx(aapl["realized_pnl"] - aapl["commissions"])
    msft = next(g for g in report["by_symbol"] if g["key"] == "MSFT")
    assert msft["refusals"] == {"risk:max_position_usd": 1} and msft["orders_sent"] == 0
    assert [g["key"] for g in report["by_agent"]] == ["alpha"]
    assert report["refusals"] == {"risk:max_position_usd": 1}
    # The month is the code's clock's (the simulator's market clock here).
    from pathlib import Path

    from ib_nice_funcs.trade_journal.cli import report_for

    costs = report_for(Path(path), trader.client.settings.clock())["month_costs"]
    assert costs["orders"] == 3 and costs["commissions_paid"] == pytest.approx(
        aapl["commissions"], abs=0.01)
    assert costs["commissions_schedule"] > 0 and costs["schedule_date"]

    assert main(["report", "--journal", path]) == 0
    text = capsys.readouterr().out
    assert "AAPL" in text and "alpha" in text and "risk:max_position_usd" in text
    assert main(["report", "--journal", path, "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("group,key,orders_sent")


def test_report_errors_name_the_accepted_forms(journaled, capsys):
    from ib_nice_funcs.cli import main

    trader = journaled
    trader.market_buy("AAPL", 300)
    path = trader.client.settings.journal
    assert main(["report", "--journal", path, "--since", "a while ago"]) == 1
    assert "duration back from now" in capsys.readouterr().err
    assert main(["report", "--journal", path, "--agent", "nobody"]) == 1
    assert "agents seen: alpha" in capsys.readouterr().err


def test_report_says_what_it_could_not_read(tmp_path, capsys):
    from ib_nice_funcs.cli import main

    path = tmp_path / "corrupt.sqlite3"
    path.write_bytes(b"not sqlite at all" * 200)
    assert main(["report", "--journal", str(path)]) == 1
    assert f"could not read: journal {path}" in capsys.readouterr().out


def test_a_failed_over_order_is_journaled_with_its_fill(sim_factory, tmp_path, new_client_id):
    from ib_nice_funcs import Client

    handle = sim_factory(portal=True)
    handle.market.set_price("BTC", 50_000.0)
    path = tmp_path / "journal.sqlite3"
    with Client(host="127.0.0.1", port=handle.port, client_id=new_client_id(),
                sources="ib,portal", portal_url=handle.portal.url, portal_ca=handle.portal.ca_path,
                order_failover=True, timeout=10, journal=str(path), agent="gamma",
                clock=handle.market.clock) as client:
        trader = client.trading
        handle.set_refuse_new(True)  # TWS / IB Gateway is not running
        result = trader.market_buy("BTC-USD", 500, client_order_id="jr-fo")
        assert result["source"] == "portal" and result["status"] == "Filled"
        again = trader.market_buy("BTC-USD", 500, client_order_id="jr-fo")
        assert again["existing"] is True
        frame = rows(trader)
    mine = frame[frame["client_order_id"] == "jr-fo"]
    assert list(mine["kind"]) == ["failover", "fill"]
    fill = mine[mine["kind"] == "fill"].iloc[0]
    assert fill["source"] == "portal" and fill["agent"] == "gamma"
    assert fill["quantity"] == pytest.approx(result["filled_qty"])
    assert fill["price"] == pytest.approx(result["avg_price"])


def test_several_processes_share_one_journal(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "shared.sqlite3"
    script = (
        "import sys; from pathlib import Path\n"
        "from ib_nice_funcs.trade_journal.writer import writer_for\n"
        "w = writer_for(Path(sys.argv[1]))\n"
        "for i in range(200):\n"
        "    w.put({'ts': float(i), 'kind': 'fill', 'agent': sys.argv[2],\n"
        "           'exec_id': sys.argv[2] + str(i), 'price': 1.0, 'quantity': 1.0})\n"
        "assert w.flush(30) and w.dropped == 0, w.dropped\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), name], env=env)
             for name in ("p1", "p2", "p3")]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    from ib_nice_funcs.trade_journal.store import read_rows

    got = read_rows(path)
    assert len(got) == 600 and {r["agent"] for r in got} == {"p1", "p2", "p3"}
