"""The journal's pure parts: --since forms, slippage sign, paths, the file's version guard."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs.trade_journal.api import SINCE_FORMS, journal, parse_since, read_journal
from ib_nice_funcs.trade_journal.recorder import slippage_bps
from ib_nice_funcs.trade_journal.store import (
    JournalUnreadableError,
    connect_for_writing,
    default_path,
    insert_rows,
    read_rows,
    resolve_path,
)

NOW = datetime(2026, 11, 18, 20, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("text,expected", [
    ("30m", NOW - 1800), ("4h", NOW - 4 * 3600), ("7d", NOW - 7 * 86400), ("2w", NOW - 14 * 86400),
    ("90s", NOW - 90), ("today", datetime(2026, 11, 18, tzinfo=timezone.utc).timestamp()),
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()),
    ("2026-11-01T14:30", datetime(2026, 11, 1, 14, 30, tzinfo=timezone.utc).timestamp()),
    ("2026-11-01T14:30:00Z", datetime(2026, 11, 1, 14, 30, tzinfo=timezone.utc).timestamp()),
    ("1700000000", 1_700_000_000.0), (1_700_000_000, 1_700_000_000.0), (None, None),
])
def test_since_forms(text, expected):
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("bad", ["yesterday-ish", "5 parsecs", "", "-3d", True, -1, object()])
def test_unknown_since_names_the_accepted_forms(bad):
    with pytest.raises(ValueError) as info:
        parse_since(bad, NOW)
    assert SINCE_FORMS in str(info.value)


@given(st.floats(0.01, 1e6), st.floats(0.01, 1e6))
def test_slippage_sign_is_adverse_positive(arrival, price):
    buy, sell = slippage_bps("BUY", arrival, price), slippage_bps("SELL", arrival, price)
    assert buy == pytest.approx(-sell)
    assert (buy > 0) == (price > arrival) or price == arrival


def test_slippage_needs_both_prices():
    assert slippage_bps("BUY", None, 10.0) is None and slippage_bps("SELL", 10.0, 0.0) is None


def test_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_path() == tmp_path / "ib_nice_funcs" / "journal.sqlite3"
    assert resolve_path(None) == default_path() and resolve_path("OFF") is None
    assert resolve_path("~/x.db").name == "x.db"


def test_rows_round_trip_and_an_execution_is_kept_once(tmp_path):
    path = tmp_path / "j.sqlite3"
    conn = connect_for_writing(path)
    fill = {"ts": 1.0, "kind": "fill", "agent": "a", "exec_id": "E1", "price": 10.0}
    insert_rows(conn, [fill, fill, {"ts": 2.0, "kind": "sent", "agent": "b"}])
    conn.close()
    got = read_rows(path)
    assert [r["kind"] for r in got] == ["fill", "sent"]
    assert [r["kind"] for r in read_rows(path, since=1.5)] == ["sent"]
    assert [r["agent"] for r in read_rows(path, agent="a")] == ["a"]


def test_a_journal_from_another_version_is_refused_not_rewritten(tmp_path):
    path = tmp_path / "j.sqlite3"
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(JournalUnreadableError, match="another version"):
        connect_for_writing(path)
    with pytest.raises(JournalUnreadableError, match="another version"):
        read_rows(path)


def test_module_journal_warns_and_returns_an_empty_frame_on_a_corrupt_file(
        tmp_path, monkeypatch, caplog):
    path = tmp_path / "bad.sqlite3"
    path.write_bytes(b"garbage" * 500)
    monkeypatch.setenv("IB_NICE_FUNCS_JOURNAL", str(path))
    frame = journal()
    assert frame.empty and {"time", "kind", "slippage_bps", "agent"} <= set(frame.columns)
    assert any(str(path) in r.getMessage() for r in caplog.records)
    with pytest.raises(JournalUnreadableError):
        read_journal()


def test_no_file_yet_is_an_empty_journal(tmp_path, monkeypatch):
    monkeypatch.setenv("IB_NICE_FUNCS_JOURNAL", str(tmp_path / "none.sqlite3"))
    assert journal().empty


def test_summary_counts_per_agent_and_keeps_the_newest_fills(tmp_path):
    from ib_nice_funcs.trade_journal.store import summary

    path = tmp_path / "j.sqlite3"
    conn = connect_for_writing(path)
    rows = [{"ts": float(i), "kind": "fill", "agent": "a" if i % 2 else "b", "exec_id": f"E{i}",
             "price": 1.0, "quantity": 1.0} for i in range(10)]
    rows += [{"ts": 20.0, "kind": "sent", "agent": "a"}, {"ts": 21.0, "kind": "refused",
                                                          "agent": "b"}]
    insert_rows(conn, rows)
    conn.close()
    got = summary(path, recent=3)
    assert [f["exec_id"] for f in got["fills"]] == ["E9", "E8", "E7"] and got["fill_count"] == 10
    assert got["agents"] == [
        {"agent": "a", "last_seen": 20.0, "orders": 1, "fills": 5, "refusals": 0},
        {"agent": "b", "last_seen": 21.0, "orders": 0, "fills": 5, "refusals": 1}]
    assert summary(tmp_path / "none.sqlite3")["fill_count"] == 0


def test_risk_bars_measure_each_limit():
    from ib_nice_funcs.dashboard.state import risk_bars

    limits = {"max_daily_loss_usd": 1000.0, "max_position_usd": 5000.0,
              "max_exposure_usd": 20000.0, "pdt_guard": True}
    bars = {b["name"]: b for b in risk_bars(limits, {"AAPL": 2500.0, "TSLA": -4000.0},
                                            -250.0, 2)}
    assert bars["max_daily_loss_usd"]["fraction"] == pytest.approx(0.25)
    largest = bars["max_position_usd"]
    assert largest["used"] == 4000.0 and "TSLA" in largest["label"]
    assert bars["max_exposure_usd"]["fraction"] == pytest.approx(6500 / 20000)
    assert bars["pdt"]["fraction"] == pytest.approx(2 / 3)
    gains = risk_bars({**limits, "pdt_guard": False}, {}, 300.0, 0)
    assert [b["name"] for b in gains] == ["max_daily_loss_usd", "max_position_usd",
                                          "max_exposure_usd"]
    assert gains[0]["used"] == 0.0


prices = st.floats(1.0, 1000.0)
sizes = st.integers(1, 500).map(float)


@given(st.lists(st.tuples(sizes, prices), min_size=1, max_size=8), prices)
def test_realized_pnl_of_buys_closed_at_once(buys, exit_price):
    from ib_nice_funcs.trade_journal.report import realized_pnl

    held = sum(q for q, _ in buys)
    fills = [("BUY", q, p) for q, p in buys] + [("SELL", held, exit_price)]
    realized, position = realized_pnl(fills)
    assert position == pytest.approx(0.0, abs=1e-9)
    assert realized == pytest.approx(held * exit_price - sum(q * p for q, p in buys), rel=1e-9,
                                     abs=1e-6)


@given(sizes, sizes, prices, prices, prices)
def test_realized_pnl_through_a_flip_to_short(long_qty, extra, p1, p2, p3):
    from ib_nice_funcs.trade_journal.report import realized_pnl

    fills = [("BUY", long_qty, p1), ("SELL", long_qty + extra, p2), ("BUY", extra, p3)]
    realized, position = realized_pnl(fills)
    assert position == pytest.approx(0.0, abs=1e-9)
    assert realized == pytest.approx(long_qty * (p2 - p1) + extra * (p2 - p3), rel=1e-9, abs=1e-6)


def test_fleet_usage_sums_live_processes_of_the_gateway():
    from ib_nice_funcs.dashboard.state import ALIVE_WITHIN_S, agents_alive, fleet_usage

    now = 1000.0
    procs = [
        {"agent": "a", "gateway": "gw:1", "ts": now - 1, "lines": 3, "lines_limit": 100,
         "pacing_left": 50, "pacing_limit": 60, "connected": 1},
        {"agent": "b", "gateway": "gw:1", "ts": now - 2, "lines": 4, "lines_limit": 100,
         "pacing_left": 41, "pacing_limit": 60, "connected": 0},
        {"agent": "c", "gateway": "gw:1", "ts": now - ALIVE_WITHIN_S - 1, "lines": 50,
         "lines_limit": 100, "pacing_left": 1, "pacing_limit": 60},       # gone
        {"agent": "d", "gateway": "other:2", "ts": now, "lines": 9, "lines_limit": 100,
         "pacing_left": 0, "pacing_limit": 60},                           # another gateway
    ]
    usage = fleet_usage(procs, "gw:1", now, {"lines": 1, "lines_limit": 100})
    assert usage["processes"] == 2 and usage["lines"] == {"used": 7, "limit": 100}
    assert usage["pacing"] == {"left": 41, "limit": 60, "agent": "b"}
    alone = fleet_usage([], "gw:1", now, {"lines": 1, "lines_limit": 100, "pacing_left": 60,
                                          "pacing_limit": 60})
    assert alone["scope"] == "this dashboard" and alone["lines"]["used"] == 1
    agents = agents_alive([{"agent": "a", "last_seen": 5.0, "orders": 1, "fills": 1,
                            "refusals": 0},
                           {"agent": "c", "last_seen": 4.0, "orders": 2, "fills": 0,
                            "refusals": 1}], procs, now)
    by = {a["agent"]: a for a in agents}
    assert by["a"]["alive"] and by["a"]["lines"] == 3 and by["a"]["connected"] is True
    assert not by["c"]["alive"] and by["c"]["lines"] is None
    assert by["b"]["alive"] and by["b"]["orders"] == 0 and by["b"]["connected"] is False


def test_a_writer_heartbeat_upserts_one_row_per_process(tmp_path):
    from ib_nice_funcs.trade_journal.store import read_processes
    from ib_nice_funcs.trade_journal.writer import JournalWriter

    writer = JournalWriter(tmp_path / "j.sqlite3", heartbeat_s=3600)
    beats = iter([5, 6])
    writer.add_heartbeat(lambda: {"host": "h", "pid": 1, "client_id": 7, "agent": "a",
                                  "lines": next(beats, None), "ts": 1.0})
    assert writer.flush(10)
    writer.beat()
    assert writer.flush(10)
    assert [(p["agent"], p["lines"]) for p in read_processes(tmp_path / "j.sqlite3")] == [("a", 6)]
    writer.add_heartbeat(lambda: None)  # a closed client's beat is dropped
    assert writer.flush(10) and writer.heartbeats == 1
    writer.close()
