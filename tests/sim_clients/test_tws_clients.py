"""ib_insync and ib_async run a scripted agent session against the TWS simulator.

Each client runs in a subprocess (ib_insync patches asyncio globally with
nest_asyncio; the test process stays untouched). The session covers data,
history of several timeframes, brackets, transmit=False, OCA, modify,
STP LMT, cancel-all, crypto by cash, P&L and account requests; no request
may be answered "not supported" (321) and none may hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SESSION = Path(__file__).with_name("tws_session.py")


def run_session(module: str, port: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    done = subprocess.run([sys.executable, str(SESSION), module, str(port)], capture_output=True,
                          text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["ib_insync", "ib_async"])
def test_scripted_session(module, sims):
    out = run_session(module, sims.port)
    codes = [code for _req, code, _msg in out["errors"]]
    assert 321 not in codes and 162 not in codes, out["errors"]
    assert out["bid"] < out["last"] < out["ask"] or out["bid"] <= out["last"] <= out["ask"]
    assert all(n > 0 for n in out["bars"].values()), out["bars"]
    assert out["bid_ask"] > 0 and out["adjusted"] > 0 and out["keep_up"] > 0
    assert out["realtime_bars"] is True
    assert out["scanner_params"] > 0 and out["news_providers"] == []
    assert out["market_rule"] == [[0.0, 0.01]]
    assert len(out["scanner"]) == 5 and len(set(out["scanner"])) == 5
    assert out["bracket"] == ["Filled", "Submitted", "Submitted"]
    assert out["held"] == ["PreSubmitted", 0.0]
    assert out["stop_limit"] == "Submitted" and out["open_after_cancel_all"] == 0
    status, filled = out["cash_qty"]
    assert status == "Filled" and 0 < filled * out["ask"] < 1.5 * 1000 * 1000  # BTC units
    assert out["big_short"] == "Cancelled"
    assert 201 in codes  # the refused short says why
    daily, unrealized, realized = out["pnl"]
    assert daily == pytest.approx(unrealized + realized, abs=0.01)
    position, value = out["pnl_single"]
    assert position == 10.0 and value > 0
    assert out["what_if"] > 0 and out["net_liquidation"] > 0
    assert out["positions"]["AAPL"] == 10.0
    assert out["completed"] >= 6
