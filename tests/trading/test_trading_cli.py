"""The trading commands of ``ib-nice-funcs`` against the simulator."""

from __future__ import annotations

import io

import pytest

from ib_nice_funcs.cli import main


class Terminal(io.StringIO):
    """A stdin that says it is a terminal and holds the typed answer."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def run(tsim, new_client_id, capsys):
    def invoke(*argv: str) -> tuple[int, str, str]:
        code = main([argv[0], "--port", str(tsim.port), "--client-id", str(new_client_id()),
                     "--source", "ib", *argv[1:]])
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


def test_read_only_commands(run):
    code, out, _ = run("positions")
    assert code == 0 and "no positions" in out
    code, out, _ = run("orders")
    assert code == 0 and "no open orders" in out
    code, out, _ = run("account")
    assert code == 0 and "net liquidation" in out and "DU1234567 (paper)" in out


def test_state_changing_commands_need_confirmation(run, tsim, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # a pipe is not a terminal: no
    code, _, err = run("buy", "BTC-USD", "--usd", "500")
    assert code == 1 and "not confirmed" in err
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, _, err = run("buy", "BTC-USD", "--usd", "500")
    assert code == 1 and "not confirmed" in err
    monkeypatch.setattr("sys.stdin", Terminal(""))  # EOF
    assert run("kill", "--all")[0] == 1
    assert tsim.sim.order_count == 0
    monkeypatch.setattr("sys.stdin", Terminal("yes\n"))
    code, out, _ = run("buy", "BTC-USD", "--usd", "500")
    assert code == 0 and "bought" in out and "Filled" in out
    assert tsim.sim.order_count == 1


def test_buy_sell_kill_flow(run, tsim):
    code, out, _ = run("buy", "ETH-USD", "--usd", "800", "--yes")
    assert code == 0 and "ETH-USD" in out
    code, out, _ = run("positions")
    assert code == 0 and "ETH-USD" in out
    code, out, _ = run("buy", "BTC-USD", "--usd", "500", "--limit", "100", "--yes")
    assert code == 0 and "Submitted" in out
    code, out, _ = run("orders")
    assert "BTC-USD" in out and "LMT" in out
    code, out, _ = run("sell", "ETH-USD", "--pct", "50", "--yes")
    assert code == 0 and "sold" in out
    code, out, _ = run("cancel-all", "--yes")
    assert code == 0 and "cancelled 1 order(s)" in out
    code, out, _ = run("kill", "ETH-USD", "--yes")
    assert code == 0 and "closed" in out
    run("buy", "LTC-USD", "--usd", "300", "--yes")
    code, out, _ = run("kill", "--all", "--yes")
    assert code == 0 and "flat" in out
    code, out, _ = run("positions")
    assert "no positions" in out


def test_cli_errors_are_one_line(run, tsim):
    code, _, err = run("kill", "--yes")
    assert code == 1 and "SYMBOL" in err and err.count("\n") == 1
    code, _, err = run("sell", "AAPL", "--pct", "150", "--yes")
    assert code == 1 and "--pct" in err
    code, _, err = run("sell", "AAPL", "--yes")
    assert code == 1 and "no long position" in err and "Traceback" not in err
    assert tsim.sim.order_count == 0
