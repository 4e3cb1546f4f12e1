"""`ib-nice-funcs sim` as a user runs it: real ports and the CA path on stdout,
SIGTERM cleans up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

import pytest
import requests

from ib_nice_funcs.sim import MarketClock
from ib_nice_funcs.sim.clock import parse_market_time

_SCRIPT = "import sys; from ib_nice_funcs.cli import main; sys.exit(main(sys.argv[1:]))"


def _read_until(proc: subprocess.Popen, prefix: str, timeout: float = 30.0) -> str:
    """The first stdout line starting with ``prefix`` (bounded by ``timeout``)."""
    found: list[str] = []

    def reader() -> None:
        for line in proc.stdout:
            if line.startswith(prefix):
                found.append(line.strip())
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    assert found, f"no line starting with {prefix!r} within {timeout} s"
    return found[0]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sim_prints_its_real_ports_and_ca_and_sigterm_removes_the_tls_dir():
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, "sim", "--port", "0", "--portal",
                             "0", "--penalty", "5", "--at", "2024-03-06 10:00"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        tws = _read_until(proc, "paper TWS simulator on ")
        port = int(tws.split()[4].split(":")[1])
        assert port > 0
        url = _read_until(proc, "Client Portal on ").split()[-1]
        ca = _read_until(proc, "IB_PORTAL_CA=").split("=", 1)[1]
        assert os.path.isfile(ca) and not url.endswith(":0")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        status = requests.get(url.rstrip("/") + "/iserver/auth/status", verify=ca,
                              timeout=10)
        assert status.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not os.path.exists(os.path.dirname(ca))


def test_market_clock_starts_where_told_and_moves():
    wall = [1000.0]
    clock = MarketClock(5000.0, wall=lambda: wall[0])
    assert clock() == 5000.0
    wall[0] += 2
    assert clock() == 5002.0
    clock.pause()
    wall[0] += 10
    assert clock() == 5002.0
    clock.advance(60)
    assert clock() == 5062.0
    clock.resume()
    wall[0] += 1
    assert clock() == 5063.0
    clock.set(0.0)
    assert clock() == 0.0
    assert parse_market_time("2024-03-06 10:00") == parse_market_time("2024-03-06 15:00 UTC")
    with pytest.raises(ValueError):
        MarketClock.at("yesterday")
