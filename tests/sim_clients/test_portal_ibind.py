"""ibind (0.2.2) runs a scripted session against the Client Portal simulator, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SESSION = Path(__file__).with_name("portal_session.py")


def test_ibind_session(sims):
    cp = sims.portal
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    done = subprocess.run([sys.executable, str(SESSION), cp.url, cp.ca_path],
                          capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["healthy"] is True and out["last"] > 0
    assert all(n > 0 for n in out["bars"].values()), out["bars"]
    assert out["market"] == "Filled" and out["stop"] == "Submitted"
    assert "already registered" in out["duplicate"]
    assert out["bracket"] == ["Filled", "Submitted", "Submitted"]
    assert out["oca"] == 2 and out["modified"] in ("Submitted", "PreSubmitted")
    assert out["open_after_cancel_all"] == []
    assert out["summary"] > 0 and out["pnl"] > 0 and out["ledger"] > 0
    assert out["portfolio_summary"] > 0
    assert out["positions"][str(out["conid"])] == 15.0 or out["positions"].get(
        out["conid"]) == 15.0
    assert out["whatif"] is None and "STK" in out["allocation"] and out["meta"]
    assert cp.count_429 == 0
