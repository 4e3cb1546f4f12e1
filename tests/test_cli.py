"""The command line, run in-process against the simulator (output captured)."""

from __future__ import annotations

import socket

import pandas as pd
import pytest

from ib_nice_funcs.cli import main

# The CLI's client dates its windows by the simulator's market clock.
pytestmark = pytest.mark.usefixtures("sim_clock")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_price_prints_a_table(sim, capsys, new_client_id):
    code = main(["price", "AAPL", "EURUSD", "--port", str(sim.port),
                 "--client-id", str(new_client_id()), "--source", "ib"])
    out = capsys.readouterr().out
    assert code == 0
    assert "AAPL" in out and "EURUSD" in out and "symbol" in out.splitlines()[0]


def test_ohlcv_writes_csv(sim, tmp_path, capsys, new_client_id):
    target = tmp_path / "bars.csv"
    code = main(["ohlcv", "BTC-USD", "-t", "1h", "-d", "1", "--csv", str(target),
                 "--port", str(sim.port), "--client-id", str(new_client_id()), "--source", "ib"])
    assert code == 0
    frame = pd.read_csv(target)
    assert list(frame.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert abs(len(frame) - 24) <= 1
    assert "source: ib" in capsys.readouterr().out


def test_errors_are_one_line_and_exit_1(capsys, new_client_id):
    code = main(["price", "AAPL", "--port", str(_free_port()), "--client-id", str(new_client_id()),
                 "--source", "ib", "--timeout", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("ib-nice-funcs price:")
    assert "Traceback" not in err[0]
    assert "refused" in err[0] and "AAPL" in err[0]  # the cause and the symbol


def test_bad_timeframe_is_one_line(capsys):
    code = main(["ohlcv", "AAPL", "-t", "7x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "valid" in err[0]


def test_demo_runs_and_exits_0(capsys):
    assert main(["demo", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "AAPL" in out and "source: ib" in out
    assert "UTC" in out and "timestamp (UTC)" in out
    assert "Filled: bought" in out and "position:" in out and "unrealized P&L" in out
    assert "ib-nice-funcs sim" in out and "ib-nice-funcs dashboard" in out and "examples/" in out


def test_price_prints_the_good_symbols_and_one_line_per_bad_one(sim, capsys, new_client_id):
    code = main(["price", "AAPL", "ZZQXNOTREAL", "MSFT", "ZZZZ", "--port", str(sim.port),
                 "--client-id", str(new_client_id()), "--source", "ib"])
    captured = capsys.readouterr()
    assert code == 1
    out = captured.out.splitlines()
    assert any(line.startswith("AAPL") for line in out)
    assert any(line.startswith("MSFT") for line in out)
    assert "ZZQXNOTREAL" not in captured.out and "ZZZZ" not in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("ib-nice-funcs price:") for line in err)
    assert "ZZQXNOTREAL" in err[0]  # malformed
    assert "ZZZZ" in err[1]  # well-formed, unknown to the gateway


def test_ohlcv_shows_progress_of_a_multi_request_download(sim, capsys, new_client_id):
    code = main(["ohlcv", "ETH-USD", "-t", "5m", "-d", "15", "--rows", "1", "--port", str(sim.port),
                 "--client-id", str(new_client_id()), "--source", "ib"])
    captured = capsys.readouterr()
    assert code == 0
    assert "5m bars of ETH-USD: 1/" in captured.err
    done, total = captured.err.rstrip().rsplit(" ", 2)[-2].split("/")
    assert done == total and int(total) >= 2
